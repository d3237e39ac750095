"""Byte limits on replication (max_size_per_msg, max_inflight_bytes) and trailing entries kept
behind a snapshot, driven on a few cores wired directly (see core_harness)."""

from __future__ import annotations

import msgspec
import pytest
from core_harness import CoreHarness

from orion.raft.core import RaftConfig, RaftCore
from orion.raft.log import ENTRY_OVERHEAD_BYTES, RaftLog
from orion.raft.messages import AppendEntries, AppendResponse, HeartbeatResponse, encode_message
from orion.raft.progress import Progress
from orion.raft.types import (
    Entry,
    EntryKind,
    HardState,
    Membership,
    Snapshot,
    SnapshotMeta,
    StoreCorruptError,
    StoredState,
    encode_membership,
)

MIB = 1 << 20
IDS = ["n1", "n2", "n3"]


def _entry_bytes(msg: AppendEntries) -> int:
    return sum(len(e.data) + ENTRY_OVERHEAD_BYTES for e in msg.entries)


def test_appends_are_split_by_bytes_and_only_a_lone_entry_exceeds_the_limit() -> None:
    limit = MIB
    h = CoreHarness(IDS, RaftConfig(max_size_per_msg=limit))
    leader = h.elect("n1")
    # 1 MiB entries exceed the limit with their framing: each must travel alone. 256 KiB
    # entries fit three to a message (four would pass the limit). Tiny ones fill the rest.
    data = [bytes([k % 251]) * MIB for k in range(6)]
    data += [bytes([k % 251]) * (256 << 10) for k in range(10)]
    data += [b"x" * 100 for _ in range(50)]
    last = leader.propose_batch(data)[-1]
    h.pump()
    for follower in ("n2", "n3"):
        msgs = [m for m in h.appends_to(follower) if m.entries]
        assert msgs
        for msg in msgs:
            if len(msg.entries) > 1:
                assert _entry_bytes(msg) <= limit
                assert len(encode_message(msg)) <= limit + 256, "framing beyond the counted overhead"
            else:
                assert len(msg.entries[0].data) == MIB or _entry_bytes(msg) <= limit
        sizes = [len(m.entries) for m in msgs]
        assert max(sizes) > 1, "small entries should share a message"
        assert any(len(m.entries) == 3 and len(m.entries[0].data) == 256 << 10 for m in msgs)
        assert h.applied[follower] == last
        assert h.logs_match("n1", follower)


def test_zero_size_limit_sends_one_entry_per_message_and_count_limit_still_applies() -> None:
    h = CoreHarness(IDS, RaftConfig(max_size_per_msg=0))
    leader = h.elect("n1")
    last = leader.propose_batch([b"a" * 10] * 7)[-1]
    h.pump()
    assert all(len(m.entries) <= 1 for m in h.appends_to("n2"))
    assert h.applied["n2"] == last

    h = CoreHarness(IDS, RaftConfig(max_append_entries=4))
    leader = h.elect("n1")
    h.blocked.add("n3")
    last = leader.propose_batch([b"b" * 10] * 30)[-1]
    h.pump()
    h.blocked.clear()
    h.tick(4)  # heartbeats: n3 answers and is caught up in batches of at most 4
    assert all(len(m.entries) <= 4 for m in h.appends_to("n3"))
    assert h.applied["n3"] == last


def test_inflight_bytes_pause_and_resume_on_acks() -> None:
    window = 3 * MIB
    h = CoreHarness(IDS, RaftConfig(max_size_per_msg=MIB, max_inflight_bytes=window))
    leader = h.elect("n1")
    h.pump()
    before = len(h.appends_to("n2"))
    h.hold = lambda m: isinstance(m, AppendResponse) and m.src == "n2"
    last = leader.propose_batch([bytes([k]) * MIB for k in range(10)])[-1]
    h.pump()
    delivered = 0
    rounds = 0
    while delivered < 10:
        sent_now = sum(len(m.entries) for m in h.appends_to("n2")[before:])
        # The window is full once it holds 3 MiB: three 1 MiB entries (plus framing) fill it.
        assert sent_now - delivered == min(3, 10 - delivered), f"round {rounds}: {sent_now} sent"
        assert h.held, "the leader is waiting for acks it has not had"
        delivered = sent_now
        h.release()
        rounds += 1
    assert rounds == 4
    h.hold = lambda _m: False
    h.release()
    assert leader.match_index("n2") == last
    # n3 acked as it went: it was never paused and has everything.
    assert h.applied["n3"] == last and h.applied["n2"] == last


def test_heartbeat_answers_release_inflight_bytes_when_acks_are_lost() -> None:
    h = CoreHarness(IDS, RaftConfig(max_size_per_msg=MIB, max_inflight_bytes=2 * MIB))
    leader = h.elect("n1")
    h.drop = lambda m: isinstance(m, AppendResponse) and m.src == "n2"
    last = leader.propose_batch([bytes([k]) * MIB for k in range(6)])[-1]
    h.pump()
    assert h.core("n2").last_index == last - 4  # two in flight fill the 2 MiB window
    beats = 0
    while h.core("n2").last_index < last:
        h.tick()
        beats += sum(1 for m in h.sent if isinstance(m, HeartbeatResponse) and m.src == "n2")
        assert beats < 100, "heartbeat answers never released the window"
    assert h.logs_match("n1", "n2")


def test_progress_counts_bytes_per_append_and_frees_them() -> None:
    pr = Progress(1)
    pr.become_replicate()
    pr.sent(5, 500)
    pr.sent(9, 300)
    pr.sent(12, 200)
    assert pr.inflight_bytes == 1000
    assert pr.inflight_full(64, 1000) and not pr.inflight_full(64, 1001) and not pr.inflight_full(64, 0)
    assert pr.inflight_full(3, 0)
    assert pr.update(9)
    assert pr.inflight_bytes == 200 and list(pr.inflight) == [12]
    pr.free_first()
    assert pr.inflight_bytes == 0 and not pr.inflight
    pr.free_first()  # nothing outstanding: no effect
    pr.sent(20, 50)
    pr.become_probe()
    assert pr.inflight_bytes == 0 and not pr.inflight_sizes


def test_log_limit_bytes_picks_the_longest_prefix_that_fits() -> None:
    sizes = [10, 20, 30, 1000, 5]
    log = RaftLog(0, 0, [Entry(i + 1, 1, 0, b"z" * n) for i, n in enumerate(sizes)])
    o = ENTRY_OVERHEAD_BYTES
    assert log.limit_bytes(1, 5, 10_000) == (5, sum(sizes) + 5 * o)
    assert log.limit_bytes(1, 5, 10 + 20 + 2 * o) == (2, 30 + 2 * o)
    assert log.limit_bytes(1, 5, 10 + 20 + 2 * o - 1) == (1, 10 + o)
    assert log.limit_bytes(4, 5, 100) == (4, 1000 + o)  # a lone oversize entry still goes
    assert log.limit_bytes(4, 4, 100) == (4, 1000 + o)
    assert log.limit_bytes(2, 3, 0) == (2, 20 + o)
    # Sizes survive truncation, appends and compaction.
    log.truncate_from(3)
    log.append([Entry(3, 2, 0, b"y" * 7)])
    assert log.limit_bytes(2, 3, 10_000) == (3, 27 + 2 * o)
    log.compact(2, 0)
    assert log.first_index == 3 and log.limit_bytes(3, 3, 10_000) == (3, 7 + o)


def test_log_sizes_from_proposed_data_match_sizes_measured_from_entries() -> None:
    payloads = [b"p" * n for n in (5, 500, 50, 5000, 0, 70)]
    entries = [Entry(i + 1, 1, 0, d) for i, d in enumerate(payloads)]
    summed = RaftLog(0, 0, list(entries))
    proposed = RaftLog(0, 0, [])
    proposed.append(entries[:2], payloads[:2])
    proposed.append(entries[2:3])  # a configuration, say: no data given, summed later
    proposed.limit_bytes(1, 3, 1 << 20)
    proposed.append(entries[3:], payloads[3:])
    for lo in range(1, 7):
        for hi in range(lo, 7):
            for budget in (0, 60, 600, 6000, 1 << 20):
                assert proposed.limit_bytes(lo, hi, budget) == summed.limit_bytes(lo, hi, budget)


def _replicate_with_one_lagging(trailing: int, lag: int) -> tuple[CoreHarness, RaftCore, int]:
    """n3 misses ``lag`` entries, then the leader compacts at its applied index."""
    h = CoreHarness(IDS, RaftConfig(trailing_entries=trailing))
    leader = h.elect("n1")
    h.blocked.add("n3")
    for k in range(lag):
        leader.propose(f"k{k}".encode())
        h.pump()
    snap = leader.compact(leader.applied_index, b"fsm")
    h.blocked.clear()
    return h, leader, snap.meta.index


def test_follower_a_few_entries_behind_at_compaction_catches_up_with_entries() -> None:
    h, leader, snap_index = _replicate_with_one_lagging(trailing=50, lag=20)
    behind = h.core("n3").last_index
    assert leader.snapshot_index == snap_index and leader.log_first_index <= behind + 1
    h.tick(4)
    assert not h.snapshots_to("n3")
    assert h.applied["n3"] == leader.last_index and h.logs_match("n1", "n3")
    assert h.installed["n3"] == []


def test_follower_behind_the_first_index_gets_a_snapshot() -> None:
    h, leader, snap_index = _replicate_with_one_lagging(trailing=5, lag=30)
    assert leader.log_first_index == snap_index - 5 + 1
    assert h.core("n3").last_index + 1 < leader.log_first_index
    h.tick(4)
    assert [m.snapshot.meta.index for m in h.snapshots_to("n3")] == [snap_index]
    assert h.core("n3").snapshot_index == snap_index and h.core("n3").log_first_index == snap_index + 1
    index = leader.propose(b"after")
    h.pump()
    assert h.applied["n3"] == index


def test_compact_keeps_at_most_trailing_entries() -> None:
    h = CoreHarness(["n1"], RaftConfig(trailing_entries=10))
    leader = h.elect("n1")
    leader.propose_batch([b"v"] * 40)
    h.pump()
    leader.compact(8, b"s8")  # fewer than 10 entries behind: nothing dropped
    assert (leader.snapshot_index, leader.log_first_index) == (8, 1)
    leader.compact(30, b"s30")
    assert (leader.snapshot_index, leader.log_first_index) == (30, 21)
    assert leader.entry_term(20) is not None and leader.entry_term(19) is None
    with pytest.raises(ValueError, match="at or below the snapshot index"):
        leader.compact(25, b"old")
    with pytest.raises(ValueError, match="beyond the applied index"):
        leader.compact(leader.applied_index + 1, b"future")


def test_compact_keeps_no_more_trailing_bytes_than_the_cap() -> None:
    h = CoreHarness(["n1"], RaftConfig(trailing_entries=100, trailing_bytes=10_000))
    leader = h.elect("n1")
    leader.propose_batch([b"x" * 1000] * 40)
    h.pump()
    leader.compact(leader.applied_index, b"s")
    kept = leader.applied_index - leader.log_first_index + 1
    assert kept == 10  # ten 1,000-byte entries fit the 10,000-byte cap, the eleventh would not
    unbounded = CoreHarness(["n1"], RaftConfig(trailing_entries=100, trailing_bytes=0))
    other = unbounded.elect("n1")
    other.propose_batch([b"x" * 1000] * 40)
    unbounded.pump()
    other.compact(other.applied_index, b"s")
    assert other.log_first_index == 1  # 0 = no byte cap: every one of the 41 entries is kept


def _entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, f"e{i}".encode()) for i in range(lo, hi + 1)]


def _snapshot(index: int, term: int, membership: Membership) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, membership), b"fsm")


def test_restart_from_trailing_entries_loaded_from_disk() -> None:
    old = Membership(voters={"n1": "a", "n2": "b", "n3": "c"}, cluster_id="c1")
    newer = msgspec.structs.replace(old, non_voters={"n4": "d"})
    entries = _entries(21, 40)
    # A configuration inside the snapshot (already summed up by its membership) and one after.
    entries[25 - 21] = Entry(25, 1, EntryKind.CONFIG, encode_membership(old))
    entries[35 - 21] = Entry(35, 1, EntryKind.CONFIG, encode_membership(newer))
    stored = StoredState(HardState(1, "", 38), _snapshot(30, 1, old), entries)
    h = CoreHarness(IDS, RaftConfig())
    core = h.start("n1", stored)
    assert (core.snapshot_index, core.applied_index, core.commit_index) == (30, 30, 38)
    assert core.log_first_index <= 22 and core.last_index == 40
    assert core.entries(31, 40) == entries[10:]
    assert core.membership == newer
    assert core.snapshot_meta(30).membership == old
    rd = core.ready()
    assert [e.index for e in rd.committed] == list(range(31, 39))


def test_restart_with_stored_entries_that_end_before_or_disagree_with_the_snapshot() -> None:
    m = Membership(voters={"n1": "a"})
    h = CoreHarness(["n1"], RaftConfig())
    core = h.start("n1", StoredState(HardState(3, "n1", 10), _snapshot(30, 2, m), _entries(1, 10)))
    assert (core.last_index, core.log_first_index, core.snapshot_index) == (30, 31, 30)
    assert core.last_term == 2
    # The stored entry at the snapshot's index has another term: nothing stored matches it.
    core = h.start("n1", StoredState(HardState(3, "n1", 30), _snapshot(30, 2, m), _entries(25, 35, 1)))
    assert (core.last_index, core.snapshot_index, core.entry_term(30)) == (30, 30, 2)
    with pytest.raises(StoreCorruptError, match="gap"):
        h.start("n1", StoredState(HardState(), _snapshot(30, 2, m), _entries(35, 40)))
    with pytest.raises(StoreCorruptError, match="not contiguous"):
        h.start("n1", StoredState(HardState(), None, [*_entries(1, 3), *_entries(5, 6)]))


def test_restarted_leader_serves_a_lagging_follower_from_trailing_entries() -> None:
    # Without CheckQuorum's lease n2 votes for the restarted n1 at once (only n1's clock runs).
    h = CoreHarness(IDS, RaftConfig(trailing_entries=15, check_quorum=False))
    leader = h.elect("n1")
    for k in range(20):
        if k == 10:
            h.blocked.add("n3")
        leader.propose(f"k{k}".encode())
        h.pump()
    snap = leader.compact(leader.applied_index, b"fsm")
    # What a store holds after write_snapshot(snap) and compact_log(log_first_index - 1).
    saved = h.stores["n1"].load()
    first = leader.log_first_index
    stored = StoredState(saved.hard_state, snap, [e for e in saved.entries if e.index >= first])
    assert 1 < stored.entries[0].index <= h.core("n3").last_index < snap.meta.index
    h.start("n1", stored)
    h.blocked.clear()
    h.elect("n1")
    h.tick(4)
    assert not h.snapshots_to("n3")
    assert h.logs_match("n1", "n3") and h.applied["n3"] == h.core("n1").commit_index


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_size_per_msg", -1), ("max_inflight_bytes", -1), ("trailing_entries", -5), ("max_inflight", 0)],
)
def test_config_rejects_bad_limits_naming_the_field(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"RaftConfig.{field}"):
        RaftConfig(**{field: value})
