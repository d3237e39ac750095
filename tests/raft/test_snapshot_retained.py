"""The snapshot a node keeps for lagging followers: the core holds only its meta once the store
has it, and the shell streams the bytes the store gives back (issue 16 item 5: ~35 MB of every
node's memory at 100k tasks). The DuckDB store gives them back as a mapped file of their own."""

from __future__ import annotations

import mmap
from pathlib import Path

import msgspec

from orion.raft.core import RaftConfig
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta
from tests.raft.test_shell import cluster, commit

MEMBERS = Membership(voters={"n1": "127.0.0.1:7100"})
PADDING = bytes(range(256)) * 12_000  # ~3 MB per snapshot: several chunks


def spill_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(path.name + ".snapshot-*"))


def test_cores_keep_no_snapshot_bytes_and_a_newcomer_still_gets_the_snapshot() -> None:
    config = RaftConfig(election_ticks=10, heartbeat_ticks=2, trailing_entries=0)
    net, _ = cluster(["n1", "n2"], threshold=16, padding=PADDING, config=config)
    leader = net.leader()
    for i in range(40):
        commit(net, leader, [f"e{i}".encode()])
    for node in net.nodes.values():
        assert node.core.snapshot_index > 1
        snapshot = node.core.snapshot
        assert snapshot is not None and snapshot.data == b""  # the store has the bytes
        assert node.store.stored_snapshot() is not None
    joiner = net.add("n3", None, "abcd")
    leader.core.add_non_voter("n3", "mem:n3", "abcd")
    net.tick(60)
    assert joiner.core.applied_index == leader.core.applied_index
    assert joiner.applied == leader.applied
    installed = joiner.core.snapshot
    assert installed is not None and installed.meta.index > 1 and installed.data == b""


def test_a_newer_stored_snapshot_than_the_cores_is_streamed_instead() -> None:
    # A local snapshot the store holds before the core compacts to it: the follower gets that
    # one (it covers only committed entries too) and catches up from there.
    config = RaftConfig(election_ticks=10, heartbeat_ticks=2, trailing_entries=0)
    net, _ = cluster(["n1"], threshold=16, padding=PADDING, config=config)
    leader = net.leader()
    for i in range(40):
        commit(net, leader, [f"e{i}".encode()])
    late = 0
    while leader.core.applied_index == leader.core.snapshot_index:
        commit(net, leader, [f"late{late}".encode()])
        late += 1
    core_index = leader.core.snapshot_index
    newer = leader.core.snapshot_meta(leader.core.applied_index)
    assert newer.index > core_index
    leader.store.write_snapshot(Snapshot(newer, msgspec.msgpack.encode((list(leader.applied), PADDING))))
    joiner = net.add("n2", None, "abcd")
    leader.core.add_non_voter("n2", "mem:n2", "abcd")
    net.tick(60)
    assert leader.core.snapshot_index == core_index  # the core never compacted to it
    assert joiner.core.snapshot is not None and joiner.core.snapshot.meta.index == newer.index
    assert joiner.applied == leader.applied


def _store_with_log(path: Path, last: int) -> DuckDBStore:
    store = DuckDBStore(path)
    store.load()
    store.save(HardState(term=1, commit=last), [Entry(i, 1, 0, b"x") for i in range(1, last + 1)])
    return store


def test_duckdb_gives_back_the_stored_bytes_from_a_file_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "raft.duckdb"
    store = _store_with_log(path, 20)
    assert store.stored_snapshot() is None
    first = b"first" + PADDING
    store.write_snapshot(Snapshot(SnapshotMeta(10, 1, MEMBERS), first))
    held = store.stored_snapshot()
    assert held is not None and held.meta.index == 10 and isinstance(held.data, mmap.mmap)
    assert bytes(held.data) == first
    assert spill_files(path) == ["raft.duckdb.snapshot-10-1"]
    second = b"second" + PADDING
    store.write_snapshot(Snapshot(SnapshotMeta(20, 1, MEMBERS), second))
    assert spill_files(path) == ["raft.duckdb.snapshot-20-1"]
    assert bytes(held.data) == first  # a stream of the older one reads on from its mapping
    latest = store.stored_snapshot()
    assert latest is not None and latest.meta.index == 20 and bytes(latest.data) == second
    store.close()
    assert spill_files(path) == []  # a cache: written again at load
    reopened = DuckDBStore(path)
    state = reopened.load()
    assert state.snapshot is not None and state.snapshot.data == second
    again = reopened.stored_snapshot()
    assert again is not None and again.meta == state.snapshot.meta and bytes(again.data) == second
    reopened.close()


def test_an_installed_snapshot_is_given_back_and_a_crash_leftover_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "raft.duckdb"
    store = _store_with_log(path, 5)
    installed = b"from the leader" + PADDING
    store.save_snapshot(Snapshot(SnapshotMeta(30, 2, MEMBERS), installed))
    got = store.stored_snapshot()
    assert got is not None and got.meta.index == 30 and bytes(got.data) == installed
    store.close()
    (tmp_path / "raft.duckdb.snapshot-7-1").write_bytes(b"left by a crash")
    (tmp_path / "raft.duckdb.snapshot-30-2.partial").write_bytes(b"torn")
    reopened = DuckDBStore(path)
    reopened.load()
    assert spill_files(path) == ["raft.duckdb.snapshot-30-2"]
    got = reopened.stored_snapshot()
    assert got is not None and bytes(got.data) == installed
    reopened.close()
