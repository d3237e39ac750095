"""Two real PeerTransports on 127.0.0.1 talking over TCP."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import pytest
import zmq
from loguru import logger

from orion.testing.localcluster import wait_for
from orion.transport.frames import Channel, encode_header
from orion.transport.peer import PeerTransport

# The project's deadline poll, tightened: frames on loopback arrive within milliseconds.
wait_until = functools.partial(wait_for, timeout=5.0, interval=0.01)


class Inbox:
    def __init__(self) -> None:
        self.frames: list[tuple[Channel, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, channel: Channel, payload: bytes) -> None:
        with self.lock:
            self.frames.append((channel, payload))

    def payloads(self, channel: Channel | None = None) -> list[bytes]:
        with self.lock:
            return [p for c, p in self.frames if channel is None or c == channel]


@pytest.fixture
def pair() -> Iterator[tuple[PeerTransport, Inbox, PeerTransport, Inbox]]:
    inbox_a, inbox_b = Inbox(), Inbox()
    a = PeerTransport("127.0.0.1", 0, inbox_a, name="a", max_frame=1024, allow_fault_injection=True)
    b = PeerTransport("127.0.0.1", 0, inbox_b, name="b", max_frame=1024, allow_fault_injection=True)
    a.start()
    b.start()
    try:
        yield a, inbox_a, b, inbox_b
    finally:
        a.stop()
        b.stop()


def test_frames_flow_both_ways_on_every_channel(pair) -> None:
    a, inbox_a, b, inbox_b = pair
    a.send(b.address, Channel.RAFT, b"append-entries")
    a.send_many(b.address, Channel.FORWARD, [b"fwd-1", b"fwd-2"])
    b.send(a.address, Channel.RAFT, b"reply")
    wait_until(lambda: len(inbox_b.payloads()) == 3 and len(inbox_a.payloads()) == 1)
    assert inbox_b.payloads(Channel.RAFT) == [b"append-entries"]
    assert inbox_b.payloads(Channel.FORWARD) == [b"fwd-1", b"fwd-2"]
    assert inbox_a.payloads() == [b"reply"]
    # Gossip needs a completed connection (IMMEDIATE): keep probing until one gets through.
    wait_until(lambda: a.send(b.address, Channel.GOSSIP, b"ping") or bool(inbox_b.payloads(Channel.GOSSIP)))
    assert set(inbox_b.payloads(Channel.GOSSIP)) == {b"ping"}
    assert a.stats["sent"] >= 4
    assert b.stats["received"] >= 4


def test_many_frames_from_many_threads_arrive_in_order_per_thread(pair) -> None:
    a, _, b, inbox_b = pair

    def sender(tag: int) -> None:
        for i in range(200):
            a.send(b.address, Channel.RAFT, f"{tag}:{i}".encode())

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: len(inbox_b.payloads()) == 800)
    for tag in range(4):
        seq = [int(p.split(b":")[1]) for p in inbox_b.payloads() if p.startswith(f"{tag}:".encode())]
        assert seq == list(range(200))


def test_garbage_is_counted_and_the_transport_keeps_working(pair) -> None:
    a, _, b, inbox_b = pair
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(f"tcp://{b.address}")
    try:
        raw.send(b"\x00garbage")  # one part only
        raw.send_multipart([b"\xff\x01\x01\x00", b"bad magic"])
        raw.send_multipart([encode_header(Channel.RAFT, "x:1")[:-1], b"short sender"])
        raw.send_multipart([bytes([0xA7, 1, 99, 0]), b"unknown channel"])
        raw.send_multipart([encode_header(Channel.RAFT, "x:1"), b"a", b"three parts"])
        wait_until(lambda: b.stats["dropped_malformed"] == 5)
    finally:
        raw.close(0)
    a.send(b.address, Channel.RAFT, b"still alive")
    wait_until(lambda: inbox_b.payloads() == [b"still alive"])


def test_oversized_frames_are_dropped_on_both_sides_and_never_silently(pair) -> None:
    a, _, b, inbox_b = pair
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        a.send(b.address, Channel.RAFT, b"x" * 1025)
        assert a.stats["dropped_oversized"] == 1
        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(f"tcp://{b.address}")
        try:
            raw.send_multipart([encode_header(Channel.RAFT, "x:1"), b"y" * 2000])
            wait_until(lambda: b.stats["dropped_oversized"] == 1)
        finally:
            raw.close(0)
    finally:
        logger.remove(sink)
    assert any("outgoing RAFT frame" in w and "frame limit" in w for w in warnings), warnings
    assert any("2000-byte RAFT frame from x:1" in w for w in warnings), warnings
    a.send(b.address, Channel.RAFT, b"z" * 1024)
    wait_until(lambda: inbox_b.payloads() == [b"z" * 1024])


def test_gossip_to_a_dead_peer_does_not_queue() -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    a = PeerTransport("127.0.0.1", 0, inbox_a, name="a")
    a.start()
    # Reserve a free port for b, then release it so nothing listens there yet.
    probe = PeerTransport("127.0.0.1", 0, Inbox(), name="probe")
    probe.start()
    b_port = probe.port
    probe.stop()
    b = PeerTransport("127.0.0.1", b_port, inbox_b, name="b")
    try:
        for i in range(50):
            a.send(f"127.0.0.1:{b_port}", Channel.GOSSIP, f"old-{i}".encode())
        wait_until(lambda: a.stats["dropped_full"] == 50)
        b.start()
        wait_until(lambda: a.send(b.address, Channel.GOSSIP, b"new") or bool(inbox_b.payloads()))
        # a RAFT frame after the gossip is an ordering fence: once it arrives, anything
        # queued before it would have arrived too.
        a.send(b.address, Channel.RAFT, b"fence")
        wait_until(lambda: inbox_b.payloads(Channel.RAFT) == [b"fence"])
        assert set(inbox_b.payloads(Channel.GOSSIP)) == {b"new"}
    finally:
        a.stop()
        b.stop()


def test_raft_frames_wait_for_a_peer_that_starts_late() -> None:
    inbox_b = Inbox()
    a = PeerTransport("127.0.0.1", 0, Inbox(), name="a")
    a.start()
    probe = PeerTransport("127.0.0.1", 0, Inbox(), name="probe")
    probe.start()
    b_port = probe.port
    probe.stop()
    b = PeerTransport("127.0.0.1", b_port, inbox_b, name="b")
    try:
        a.send(f"127.0.0.1:{b_port}", Channel.RAFT, b"queued")
        wait_until(lambda: a.stats["sent"] == 1)
        b.start()
        wait_until(lambda: inbox_b.payloads() == [b"queued"])
    finally:
        a.stop()
        b.stop()


def test_block_drops_traffic_both_ways_and_heals(pair) -> None:
    a, inbox_a, b, inbox_b = pair
    a.send(b.address, Channel.RAFT, b"before")
    wait_until(lambda: inbox_b.payloads() == [b"before"])
    a.block({b.address})
    a.send(b.address, Channel.RAFT, b"outbound while blocked")
    b.send(a.address, Channel.RAFT, b"inbound while blocked")
    wait_until(lambda: a.stats["dropped_blocked"] == 2)
    a.block(set())
    b.send(a.address, Channel.RAFT, b"after")
    a.send(b.address, Channel.RAFT, b"after")
    wait_until(lambda: inbox_a.payloads() == [b"after"] and inbox_b.payloads() == [b"before", b"after"])


def test_block_requires_fault_injection_to_be_enabled() -> None:
    t = PeerTransport("127.0.0.1", 0, Inbox())
    with pytest.raises(RuntimeError, match="fault injection"):
        t.block({"127.0.0.1:1"})


def test_callback_errors_do_not_stop_the_transport(pair) -> None:
    a, _, _, _ = pair
    seen: list[bytes] = []

    def flaky(channel: Channel, payload: bytes) -> None:
        if payload == b"boom":
            raise ValueError("bad payload")
        seen.append(payload)

    c = PeerTransport("127.0.0.1", 0, flaky, name="c")
    c.start()
    try:
        a.send(c.address, Channel.RAFT, b"boom")
        a.send(c.address, Channel.RAFT, b"fine")
        wait_until(lambda: seen == [b"fine"])
        assert c.stats["callback_errors"] == 1
    finally:
        c.stop()


def test_bind_failure_raises_in_start(pair) -> None:
    a, _, _, _ = pair
    clash = PeerTransport("127.0.0.1", a.port, Inbox())
    with pytest.raises(OSError, match="cannot bind"):
        clash.start()


def test_disconnect_forgets_a_peer_and_later_sends_reconnect(pair) -> None:
    a, _, b, inbox_b = pair
    a.send(b.address, Channel.RAFT, b"one")
    wait_until(lambda: inbox_b.payloads() == [b"one"])
    a.disconnect(b.address)
    a.send(b.address, Channel.RAFT, b"two")
    wait_until(lambda: inbox_b.payloads() == [b"one", b"two"])


def test_an_unusable_address_is_counted_not_fatal(pair) -> None:
    a, _, b, inbox_b = pair
    a.send("not an address", Channel.RAFT, b"lost")
    wait_until(lambda: a.stats["dropped_send_error"] == 1)
    a.send(b.address, Channel.RAFT, b"fine")
    wait_until(lambda: inbox_b.payloads() == [b"fine"])


def test_advertised_host_gets_the_bound_port() -> None:
    bare = PeerTransport("127.0.0.1", 0, Inbox(), advertise="127.0.0.1")
    full = PeerTransport("127.0.0.1", 0, Inbox(), advertise="127.0.0.1:7100")
    bare.start()
    try:
        assert bare.address == f"127.0.0.1:{bare.port}"
        assert full.address == "127.0.0.1:7100"
    finally:
        bare.stop()
