"""A published port whose protocol Orion cannot publish (``-p 80:80/sctp`` was once
accepted and failed only when a node started the container) is refused at submit time, by one
rule (orion/api/protocol.py) applied alike by the Python client, the CLI, REST and the raw
ZeroMQ request, each naming the field; nothing reaches the cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orion.api.http import HttpApi
from orion.api.protocol import PORT_PROTOCOLS, RequestError, container_port_problem, decode_request, encode
from orion.api.server import ApiServer
from orion.client import Client, InvalidRequest
from tests.api.memory_node import MemoryNode

ORION = str(Path(sys.executable).parent / "orion")
REFUSAL = "container port '80/sctp': protocol 'sctp' is not supported (Orion publishes tcp and udp)"


@pytest.fixture
def http(node: MemoryNode) -> Iterator[HttpApi]:
    server = HttpApi("127.0.0.1", 0, node, timeout=5.0, max_body=16 * 1024)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_rule_accepts_tcp_and_udp_and_names_what_it_refuses() -> None:
    assert PORT_PROTOCOLS == ("tcp", "udp")
    for accepted in ("80", "80/tcp", "53/udp", "65535/tcp"):
        assert container_port_problem(accepted) is None
    assert container_port_problem("80/sctp") == REFUSAL
    assert container_port_problem("0/tcp") == "container port '0/tcp' is not in 1-65535"


def test_the_python_client_refuses_before_sending(api: ApiServer, node: MemoryNode) -> None:
    with Client([f"127.0.0.1:{api.port}"], timeout=2.0, retries=1, token="") as client:
        with pytest.raises(InvalidRequest) as refused:
            client.submit("nginx", id="web", ports={"80/sctp": "8080"})
        assert client.submit("nginx", id="dns", ports={"53/udp": "5353"}).port_bindings == {"53/udp": "5353"}
    assert refused.value.code == "invalid"
    assert refused.value.message == f"port_bindings: {REFUSAL}"
    assert node.submits_seen == ["dns"]


def test_the_cli_refuses_with_one_line_naming_its_option(api: ApiServer, node: MemoryNode) -> None:
    env = {**os.environ, "ORION_ENDPOINTS": f"127.0.0.1:{api.port}"}
    done = subprocess.run(
        [ORION, "task", "submit", "nginx", "--id", "web", "-p", "8080:80/sctp"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"orion: -p 8080:80/sctp: {REFUSAL}"]
    assert node.submits_seen == []


def test_rest_answers_400_naming_port_bindings(http: HttpApi, node: MemoryNode) -> None:
    body = json.dumps({"id": "web", "image": "nginx", "portBindings": {"80/sctp": "8080"}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{http.port}/tasks",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 400
    error = json.loads(answer.value.read())
    assert f"portBindings: {REFUSAL}" in json.dumps(error)
    assert node.submits_seen == []


def test_a_raw_request_is_refused_on_decode() -> None:
    raw = {
        "op": "SubmitTask",
        "id": "web",
        "name": "web",
        "image": "nginx",
        "port_bindings": {"80/sctp": "80"},
    }
    with pytest.raises(RequestError) as refused:
        decode_request(encode(raw))
    assert (refused.value.field, refused.value.reason) == ("port_bindings", REFUSAL)
