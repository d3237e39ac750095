"""LogStore.read_entries on both stores: what was saved comes back by range, exactly; a range
the store no longer holds (compacted) is refused rather than answered short."""

from __future__ import annotations

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
