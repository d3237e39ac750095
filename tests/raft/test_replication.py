"""Replication mechanics: group commit, pipelining with fallback to probing, fast conflict
backup, commit only of current-term entries, compaction."""

from __future__ import annotations

from orion.raft.core import LEADER, RaftConfig
from orion.raft.messages import AppendEntries, AppendResponse, Message
from orion.raft.types import EntryKind
from orion.sim.raft_cluster import SimCluster

ELECTION = 20


def test_one_ready_is_one_persistence_batch_and_appends_are_pipelined() -> None:
    c = SimCluster(3, seed=61, config=RaftConfig(max_append_entries=4, max_inflight=8))
    c.one(b"warm=1", 3)
    leader = c.check_one_leader()
    core = c.core(leader)
    indexes = core.propose_batch([f"k{i}=v".encode() for i in range(100)])
    rd = core.ready()
    # Group commit: all 100 new entries in one Ready, so one store write.
    assert [e.index for e in rd.entries] == indexes
    # Pipelining: up to max_inflight appends of max_append_entries each, per follower,
    # without waiting for any answer.
    per_follower: dict[str, list[AppendEntries]] = {}
    for m in rd.messages:
        if isinstance(m, AppendEntries):
            per_follower.setdefault(m.dst, []).append(m)
    assert len(per_follower) == 2
    for appends in per_follower.values():
        assert len(appends) == 8
        assert all(len(a.entries) == 4 for a in appends)
        assert [a.prev_index for a in appends] == [indexes[0] - 1 + 4 * k for k in range(8)]
    c.nodes[leader].store.save(rd.hard_state, rd.entries)
    for m in rd.messages:
        c.net.send(m, c.now)
    core.advance(rd)
    assert c.run_until(lambda: all(c.n_committed(i)[0] == 3 for i in indexes), 2 * ELECTION)


def test_reordering_and_loss_fall_back_to_probe_and_recover() -> None:
    c = SimCluster(3, seed=62, config=RaftConfig(max_append_entries=2, max_inflight=4), max_delay=3, drop=0.2)
    c.wait_leader()
    last = 0
    for k in range(30):
        leader = c.leader()
        if leader is not None:
            last = c.core(leader).propose_batch([f"r{k}.{j}=v".encode() for j in range(5)])[-1]
        c.tick()
    c.net.drop = 0.0
    assert c.run_until(lambda: c.n_committed(last)[0] == 3 or c.leader() is None, 10 * ELECTION)
    c.one(b"done=1", 3)


def test_fast_backup_skips_a_divergent_term_in_few_round_trips() -> None:
    c = SimCluster(3, seed=63, config=RaftConfig(max_append_entries=1024))
    c.one(b"base=1", 3)
    old = c.check_one_leader()
    c.disconnect(old)
    c.core(old).propose_batch([f"lost{i}=x".encode() for i in range(200)])  # never committed
    c.settle()
    for k in range(20):
        c.one(f"new{k}=y".encode(), 2)
    # A fresh leader starts probing at its own last index, far past the divergence point.
    leader = c.check_one_leader()
    other = next(i for i in c.ids if i not in (old, leader))
    c.core(leader).transfer_leadership(other)
    assert c.run_until(lambda: c.core(other).role == LEADER, ELECTION)
    rejects: list[Message] = []

    def spy(msg: object) -> None:
        if isinstance(msg, AppendResponse) and not msg.success and msg.src == old:
            rejects.append(msg)

    c.net.observers.append(spy)
    c.connect(old)
    c.one(b"after=1", 3)
    assert c.core(old).entries(1, c.core(old).last_index)[-1].data == b"after=1"
    assert 1 <= len(rejects) <= 3, f"{len(rejects)} rejections to skip 200 divergent entries"


def test_leader_commits_earlier_terms_only_through_its_own_noop() -> None:
    c = SimCluster(3, seed=64)
    c.one(b"a=1", 3)
    leader = c.check_one_leader()
    core = c.core(leader)
    followers = [i for i in c.ids if i != leader]
    c.disconnect(followers[0])
    c.disconnect(followers[1])
    index = core.propose(b"a=2")  # replicated nowhere: stays uncommitted
    c.tick(3)
    assert core.commit_index < index
    # A new leader elected later must commit its own no-op before (or with) older entries.
    c.crash(leader)
    c.connect(followers[0])
    c.connect(followers[1])
    new = c.wait_leader()
    new_core = c.core(new)
    assert c.run_until(lambda: new_core.commit_index == new_core.last_index, ELECTION)
    last = new_core.entries(new_core.commit_index, new_core.commit_index)[0]
    assert last.term == new_core.term and last.kind == EntryKind.NOOP


def test_compaction_keeps_log_short_and_snapshot_carries_membership() -> None:
    c = SimCluster(3, seed=65, snapshots=True, snapshot_threshold=16)
    for k in range(100):
        c.one(f"c{k}={k}".encode(), 3)
    for node in c.nodes.values():
        core = node.core
        assert core is not None
        assert core.last_index - core.snapshot_index <= 16 + 2
        snap = node.store.snapshot
        assert snap is not None and snap.meta.index == core.snapshot_index
        assert set(snap.meta.membership.voters) == set(c.ids)
        assert node.fsm.kv[b"c99"] == b"99"
    assert c.core(c.check_one_leader()).role == LEADER
