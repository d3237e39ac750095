"""MIT 6.5840 Raft lab, part 3D (snapshots), ported to the simulator.

The simulated shell snapshots the KV FSM whenever the applied index runs SNAPSHOT_INTERVAL
entries past the last snapshot, compacts the core and saves the snapshot in the store. Lagging
or restarted followers catch up through InstallSnapshot.
"""

from __future__ import annotations

import random

from orion.raft.core import RaftConfig
from orion.raft.snapshot_stream import SnapshotChunk
from orion.sim.raft_cluster import SimCluster

ELECTION = 20
SNAPSHOT_INTERVAL = 10
MAX_LOG_ENTRIES = 3 * SNAPSHOT_INTERVAL + 20  # MIT's MAXLOGSIZE, in entries


# These tests are about InstallSnapshot: keep no entries behind a snapshot, or a lagging
# follower would catch up from them instead.
CONFIG = RaftConfig(trailing_entries=0)


def make(n: int, seed: int, reliable: bool = True) -> SimCluster:
    if reliable:
        return SimCluster(n, seed=seed, config=CONFIG, snapshots=True, snapshot_threshold=SNAPSHOT_INTERVAL)
    return SimCluster(
        n,
        seed=seed,
        config=CONFIG,
        snapshots=True,
        snapshot_threshold=SNAPSHOT_INTERVAL,
        drop=0.1,
        max_delay=1,
    )


def check_log_size(c: SimCluster) -> None:
    for node in c.nodes.values():
        if node.core is not None:
            size = node.core.last_index - node.core.snapshot_index
            assert size <= MAX_LOG_ENTRIES, f"{node.id} holds {size} entries: compaction not working"


def snap_common(seed: int, disconnect: bool, reliable: bool, crash: bool) -> None:
    c = make(3, seed, reliable)
    rng = random.Random(seed)
    c.one(rng.randbytes(8), 3)
    leader1 = c.check_one_leader()
    installed_before = sum(1 for n in c.nodes.values() if n.store.snapshot is not None)
    for i in range(30):
        ids = c.ids
        leader1 = c.check_one_leader()
        victim = ids[(ids.index(leader1) + 1) % 3]
        sender = leader1
        if i % 3 == 1:
            sender = victim
            victim = leader1
        if disconnect:
            c.disconnect(victim)
            c.one(rng.randbytes(8), 2)
        if crash:
            c.crash(victim)
            c.disconnect(victim)
            c.one(rng.randbytes(8), 2)
        # Send enough to force a snapshot.
        core = c.nodes[sender].core
        if core is not None and core.role == "leader":
            core.propose_batch([rng.randbytes(8) for _ in range(SNAPSHOT_INTERVAL // 2 + rng.randint(0, 10))])
        c.one(rng.randbytes(8), 2 if (disconnect or crash) else 3)
        check_log_size(c)
        if disconnect:
            # Reconnect a follower that may need InstallSnapshot to catch up.
            c.connect(victim)
            c.one(rng.randbytes(8), 3)
        if crash:
            c.start(victim)
            c.connect(victim)
            c.one(rng.randbytes(8), 3)
        check_log_size(c)
    assert sum(1 for n in c.nodes.values() if n.store.snapshot is not None) > installed_before
    if disconnect or crash:
        assert c.net.by_type.get(SnapshotChunk, 0) > 0, "no follower needed InstallSnapshot (streamed)"


def test_snapshot_basic() -> None:
    snap_common(31, disconnect=False, reliable=True, crash=False)


def test_snapshot_install() -> None:
    snap_common(32, disconnect=True, reliable=True, crash=False)


def test_snapshot_install_unreliable() -> None:
    snap_common(33, disconnect=True, reliable=False, crash=False)


def test_snapshot_install_crash() -> None:
    snap_common(34, disconnect=False, reliable=True, crash=True)


def test_snapshot_install_uncrash() -> None:
    snap_common(35, disconnect=False, reliable=False, crash=True)


def test_snapshot_all_crash() -> None:
    c = make(3, 36)
    rng = random.Random(36)
    c.one(rng.randbytes(8), 3)
    for _ in range(5):
        for _ in range(SNAPSHOT_INTERVAL // 2 + rng.randint(0, SNAPSHOT_INTERVAL)):
            c.one(rng.randbytes(8), 3)
        index1 = c.one(rng.randbytes(8), 3)
        for node_id in c.ids:
            c.crash(node_id)
        for node_id in c.ids:
            c.start(node_id)
        index2 = c.one(rng.randbytes(8), 3)
        assert index2 >= index1 + 1, f"index decreased from {index1} to {index2}"
    assert all(n.store.snapshot is not None for n in c.nodes.values())


def test_snapshot_init() -> None:
    c = make(3, 37)
    rng = random.Random(37)
    c.one(rng.randbytes(8), 3)
    # Enough ops to make a snapshot.
    for _ in range(SNAPSHOT_INTERVAL + 1):
        c.one(rng.randbytes(8), 3)
    for node_id in c.ids:
        c.crash(node_id)
    for node_id in c.ids:
        c.start(node_id)
    # A restarted node starts applying right after its snapshot (the checker fails any
    # out-of-order apply), with the FSM restored from it.
    for node in c.nodes.values():
        assert node.store.snapshot is not None
        assert node.fsm.applied_index == node.store.snapshot.meta.index
        assert node.core is not None and node.core.applied_index == node.fsm.applied_index
    c.one(rng.randbytes(8), 3)
    for node_id in c.ids:
        c.crash(node_id)
    for node_id in c.ids:
        c.start(node_id)
    c.one(rng.randbytes(8), 3)
