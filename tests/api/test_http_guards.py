"""The REST mirror's edges (orion/api/http.py) that a one-line slip would open: only the Bearer
scheme carries a token, and a request the server refuses still gets an answer."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from orion.api.http import HttpApi
from orion.security.keys import TokenSet
from tests.api.memory_node import MemoryNode

TOKEN = "guard-token-0123456789"
PAYLOAD = json.dumps({"image": "nginx", "id": "intruder"}).encode()


@pytest.fixture
def secured(node: MemoryNode) -> Iterator[HttpApi]:
    server = HttpApi("127.0.0.1", 0, node, timeout=5.0, tokens=TokenSet([TOKEN]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def open_http(node: MemoryNode) -> Iterator[HttpApi]:
    server = HttpApi("127.0.0.1", 0, node, timeout=5.0, max_body=16 * 1024)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def status_of(http: HttpApi, method: str, path: str, authorization: str, body: bytes | None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http.port}{path}",
        data=body,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": authorization},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Digest", "Bearer-ish"])
def test_the_right_token_under_another_scheme_is_refused(
    secured: HttpApi, node: MemoryNode, scheme: str
) -> None:
    """The token is a bearer credential: a header that carries it under any other scheme (a
    client or proxy that means something else by it) must not be taken as authenticated."""
    for method, path, body in (
        ("GET", "/tasks", None),
        ("POST", "/tasks", PAYLOAD),
        ("DELETE", "/tasks/a", None),
    ):
        assert status_of(secured, method, path, f"{scheme} {TOKEN}", body) == 401, (method, scheme)
    assert node.submits_seen == []
    # The same token as a bearer token is accepted: the refusal above is the scheme's.
    assert status_of(secured, "POST", "/tasks", f"Bearer {TOKEN}", PAYLOAD) == 201


def raw_exchange(port: int, request: bytes, deadline_s: float = 10.0) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=deadline_s) as conn:
        conn.sendall(request)
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
    return received


@pytest.mark.parametrize("path", ["/nowhere", "/tasks/abc/extra"])
def test_a_post_to_an_unknown_path_with_a_bad_content_length_gets_400(open_http: HttpApi, path: str) -> None:
    """``_drain_body`` used to parse Content-Length unguarded, so ``abc`` raised and
    the connection closed with no answer at all."""
    request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n".encode()
    answer = raw_exchange(open_http.port, request)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ")[1:2] == [b"400"], answer
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert "Content-Length" in body["error"]


def test_a_taken_port_fails_the_start_with_the_bind_error(node: MemoryNode) -> None:
    """The node stops on an OSError from its servers' start ("cannot start"); a failed bind
    must reach it as that error, not as an AttributeError from the half-made server's close
    (a node once kept running half started after it: no REST, but gossip and Raft alive)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HttpApi("127.0.0.1", taken.getsockname()[1], node, timeout=5.0)
        with pytest.raises(OSError, match="in use"):
            server.start()


def test_stop_wakes_the_accepting_thread_and_closes_the_port(node: MemoryNode) -> None:
    # The accepting thread sleeps with no poll interval; only stop's wakeup can end it.
    server = HttpApi("127.0.0.1", 0, node, timeout=5.0)
    server.start()
    thread = server._thread
    port = server.port
    assert status_of(server, "GET", "/health", "", None) == 200
    server.stop()
    assert thread is not None and not thread.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
