"""RaftShell's snapshot rule with ``snapshot_log_ratio``: a snapshot is due once the entry count
since the last one passes ``snapshot_threshold`` and the log applied since it holds at least
ratio x that snapshot's bytes (so snapshots of a big state come as often as it doubles)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import msgspec

from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.shell import RaftShell, ShellHost
from orion.raft.types import Entry, EntryKind, Membership, Snapshot, SnapshotMeta

INCARNATION = "a1b2c3d4"
CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2, trailing_entries=0)
MEMBERSHIP = Membership(voters={"n1": "mem:n1"}, cluster_id="c1", incarnations={"n1": INCARNATION})
ENTRY = b"x" * 100  # every test entry carries 100 bytes of data


class SingleNode(ShellHost):
    """A one-voter cluster whose FSM is the list of applied entries; its snapshot is that list
    (msgpack), taken at once or, with ``fail_next``, failed. Reads and identity drops: the
    protocol's no-ops."""

    def __init__(self, ratio: float, threshold: int = 16, store: MemoryStore | None = None) -> None:
        if store is None:
            store = MemoryStore()
            store.save_identity(INCARNATION)
        self.store = store
        self.applied: list[bytes] = []
        self.snapshots: list[int] = []  # the index of every snapshot taken
        self.fail_next = False
        self.checkpoints: list[int] = []  # the applied index at each checkpoint asked
        stored = store.load()
        if stored.snapshot is not None:
            self.restore(stored.snapshot)
        bootstrap = None if stored.snapshot is not None or stored.entries else MEMBERSHIP
        core = RaftCore("n1", stored, CONFIG, random.Random(1), bootstrap=bootstrap)
        self.shell = RaftShell(
            core, store, self, incarnation=INCARNATION, snapshot_threshold=threshold, snapshot_log_ratio=ratio
        )
        for _ in range(100):
            if core.role == LEADER:
                break
            self.shell.tick()
            self.shell.drain()
        assert core.role == LEADER

    def write(self, count: int) -> None:
        for _ in range(count):
            self.shell.core.propose(ENTRY)
            self.shell.drain()

    # ShellHost
    def send_frame(self, dst: str, frame: bytes) -> None:
        raise AssertionError("a single voter sends nothing")

    def apply(self, entry: Entry) -> bool:
        if entry.kind == EntryKind.NORMAL:
            self.applied.append(entry.data)
            return True
        return False

    def restore(self, snapshot: Snapshot) -> None:
        self.applied = msgspec.msgpack.decode(snapshot.data, type=list[bytes])

    def snapshot_source(self) -> Any:
        return list(self.applied)

    def checkpoint_log(self) -> None:
        self.checkpoints.append(self.shell.core.applied_index)
        self.shell.log_checkpointed()

    def start_snapshot(self, meta: SnapshotMeta, source: Any) -> None:
        if self.fail_next:
            self.fail_next = False
            self.shell.snapshot_taken(None)
            return
        snapshot = Snapshot(meta, msgspec.msgpack.encode(source))
        self.store.write_snapshot(snapshot)
        self.snapshots.append(meta.index)
        self.shell.snapshot_taken(snapshot)


def gaps(indexes: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(indexes)]


def test_with_ratio_0_a_snapshot_comes_every_threshold_entries() -> None:
    node = SingleNode(ratio=0.0, threshold=16)
    node.write(200)
    assert len(node.snapshots) >= 10
    assert all(gap <= 17 for gap in gaps(node.snapshots))  # the threshold, give or take the config entry


def test_with_ratio_1_the_log_since_a_snapshot_outgrows_it_before_the_next() -> None:
    node = SingleNode(ratio=1.0, threshold=16)
    node.write(600)
    assert node.snapshots, "the first snapshot comes at the threshold: there is none to outgrow"
    assert node.snapshots[0] <= 18
    for before, after in itertools.pairwise(node.snapshots):
        # The state at `before` held about `before` entries, so about that many bytes of new
        # entries had to be applied before the next snapshot: the state doubled in between.
        assert after - before >= before - 2
    # Geometric, not every 16 entries: 16, ~32, ~64, ~128, ~256, ~512.
    assert 4 <= len(node.snapshots) <= 7


def test_a_failed_snapshot_does_not_restart_the_count() -> None:
    node = SingleNode(ratio=1.0, threshold=16)
    node.write(100)
    taken = list(node.snapshots)
    last = taken[-1]
    node.fail_next = True
    # Write until the next snapshot is due: it fails, and the one after it is due at once
    # (the next Ready), not after another state's worth of entries.
    written = 0
    while node.fail_next or len(node.snapshots) == len(taken):
        node.write(1)
        written += 1
        assert written < 4 * last, "no snapshot after the failed one"
    assert node.fail_next is False
    assert node.snapshots[-1] - node.snapshots[-2] <= last + 2


def test_a_restarted_node_keeps_to_the_stored_snapshot_size() -> None:
    node = SingleNode(ratio=1.0, threshold=16)
    node.write(300)
    last = node.snapshots[-1]
    restarted = SingleNode(ratio=1.0, threshold=16, store=node.store)
    # The entries replayed after the snapshot count: they are the log since it.
    restarted.write(last // 2)
    assert restarted.snapshots == [], "half the stored snapshot's bytes of log is not enough"
    restarted.write(last)
    assert restarted.snapshots and restarted.snapshots[0] - last >= last - 2


class ReleasingStore(MemoryStore):
    """A store that, like DuckDB's, caches what it wrote until told to drop it."""

    def __init__(self) -> None:
        super().__init__()
        self.releases = 0

    def release_buffers(self) -> None:
        self.releases += 1


def test_between_snapshots_the_log_is_checkpointed_every_threshold_entries() -> None:
    store = ReleasingStore()
    store.save_identity(INCARNATION)
    node = SingleNode(ratio=1.0, threshold=16, store=store)
    node.write(600)
    first = node.snapshots[0]
    asked = [index for index in node.checkpoints if index > first]
    assert asked, "a snapshot held off by the ratio still leaves the log checkpointed"
    marks = sorted([*node.snapshots, *asked])
    # Never more than a threshold (and the Ready that crossed it) between a snapshot or a
    # checkpoint and the next one.
    assert all(gap <= 17 for gap in gaps([m for m in marks if m >= first]))
    assert store.releases == len(node.checkpoints)


def test_no_checkpoint_is_asked_while_snapshots_come_every_threshold() -> None:
    node = SingleNode(ratio=0.0, threshold=16)
    node.write(200)
    assert node.snapshots and node.checkpoints == []
