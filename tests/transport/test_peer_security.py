"""PeerTransport with CURVE: only holders of the cluster key talk, and refusals are logged."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import zmq
from loguru import logger

from orion.security.keys import ClusterKey
from orion.security.zap import ZapHandler
from orion.transport.frames import Channel, encode_header
from orion.transport.peer import PeerTransport
from tests.transport.test_peer import Inbox, wait_until


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


@pytest.fixture
def transports() -> Iterator[Callable[..., tuple[PeerTransport, Inbox]]]:
    started: list[PeerTransport] = []

    def make(name: str, curve: ClusterKey | None) -> tuple[PeerTransport, Inbox]:
        inbox = Inbox()
        transport = PeerTransport("127.0.0.1", 0, inbox, name=name, max_frame=4096, curve=curve)
        transport.start()
        started.append(transport)
        return transport, inbox

    yield make
    for transport in started:
        transport.stop()


def test_same_cluster_key_talks_on_every_channel(transports) -> None:
    key = ClusterKey.generate()
    (a, inbox_a), (b, inbox_b) = transports("a", key), transports("b", key)
    a.send(b.address, Channel.RAFT, b"append")
    b.send(a.address, Channel.FORWARD, b"reply")
    wait_until(lambda: inbox_b.payloads(Channel.RAFT) == [b"append"] and inbox_a.payloads() == [b"reply"])
    wait_until(lambda: a.send(b.address, Channel.GOSSIP, b"ping") or bool(inbox_b.payloads(Channel.GOSSIP)))
    assert a.handshakes.failures == 0 and b.handshakes.failures == 0


def test_another_clusters_key_is_refused_and_both_sides_say_so(transports, log_lines) -> None:
    (ours, inbox), (theirs, _) = (
        transports("ours", ClusterKey.generate()),
        transports("theirs", ClusterKey.generate()),
    )
    theirs.send(ours.address, Channel.RAFT, b"vote for me")
    wait_until(lambda: ours.handshakes.failures > 0 and theirs.handshakes.failures > 0)
    for _ in range(20):  # gossip is dropped too: nothing ever arrives
        theirs.send(ours.address, Channel.GOSSIP, b"i am alive")
    assert inbox.payloads() == []
    assert any(
        "ours: refused an incoming connection" in line and "cluster's key" in line for line in log_lines
    )
    assert any(
        f"theirs: peer {ours.address} refused our connection during the CURVE handshake" in line
        for line in log_lines
    )


def test_a_client_that_knows_the_public_key_but_not_the_secret_is_refused_by_zap(
    transports, log_lines
) -> None:
    key = ClusterKey.generate()
    ours, inbox = transports("ours", key)
    refused_before = ZapHandler.for_context(zmq.Context.instance()).refused
    intruder_public, intruder_secret = zmq.curve_keypair()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.CURVE_SERVERKEY, key.public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, intruder_public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, intruder_secret)
    try:
        sock.connect(f"tcp://{ours.address}")
        # NOBLOCK: once ZAP refused the handshake a DEALER has no peer, and a blocking send
        # would wait forever.
        with contextlib.suppress(zmq.Again):
            sock.send_multipart([encode_header(Channel.RAFT, "127.0.0.1:1"), b"forged"], zmq.NOBLOCK)
        wait_until(lambda: ZapHandler.for_context(zmq.Context.instance()).refused > refused_before)
        wait_until(lambda: ours.handshakes.failures > 0)
    finally:
        sock.close(0)
    assert inbox.payloads() == []
    assert any("refused a connection from 127.0.0.1" in line for line in log_lines)


def test_an_insecure_peer_is_refused(transports, log_lines) -> None:
    (ours, inbox), (plain, _) = transports("ours", ClusterKey.generate()), transports("plain", None)
    plain.send(ours.address, Channel.RAFT, b"hello")
    wait_until(lambda: ours.handshakes.failures > 0)
    assert inbox.payloads() == []
    assert any("does not use CURVE" in line for line in log_lines)


class _Tap:
    """A TCP relay on 127.0.0.1 that records every byte going towards ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    with self.lock:
                        self.seen += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                s.close()

    def close(self) -> None:
        self.listener.close()

    def saw(self, marker: bytes) -> bool:
        with self.lock:
            return marker in self.seen


@pytest.mark.parametrize("secure", [True, False])
def test_peer_traffic_is_unreadable_on_the_wire_only_when_secured(transports, secure: bool) -> None:
    key = ClusterKey.generate() if secure else None
    (a, _), (b, inbox_b) = transports("a", key), transports("b", key)
    tap = _Tap(("127.0.0.1", b.port))
    marker = b"raft-secret-payload-" + bytes(range(65, 91))
    try:
        a.send(f"127.0.0.1:{tap.port}", Channel.RAFT, marker)
        wait_until(lambda: inbox_b.payloads() == [marker])
        assert tap.saw(marker) is not secure
    finally:
        tap.close()
