"""Raft message codec and the core's handling of odd or hostile input."""

from __future__ import annotations

import random

import msgspec
import pytest

from orion.raft.core import FOLLOWER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    RequestVote,
    TimeoutNow,
    VoteResponse,
    decode_message,
    encode_message,
)
from orion.raft.types import Entry, EntryKind, HardState, Membership, Snapshot, SnapshotMeta

MEMBERS = Membership(voters={"a": "h:1", "b": "h:2", "c": "h:3"})

SAMPLES = [
    RequestVote("a", "b", 3, 10, 2, pre_vote=True, transfer=False),
    VoteResponse("b", "a", 3, True, pre_vote=True),
    AppendEntries("a", "b", 3, 9, 2, [Entry(10, 3, EntryKind.NORMAL, b"x"), Entry(11, 3)], 8),
    AppendResponse("b", "a", 3, False, 9, conflict_term=2, conflict_index=7),
    Heartbeat("a", "b", 3, 8, read_seq=4),
    HeartbeatResponse("b", "a", 3, read_seq=4),
    InstallSnapshot("a", "b", 3, Snapshot(SnapshotMeta(5, 2, MEMBERS), b"state")),
    InstallSnapshotResponse("b", "a", 3, 5),
    TimeoutNow("a", "b", 3),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: object) -> None:
    assert decode_message(encode_message(msg)) == msg  # type: ignore[arg-type]


def test_garbage_is_refused() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_message(b"\xc1\xff garbage")
    with pytest.raises(msgspec.ValidationError):
        decode_message(msgspec.msgpack.encode([99, "a", "b", 1]))  # unknown tag
    with pytest.raises(msgspec.ValidationError):
        decode_message(msgspec.msgpack.encode([3, "a", "b", "not-a-term", 0, 0, [], 0]))
    with pytest.raises(msgspec.ValidationError):
        decode_message(encode_message(TimeoutNow("a", "b", -1)))


def _core(node_id: str = "b") -> RaftCore:
    store = MemoryStore()
    return RaftCore(node_id, store.load(), RaftConfig(), random.Random(1), bootstrap=MEMBERS)


def test_core_ignores_misaddressed_and_malformed_messages() -> None:
    core = _core()
    core.ready()
    before = (core.term, core.last_index, core.commit_index)
    core.step(AppendEntries("a", "c", 5, 1, 1, [Entry(2, 5)], 2))  # for another node
    assert (core.term, core.last_index, core.commit_index) == before
    # Right node, but entries that do not follow prev_index: ignored (only the term moves).
    core.step(AppendEntries("a", "b", 5, 1, 1, [Entry(7, 5)], 7))
    core.step(AppendEntries("a", "b", 5, -3, 1, [], 7))
    assert (core.last_index, core.commit_index) == before[1:]
    assert core.role == FOLLOWER
    # A vote request for a stale term is answered with a refusal, never a grant.
    core.step(RequestVote("c", "b", 1, 100, 100))
    assert all(not getattr(m, "granted", False) for m in core.ready().messages)


def test_vote_is_in_hard_state_of_the_same_ready_as_the_grant() -> None:
    core = RaftCore(
        "b", MemoryStore().load(), RaftConfig(check_quorum=False), random.Random(1), bootstrap=MEMBERS
    )
    core.ready()
    core.step(RequestVote("a", "b", 5, 1, 1))
    rd = core.ready()
    assert rd.hard_state == HardState(5, "a", 1)
    assert any(isinstance(m, VoteResponse) and m.granted for m in rd.messages)


# msgspec raises UnicodeDecodeError (not its own DecodeError) for bad UTF-8 in some string fields
# and union tags; a fuzzed frame like this once killed a node's Raft actor.
BAD_STR = b"\xa2\xe0\x80"  # a 2-byte msgpack str that is not UTF-8


@pytest.mark.parametrize(
    "frame",
    [
        b"\x96\x01" + BAD_STR + b"\xa1b\x01\x01\x01",  # RequestVote with a bad src
        b"\x93" + BAD_STR + b"\xa1a\xa1b",  # a bad tag
    ],
)
def test_raft_decode_refuses_bad_utf8(frame: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_message(frame)
