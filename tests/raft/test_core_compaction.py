"""Compaction's trailing entries at the edges of their two caps (count and bytes), and the
snapshot-stream hooks' exact effects (timers, contact, where the retry starts)."""

from __future__ import annotations

from core_harness import CoreHarness

from orion.raft.core import RaftConfig, RaftCore
from orion.raft.messages import AppendEntries, InstallSnapshot

KB = 1000


def _compacted(trailing_entries: int, trailing_bytes: int) -> RaftCore:
    """A single node with entries 1 (its configuration), 2 (its no-op) and 3..42 (1,000 bytes
    each), compacted at 42."""
    h = CoreHarness(["n1"], RaftConfig(trailing_entries=trailing_entries, trailing_bytes=trailing_bytes))
    leader = h.elect("n1")
    leader.propose_batch([b"x" * KB] * 40)
    h.pump()
    assert leader.applied_index == 42
    leader.compact(42, b"s")
    return leader


def _kept(core: RaftCore) -> int:
    return core.applied_index - core.log_first_index + 1


def test_the_byte_cap_counts_exactly_the_entries_that_fit() -> None:
    assert _kept(_compacted(5, 4 * KB)) == 4  # the 5th would make 5,000 > 4,000
    assert _kept(_compacted(5, 4 * KB + 500)) == 4
    assert _kept(_compacted(5, 5 * KB)) == 5  # exactly at the cap still fits


def test_the_count_cap_holds_when_the_bytes_would_allow_more() -> None:
    assert _kept(_compacted(5, 6 * KB + 500)) == 5
    assert _kept(_compacted(5, 0)) == 5


def test_the_byte_cap_reaches_down_to_the_first_entry_in_the_log() -> None:
    """Entries 2..42 hold exactly 40,000 bytes; entry 1 (the configuration) does not fit too."""
    assert _kept(_compacted(100, 40 * KB)) == 41
    assert _kept(_compacted(100, 10**9)) == 42


def _streaming() -> tuple[CoreHarness, RaftCore]:
    """n3 needs a snapshot; its stream is under way (the InstallSnapshot never lands whole)."""
    h = CoreHarness(["n1", "n2", "n3"], RaftConfig(election_ticks=10, heartbeat_ticks=2, trailing_entries=0))
    leader = h.elect("n1")
    h.blocked.add("n3")
    leader.propose_batch([b"x"] * 20)
    h.pump()
    leader.compact(leader.applied_index, b"fsm")
    h.blocked.clear()
    h.drop = lambda m: isinstance(m, InstallSnapshot)
    h.tick(2, only="n1")
    assert len(h.snapshots_to("n3")) == 1
    return h, leader


def test_stream_progress_counts_as_contact_and_restarts_the_wait() -> None:
    h, leader = _streaming()
    h.blocked.add("n3")  # only the stream speaks for n3 now
    h.tick(7, only="n1")
    assert leader.last_contact_ticks("n3") == 7
    leader.snapshot_progress("n3")
    assert leader.last_contact_ticks("n3") == 0
    sent = len(h.sent)
    ticks = 0
    while ticks < 100 and not any(
        isinstance(m, AppendEntries | InstallSnapshot) and m.dst == "n3" for m in h.sent[sent:]
    ):
        h.tick(1, only="n1")
        ticks += 1
    assert 20 < ticks <= 22, f"gave up on the stream {ticks} ticks after its last progress"


def test_a_failed_stream_is_retried_from_the_match_index_with_a_snapshot() -> None:
    h, leader = _streaming()
    sent = len(h.sent)
    leader.snapshot_failed("n3")
    h.pump()
    to_n3 = [m for m in h.sent[sent:] if m.dst == "n3" and isinstance(m, AppendEntries | InstallSnapshot)]
    assert isinstance(to_n3[0], InstallSnapshot), "probed after a snapshot that was never installed"


def test_an_installed_snapshot_counts_as_applied() -> None:
    h, leader = _streaming()
    h.drop = lambda _m: False
    h.inbox.extend(h.snapshots_to("n3"))
    h.pump()
    follower = h.core("n3")
    assert follower.snapshot_index == leader.snapshot_index
    assert follower.applied_index >= follower.snapshot_index
