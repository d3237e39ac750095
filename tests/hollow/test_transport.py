"""The hollow nodes' shared transport speaks the real node-to-node wire: a real
``PeerTransport`` reaches each hollow node at its own address, and a hollow node's frames
reach the real one under that node's address, with and without CURVE."""

from __future__ import annotations

import queue
import time

import pytest

from orion.gossip.messages import encode_message
from orion.hollow.transport import RECV_BATCH, HollowTransport
from orion.security.keys import ClusterKey
from orion.testing.localcluster import free_ports
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport
from tests.gossip.test_messages import SAMPLES


def _poll_until(
    transport: HollowTransport, count: int, deadline_s: float = 10.0
) -> list[tuple[int, Channel, bytes]]:
    got: list[tuple[int, Channel, bytes]] = []
    deadline = time.monotonic() + deadline_s
    while len(got) < count and time.monotonic() < deadline:
        got.extend(transport.poll(0.05))
    return got


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "curve"])
def test_frames_both_ways_between_a_real_node_and_two_hollow_ones(secure: bool) -> None:
    key = ClusterKey.generate() if secure else None
    (real_port,) = free_ports(1)
    (hollow_port,) = free_ports(1, "127.1.0.1")
    received: queue.Queue[tuple[Channel, bytes]] = queue.Queue()
    real = PeerTransport("127.0.0.1", real_port, lambda c, p: received.put((c, p)), curve=key)
    hollow = HollowTransport(key)
    real.start()
    try:
        first = hollow.bind("127.1.0.1", hollow_port)
        second = hollow.bind("127.1.0.2", hollow_port)
        got: list[tuple[int, Channel, bytes]] = []
        deadline = time.monotonic() + 10.0
        # Raft frames may wait for the connection; resend until both arrive.
        while len(got) < 2 and time.monotonic() < deadline:
            real.send(f"127.1.0.1:{hollow_port}", Channel.RAFT, b"to-first")
            real.send(f"127.1.0.2:{hollow_port}", Channel.RAFT, b"to-second")
            got.extend(_poll_until(hollow, 2, 1.0))
        assert {(first, Channel.RAFT, b"to-first"), (second, Channel.RAFT, b"to-second")} <= set(got)
        assert hollow.bytes_from[real.address] > 0

        hollow.send(second, real.address, Channel.FORWARD, b"from-second")
        assert received.get(timeout=10.0) == (Channel.FORWARD, b"from-second")
    finally:
        hollow.close()
        real.stop()


def test_a_second_bind_on_a_taken_address_is_refused_by_name() -> None:
    (port,) = free_ports(1, "127.1.0.3")
    hollow = HollowTransport(None)
    try:
        hollow.bind("127.1.0.3", port)
        with pytest.raises(OSError, match=f"127.1.0.3:{port}"):
            hollow.bind("127.1.0.3", port)
    finally:
        hollow.close()


def test_frames_between_nodes_of_one_pool_stay_in_memory_and_come_first() -> None:
    (port,) = free_ports(1, "127.1.0.4")
    hollow = HollowTransport(None)
    try:
        first = hollow.bind("127.1.0.4", port)
        second = hollow.bind("127.1.0.5", port)
        hollow.send(first, f"127.1.0.5:{port}", Channel.GOSSIP, b"ping")
        hollow.send(second, f"127.1.0.4:{port}", Channel.RAFT, b"append")
        # No wait: the poll returns them at once, in order, and opens no socket for them.
        assert list(hollow.poll(5.0)) == [(second, Channel.GOSSIP, b"ping"), (first, Channel.RAFT, b"append")]
        assert hollow.socket_count == 2 and hollow.local_frames == 2
        assert hollow.frames_from[f"127.1.0.4:{port}"] == 1 and hollow.bytes_from[f"127.1.0.5:{port}"] == 6
        hollow.connect(f"127.1.0.5:{port}")  # a member of the same pool: nothing to open
        assert hollow.socket_count == 2
    finally:
        hollow.close()


def test_probes_and_their_answers_are_handed_over_before_other_frames() -> None:
    (port,) = free_ports(1, "127.1.0.6")
    hollow = HollowTransport(None)
    try:
        first = hollow.bind("127.1.0.6", port)
        hollow.bind("127.1.0.7", port)
        to_second = f"127.1.0.7:{port}"
        frames = {type(message).__name__: encode_message(message) for message in SAMPLES}
        for name in ("Gossip", "PushPull", "Ping", "Ack", "Nack", "PingReq"):
            hollow.send(first, to_second, Channel.GOSSIP, frames[name])
        hollow.send(first, to_second, Channel.RAFT, frames["Ping"])  # only gossip is looked into
        got = [payload for _, _, payload in hollow.poll(0.0)]
        names = {payload: name for name, payload in frames.items()}
        assert [names[p] for p in got] == ["Ping", "Ack", "Nack", "PingReq", "Gossip", "PushPull", "Ping"]
    finally:
        hollow.close()


def test_more_frames_than_one_read_takes_all_arrive_without_new_traffic() -> None:
    """A ROUTER's descriptor fires once for many frames (it is edge-triggered): those past one
    read's batch must come out of later polls without another frame arriving to wake it."""
    (real_port,) = free_ports(1)
    (hollow_port,) = free_ports(1, "127.1.0.3")
    real = PeerTransport("127.0.0.1", real_port, lambda c, p: None)
    hollow = HollowTransport(None)
    real.start()
    try:
        slot = hollow.bind("127.1.0.3", hollow_port)
        count = 3 * RECV_BATCH + 5
        for i in range(count):
            real.send(f"127.1.0.3:{hollow_port}", Channel.RAFT, b"frame-%d" % i)
        got = _poll_until(hollow, count, 20.0)
        assert [payload for _, _, payload in got] == [b"frame-%d" % i for i in range(count)]
        assert {s for s, _, _ in got} == {slot}
    finally:
        hollow.close()
        real.stop()
