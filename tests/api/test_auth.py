"""Client authentication and limits on the API edges (ZeroMQ server and REST mirror), with
the in-memory node as the handler: a refused request never reaches it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from orion.api.http import HttpApi
from orion.api.protocol import ListTasks, decode_reply, encode_request
from orion.api.server import ApiServer
from orion.client import Client, Unauthorized, Unavailable
from orion.security.keys import TokenSet
from tests.api.memory_node import MemoryNode

TOKEN = "test-token-0123456789"


@pytest.fixture
def node() -> MemoryNode:
    return MemoryNode()


@pytest.fixture
def api(node: MemoryNode) -> Iterator[ApiServer]:
    server = ApiServer("127.0.0.1", 0, node, tokens=TokenSet([TOKEN]), max_request=4096)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(node: MemoryNode) -> Iterator[HttpApi]:
    server = HttpApi("127.0.0.1", 0, node, timeout=5.0, tokens=TokenSet([TOKEN]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_client_without_the_token_is_refused_and_changes_nothing(api: ApiServer, node: MemoryNode) -> None:
    endpoint = [f"127.0.0.1:{api.port}"]
    for token in ("", "wrong-token", TOKEN[:-1]):
        with Client(endpoint, timeout=2.0, retries=1, token=token) as client, pytest.raises(Unauthorized):
            client.submit("nginx", id="intruder")
    assert node.submits_seen == [] and node.tasks == {}
    assert api.stats["unauthorized"] == 3
    with Client(endpoint, timeout=2.0, token=TOKEN) as client:
        assert client.submit("nginx", id="welcome").id == "welcome"
        assert [t.id for t in client.tasks()] == ["welcome"]


def test_raw_frames_with_a_bad_token_or_shape_get_no_further(api: ApiServer, node: MemoryNode) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{api.port}")
    body = encode_request(ListTasks())
    try:
        for frames in ([body], [b"x" * 4096, body], [b"", body], [TOKEN.encode(), b"extra", body]):
            sock.send_multipart(frames)
            if len(frames) <= 2:
                assert sock.poll(2000)
                reply = decode_reply(sock.recv())
                assert not reply.ok and reply.error is not None and reply.error.code == "unauthorized"
            else:  # three content frames: not a request at all, dropped without an answer
                assert not sock.poll(300)
                sock.close(0)
                sock = zmq.Context.instance().socket(zmq.REQ)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(f"tcp://127.0.0.1:{api.port}")
    finally:
        sock.close(0)
    assert node.submits_seen == []


def test_one_flooding_address_does_not_starve_another(node: MemoryNode) -> None:
    """The budget is per client address (a reconnect does not refill it); another address
    (a client from 127.0.0.2) has its own."""
    server = ApiServer("127.0.0.1", 0, node, rate_limit_per_s=0.01, tokens=TokenSet([TOKEN]))
    server.start()
    flooder = zmq.Context.instance().socket(zmq.REQ)  # one connection, kept open
    flooder.setsockopt(zmq.LINGER, 0)
    try:
        flooder.connect(f"tcp://127.0.0.1:{server.port}")
        answers = []
        for _ in range(4):
            flooder.send_multipart([TOKEN.encode(), encode_request(ListTasks())])
            assert flooder.poll(2000)
            answers.append(decode_reply(flooder.recv()))
        assert [a.ok for a in answers] == [True, False, False, False]
        assert all("rate limited" in a.error.message for a in answers[1:] if a.error)
        with (
            Client([f"127.0.0.1:{server.port}"], timeout=2.0, retries=1, token=TOKEN) as again,
            pytest.raises(Unavailable, match="rate limited"),
        ):
            again.tasks()  # a new connection from the same address: the same budget
        neighbour = zmq.Context.instance().socket(zmq.REQ)
        neighbour.setsockopt(zmq.LINGER, 0)
        neighbour.connect(f"tcp://127.0.0.2:0;127.0.0.1:{server.port}")  # from another address
        neighbour.send_multipart([TOKEN.encode(), encode_request(ListTasks())])
        assert neighbour.poll(2000)
        assert decode_reply(neighbour.recv()).ok  # its own budget
        neighbour.close(0)
    finally:
        flooder.close(0)
        server.stop()


def rest(
    http: HttpApi, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http.port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def test_rest_without_the_bearer_token_gets_401(http: HttpApi, node: MemoryNode) -> None:
    payload = {"image": "nginx", "id": "intruder"}
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": TOKEN},
        {"Authorization": "Basic x"},
    ):
        for method, path, body in (
            ("GET", "/tasks", None),
            ("POST", "/tasks", payload),
            ("DELETE", "/tasks/a", None),
        ):
            status, answer, response_headers = rest(http, method, path, headers, body)
            assert status == 401, (method, headers)
            assert answer["code"] == "unauthorized"
            assert response_headers["WWW-Authenticate"].startswith("Bearer")
    assert node.submits_seen == []
    status, created, _ = rest(http, "POST", "/tasks", {"Authorization": f"Bearer {TOKEN}"}, payload)
    assert status == 201 and created["id"] == "intruder"


def test_keygen_then_the_cli_needs_the_token(api: ApiServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORION_")}
    env["ORION_ENDPOINTS"] = f"127.0.0.1:{api.port}"

    def orion(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orion", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, **extra},
            cwd=tmp_path,
            check=False,
        )

    made = orion("keygen", "--dir", "keys")
    assert made.returncode == 0, made.stderr
    token = (tmp_path / "keys/client.token").read_text().strip()
    secret = (tmp_path / "keys/cluster.key_secret").read_text()
    assert token not in made.stdout and "secret-key" in secret and "secret-key" not in made.stdout
    assert orion("keygen", "--dir", "keys").returncode != 0  # never overwrites

    refused = orion("task", "ls")
    assert refused.returncode == 5 and "ORION_TOKEN" in refused.stderr
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert orion("task", "ls", ORION_TOKEN=TOKEN).returncode == 0
    assert orion("task", "ls", ORION_TOKEN_FILE=str(token_file)).returncode == 0
    assert orion("--token-file", str(token_file), "--json", "raft").returncode == 0
    missing = orion("--token-file", "nope", "task", "ls")
    assert missing.returncode == 2 and "nope" in missing.stderr
