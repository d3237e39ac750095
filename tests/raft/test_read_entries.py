"""LogStore.read_entries on both stores: what was saved comes back by range, exactly; a range
the store no longer holds (compacted) is refused rather than answered short."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from orion.raft.duckdb_store import DuckDBStore
from orion.raft.memory_store import MemoryStore
from orion.raft.types import Entry, EntryKind, HardState, LogStore, Membership, Snapshot, SnapshotMeta


@pytest.fixture(params=["memory", "duckdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    made: LogStore = MemoryStore() if request.param == "memory" else DuckDBStore(tmp_path / "raft.duckdb")
    made.load()
    yield made
    made.close()


def test_saved_entries_come_back_by_range(store: LogStore) -> None:
    entries = [Entry(i, 1 + i // 4, int(EntryKind.NORMAL), b"v%d" % i * i) for i in range(1, 21)]
    store.save(HardState(5, "a", 0), entries[:7])
    store.save(None, entries[7:])
    assert store.read_entries(1, 20) == entries
    assert store.read_entries(5, 5) == [entries[4]]
    assert store.read_entries(8, 13) == entries[7:13]


def test_a_range_no_longer_stored_is_refused(store: LogStore) -> None:
    entries = [Entry(i, 1, int(EntryKind.NORMAL), b"x") for i in range(1, 11)]
    store.save(HardState(1, "a", 10), entries)
    store.write_snapshot(Snapshot(SnapshotMeta(6, 1, Membership(voters={"a": "h:1"})), b"state"))
    store.compact_log(4)
    assert store.read_entries(5, 10) == entries[4:]
    with pytest.raises(ValueError):
        store.read_entries(3, 6)
    with pytest.raises(ValueError):
        store.read_entries(9, 11)


def test_compaction_leaves_duckdb_no_table_blocks_cached_and_the_store_working(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "raft.duckdb")
    store.load()
    entries = [Entry(i, 1, int(EntryKind.NORMAL), random.randbytes(2000)) for i in range(1, 3001)]
    store.save(HardState(1, "a", 3000), entries)
    store.write_snapshot(Snapshot(SnapshotMeta(2000, 1, Membership(voters={"a": "h:1"})), b"s" * 100_000))
    cached = "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'BASE_TABLE'"
    assert store._con.execute(cached).fetchone()[0] > 1 << 20  # the log's blocks, as written
    store.compact_log(1000)
    assert store._con.execute(cached).fetchone()[0] < 1 << 20
    assert store._con.execute("SELECT current_setting('memory_limit')").fetchone()[0] != "1.0 MiB"
    assert store.read_entries(1001, 3000) == entries[1000:]  # read back from the file
    store.save(None, [Entry(3001, 1, int(EntryKind.NORMAL), b"y")])
    store.close()
    reopened = DuckDBStore(tmp_path / "raft.duckdb")
    assert reopened.load().entries == [*entries[1000:], Entry(3001, 1, int(EntryKind.NORMAL), b"y")]
    reopened.close()
