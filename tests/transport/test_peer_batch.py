"""``PeerTransport.send_batch``: a Raft Ready's frames to several peers handed over at once."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from orion.testing.localcluster import wait_for
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport, _runs_by_address
from tests.transport.test_peer import Inbox

wait_until = functools.partial(wait_for, timeout=5.0, interval=0.01)


@pytest.fixture
def trio() -> Iterator[tuple[PeerTransport, PeerTransport, Inbox, PeerTransport, Inbox]]:
    inbox_b, inbox_c = Inbox(), Inbox()
    a = PeerTransport("127.0.0.1", 0, Inbox(), name="a", max_frame=1024, allow_fault_injection=True)
    b = PeerTransport("127.0.0.1", 0, inbox_b, name="b", max_frame=1024)
    c = PeerTransport("127.0.0.1", 0, inbox_c, name="c", max_frame=1024)
    for transport in (a, b, c):
        transport.start()
    try:
        yield a, b, inbox_b, c, inbox_c
    finally:
        for transport in (a, b, c):
            transport.stop()


def test_a_batch_reaches_every_peer_in_order_per_peer(trio) -> None:
    a, b, inbox_b, c, inbox_c = trio
    frames = [
        (b.address, b"b1"),
        (c.address, b"c1"),
        (b.address, b"b2"),
        (b.address, b"b3"),
        (c.address, b"c2"),
    ]
    a.send_batch(Channel.RAFT, frames)
    wait_until(lambda: len(inbox_b.payloads()) == 3 and len(inbox_c.payloads()) == 2)
    assert inbox_b.payloads(Channel.RAFT) == [b"b1", b"b2", b"b3"]
    assert inbox_c.payloads(Channel.RAFT) == [b"c1", b"c2"]
    assert a.stats["sent"] == 5


def test_a_batch_drops_only_the_frames_that_may_not_go(trio) -> None:
    a, b, inbox_b, c, inbox_c = trio
    a.block({c.address})
    a.send_batch(Channel.RAFT, [(b.address, b"x" * 2000), (c.address, b"to-c"), (b.address, b"fits")])
    wait_until(lambda: inbox_b.payloads() == [b"fits"])
    stats = a.stats
    assert (stats["dropped_oversized"], stats["dropped_blocked"], stats["sent"]) == (1, 1, 1)
    assert inbox_c.payloads() == []


def test_runs_group_consecutive_frames_of_one_address() -> None:
    frames = [("b", b"1"), ("b", b"2"), ("c", b"3"), ("b", b"4")]
    assert _runs_by_address(frames) == [("b", [b"1", b"2"]), ("c", [b"3"]), ("b", [b"4"])]
    assert _runs_by_address([]) == []
