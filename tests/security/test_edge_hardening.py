"""The client edge, in process (issue 15's "Why" items that need no node process): a token that
expired, a dead ZAP handler, a negative Content-Length, tracebacks on stderr, the token checked
before a body is read, a flood from one address on REST, and the task policy."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from orion.api.http import HttpApi
from orion.api.protocol import ErrorCode, ListTasks, encode_request
from orion.api.requests import build_create_service
from orion.api.server import ApiServer
from orion.api.task_policy import PolicyViolation, TaskPolicy
from orion.client import Client, InvalidRequest, Unauthorized
from orion.security.keys import ClusterKey, KeyFileError, TokenSet, read_token_entries
from orion.security.zap import ZapHandler
from orion.testing.localcluster import wait_for
from orion.transport.frames import encode_header
from orion.transport.peer import Channel, PeerTransport
from tests.api.memory_node import MemoryNode

TOKEN = "edge-token-0123456789"


def test_a_token_past_its_expiry_is_refused_and_says_so(tmp_path: Path) -> None:
    token_file = tmp_path / "client.token"
    token_file.write_text(f"{TOKEN} expires=2001-01-01T00:00:00Z\nfresh-token expires=2999-01-01\n")
    token_file.chmod(0o600)
    tokens = TokenSet(read_token_entries(token_file))
    key = ClusterKey.generate()
    server = ApiServer("127.0.0.1", 0, MemoryNode(), tokens=tokens, curve=key)
    server.start()
    try:
        endpoint = [f"127.0.0.1:{server.port}"]
        with (
            Client(endpoint, timeout=2.0, retries=1, token=TOKEN, server_key=key.public) as client,
            pytest.raises(Unauthorized, match="token expired"),
        ):
            client.tasks()
        with Client(endpoint, timeout=2.0, retries=1, token="fresh-token", server_key=key.public) as client:
            assert client.tasks() == []
    finally:
        server.stop()
    token_file.write_text(f"{TOKEN} expires=yesterday\n")
    with pytest.raises(KeyFileError, match="expires='yesterday' is not an ISO 8601 time"):
        read_token_entries(token_file)


def test_a_plain_client_and_one_without_the_key_are_refused(tmp_path: Path) -> None:
    key = ClusterKey.generate()
    node = MemoryNode()
    server = ApiServer("127.0.0.1", 0, node, tokens=TokenSet([TOKEN]), curve=key)
    server.start()
    plain = zmq.Context.instance().socket(zmq.REQ)
    plain.setsockopt(zmq.LINGER, 0)
    try:
        plain.connect(f"tcp://127.0.0.1:{server.port}")
        plain.send_multipart([TOKEN.encode(), encode_request(ListTasks())])
        assert not plain.poll(1500)  # no handshake: nothing reaches the server
        with (
            Client(
                [f"127.0.0.1:{server.port}"], timeout=2.0, retries=1, token=TOKEN, server_key=""
            ) as client,
            pytest.raises(Unauthorized, match=r"encrypted \(CURVE\) and the client has no server key"),
        ):
            client.tasks()
        assert server.stats["requests"] == 0
    finally:
        plain.close(0)
        server.stop()


def test_a_dead_zap_handler_lets_nobody_in_and_stops_the_node() -> None:
    """With the handler gone, a client presenting any key pair and the server's public key would
    be admitted without ZMQ_ZAP_ENFORCE_DOMAIN; now it is refused, and the node is told."""
    key = ClusterKey.generate()
    received: list[bytes] = []
    deaths: list[str] = []
    transport = PeerTransport(
        "127.0.0.1", 0, lambda _c, p: received.append(p), curve=key, on_zap_death=deaths.append
    )
    transport.start()
    try:
        handler = ZapHandler.for_context(zmq.Context.instance())

        def crash(_request: list[bytes]) -> list[bytes]:
            raise RuntimeError("injected fault")

        handler._answer = crash  # type: ignore[method-assign]  # the fault: the handler thread dies
        intruder_keys = zmq.curve_keypair()

        def attempt() -> zmq.Socket:
            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.CURVE_SERVERKEY, key.public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, intruder_keys[0])
            sock.setsockopt(zmq.CURVE_SECRETKEY, intruder_keys[1])
            sock.connect(f"tcp://127.0.0.1:{transport.port}")
            sock.send_multipart([encode_header(Channel.GOSSIP, "127.0.0.9:1"), b"forged"], zmq.NOBLOCK)
            return sock

        first = attempt()  # its ZAP request kills the handler
        wait_for(lambda: deaths, 10, what="the node to be told its ZAP handler died")
        assert "ZAP handler crashed" in deaths[0]
        second = attempt()  # no handler at all now
        time.sleep(1.0)  # a window for a wrongly admitted frame to arrive (asserting absence)
        assert received == []
        first.close(0)
        second.close(0)
    finally:
        transport.stop()


@pytest.fixture
def rest() -> Iterator[HttpApi]:
    api = HttpApi(
        "127.0.0.1",
        0,
        MemoryNode(),
        timeout=5.0,
        tokens=TokenSet([TOKEN]),
        workers=8,
        socket_timeout=2.0,
        max_body=64 * 1024,
    )
    api.start()
    try:
        yield api
    finally:
        api.stop()


def raw_http(port: int, data: bytes, source: str = "127.0.0.1") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ]
                if length and len(body) >= length[0]:
                    break
        return answer


def served(port: int, data: bytes, within: float = 15.0) -> bytes:
    """``raw_http``, asked again while the answer is empty: the fixture's server allows two
    connections per address, and the slot of a connection the test just closed is freed by a
    server thread a moment later (under load, after the test's next connection arrives)."""
    deadline = time.monotonic() + within
    while True:
        try:
            answer = raw_http(port, data)
        except ConnectionResetError:
            answer = b""
        if answer or time.monotonic() >= deadline:
            return answer
        time.sleep(0.05)


def test_a_negative_or_malformed_content_length_is_a_400(rest: HttpApi) -> None:
    for length in (b"-1", b"1e3", b"+5", b" 12x"):
        answer = served(
            rest.port,
            b"POST /tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: "
            + length
            + b"\r\n\r\n"
            + b"x" * 100,
        )
        assert answer.startswith(b"HTTP/1.1 400"), (length, answer[:80])
        assert b"bad Content-Length" in answer


def test_the_token_is_checked_before_any_body_is_read(rest: HttpApi) -> None:
    """A token-less client announcing a big body is answered 401 before it sends a byte of it."""
    answer = raw_http(rest.port, b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401")


def test_clients_vanishing_mid_answer_leave_no_traceback_on_stderr(
    rest: HttpApi, capfd: pytest.CaptureFixture[str]
) -> None:
    request = b"GET /tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
    for _ in range(40):
        sock = socket.create_connection(("127.0.0.1", rest.port))
        sock.sendall(request[: len(request) // 2])  # half a request, then a reset
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert served(rest.port, request).startswith(b"HTTP/1.1 200")
    assert "Traceback" not in capfd.readouterr().err


def test_half_sent_requests_from_one_address_do_not_block_another(rest: HttpApi) -> None:
    """300 connections from 127.0.0.3 that never finish their request: the server holds at most
    its per-address share of workers for them; a client from 127.0.0.1 is served at once."""
    held = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", rest.port), source_address=("127.0.0.3", 0))
            sock.sendall(b"GET /tasks HTTP/1.1\r\nHost: x\r\n")  # never ends its headers
            held.append(sock)
        assert rest.connections.count("127.0.0.3") <= rest.workers // 4
        started = time.monotonic()
        answer = raw_http(
            rest.port,
            b"GET /tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 200") and json.loads(answer.partition(b"\r\n\r\n")[2]) == []
        assert time.monotonic() - started < rest.socket_timeout  # not after the slow ones timed out
        assert threading.active_count() < 100  # a bounded pool, not a thread per connection
    finally:
        for sock in held:
            sock.close()


def test_the_policy_refuses_what_it_does_not_allow_and_fills_in_defaults() -> None:
    policy = TaskPolicy(
        default_memory=64 << 20,
        default_cpu=0.5,
        allowed_registries=("registry.example.com",),
        host_ports=(8000, 9000),
    )
    server = ApiServer("127.0.0.1", 0, MemoryNode(), prepare=policy.apply)
    server.start()
    try:
        with Client([f"127.0.0.1:{server.port}"], timeout=2.0, retries=1, token="") as client:
            with pytest.raises(
                InvalidRequest, match=r"image: registry docker.io is not allowed .*allowed_registries"
            ):
                client.submit("nginx")
            with pytest.raises(InvalidRequest, match=r"host port 80 is outside .*host_ports = \"8000-9000\""):
                client.submit("registry.example.com/web", ports={"80/tcp": "80"})
            task = client.submit("registry.example.com/web", ports={"80/tcp": "8080", "81/tcp": 0})
            assert task.memory == 64 << 20 and task.cpu == 0.5  # the policy's defaults
            again = client.submit(
                "registry.example.com/web", id=task.id, ports={"80/tcp": "8080", "81/tcp": 0}
            )
            assert again.id == task.id  # a retried submit is no conflict with the defaults filled in
            sized = client.submit("registry.example.com/web", memory="1GiB", cpu=2.0)
            assert sized.memory == 1 << 30 and sized.cpu == 2.0
    finally:
        server.stop()
    service = build_create_service(
        {
            "name": "web",
            "template": {"image": "nginx"},
            "replicas": 1,
            "ports": [{"published": 443, "target": 80}],
        }
    )
    with pytest.raises(PolicyViolation, match=r"template\.image: registry docker\.io"):
        policy.apply(service)
    service = build_create_service(
        {
            "name": "web",
            "template": {"image": "registry.example.com/web"},
            "ports": [{"published": 443, "target": 80}],
        }
    )
    with pytest.raises(PolicyViolation, match=r"ports\[0\].published: host port 443"):
        policy.apply(service)
    fine = build_create_service({"name": "web", "template": {"image": "registry.example.com/web"}})
    assert policy.apply(fine).spec.template.memory == 64 << 20  # type: ignore[attr-defined]
    assert ErrorCode.INVALID == "invalid"


def test_one_address_cannot_take_every_api_connection() -> None:
    """The ZeroMQ API's per-address cap: connections from 127.0.0.2 past it are closed at once;
    a client from 127.0.0.1 still gets in and is answered."""
    key = ClusterKey.generate()
    server = ApiServer(
        "127.0.0.1", 0, MemoryNode(), tokens=TokenSet([TOKEN]), curve=key, max_connections_per_address=8
    )
    server.start()
    held = []
    try:
        for _ in range(50):
            held.append(socket.create_connection(("127.0.0.1", server.port), source_address=("127.0.0.2", 0)))
        wait_for(
            lambda: server.connections.stats["refused"] >= 42, 10, what="connections past the cap closed"
        )
        assert server.connections.count("127.0.0.2") <= 8
        with Client(
            [f"127.0.0.1:{server.port}"], timeout=2.0, retries=1, token=TOKEN, server_key=key.public
        ) as c:
            assert c.tasks() == []
    finally:
        for s in held:
            s.close()
        server.stop()
