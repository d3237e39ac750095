"""Simulator faults beyond crashes and partitions: the transport's frame limit with big entries
and big snapshots, and a leader that crashes between sending its entries and writing them."""

from __future__ import annotations

import pytest

from orion.raft.core import LEADER, RaftConfig
from orion.raft.snapshot_stream import SnapshotChunk
from orion.sim.raft_cluster import SimCluster
from orion.sim.raft_random import random_run

MIB = 1 << 20
MAX_FRAME = 8 * MIB  # the Raft transport's default


@pytest.mark.parametrize("seed", range(3))
def test_random_runs_with_1_mib_entries_send_no_oversize_frame(seed: int) -> None:
    """random_run fails on any frame dropped for its size."""
    cluster = random_run(seed, value_bytes=MIB, max_frame=MAX_FRAME, keys=4)
    assert cluster.net.bytes_sent > 10 * MIB


@pytest.mark.parametrize("seed", [1, 5])
def test_snapshots_over_the_frame_limit_reach_followers_in_chunks(seed: int) -> None:
    """12 keys of 1 MiB: every snapshot is bigger than a frame may be. Before snapshots were
    streamed, InstallSnapshot was one frame, dropped every time, and these seeds never healed."""
    cluster = random_run(seed, value_bytes=MIB, max_frame=MAX_FRAME, keys=12)
    snapshots = [n.store.snapshot for n in cluster.nodes.values() if n.store.snapshot is not None]
    assert max(len(s.data) for s in snapshots) > MAX_FRAME
    assert cluster.net.by_type.get(SnapshotChunk, 0) > 0
    assert cluster.net.largest_frame < 2 * MIB


def _lagging_follower(config: RaftConfig) -> tuple[SimCluster, str, int]:
    """A follower cut off while 20 MiB of 1 MiB entries commit, then reconnected."""
    c = SimCluster(3, seed=5, config=config, max_frame=MAX_FRAME)
    leader = c.wait_leader()
    lagger = next(i for i in c.ids if i != leader)
    c.one(b"start=1", 3)
    c.disconnect(lagger)
    index = 0
    for i in range(20):
        index = c.one(b"big%d=%s" % (i, b"x" * MIB), 2)
    c.connect(lagger)
    return c, lagger, index


def test_follower_lagging_by_20_mib_of_entries_catches_up() -> None:
    c, lagger, index = _lagging_follower(RaftConfig())
    assert c.run_until(lambda: c.nodes[lagger].fsm.applied_index >= index, 200)
    assert c.net.oversize == {}


def test_follower_lagging_behind_the_in_memory_window_catches_up_from_the_store() -> None:
    """With two entries kept in memory, the 20 entries the follower missed are read back from
    the leader's store (LogStore.read_entries), and it catches up with entries, not a snapshot."""
    c, lagger, index = _lagging_follower(RaftConfig(memory_entries=2))
    leader = c.leader()
    assert leader is not None and c.core(leader).entries_in_memory <= 2 + 1
    assert c.run_until(lambda: c.nodes[lagger].fsm.applied_index >= index, 200)
    assert c.net.oversize == {}
    assert c.net.by_type.get(SnapshotChunk, 0) == 0
    assert c.core(lagger).entries(1, index) == c.core(leader).entries(1, index)


def test_batches_bounded_by_count_only_exceed_the_frame_limit_forever() -> None:
    """The old behaviour (1,024 entries per append, no byte limit): the catch-up append is
    20 MiB, the transport drops it every time, and the follower never catches up."""
    unbounded = RaftConfig(max_size_per_msg=1 << 40, max_inflight_bytes=0)
    c, lagger, index = _lagging_follower(unbounded)
    assert not c.run_until(lambda: c.nodes[lagger].fsm.applied_index >= index, 200)
    assert c.net.oversize.get("AppendEntries", 0) > 5


def test_leader_crashing_after_sending_before_writing_loses_nothing_committed() -> None:
    """The leader sends its new entry before writing it, then crashes: a follower holds an
    entry the leader lost. The entry was never counted as the leader's, so nothing committed is
    lost, and the follower's copy may still commit under the next leader."""
    c = SimCluster(3, seed=6)
    leader = c.wait_leader()
    c.one(b"a=1", 3)
    c.crash_after_send = 1.0
    index = c.core(leader).propose(b"a=2")
    c.settle()
    c.crash_after_send = 0.0
    assert not c.nodes[leader].alive
    assert all(e.index < index for e in c.nodes[leader].store.entries), "the leader wrote the entry"
    followers = [i for i in c.ids if i != leader]
    assert any(any(e.index == index for e in c.nodes[f].store.entries) for f in followers)
    new = c.run_until(lambda: any(c.core(f).role == LEADER for f in followers), 100)
    assert new
    c.start(leader)
    c.one(b"a=3", 3)
    assert c.n_committed(index) == (3, b"a=2")
