"""write_snapshot on a background thread while the Raft thread saves, compacts and installs."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import duckdb
import msgspec
import pytest

from orion.raft import duckdb_store
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta, Table, TabularSnapshot

MEMBERS = Membership(voters={"n1": "127.0.0.1:7100"})
TRAILING = 50


def entry(index: int) -> Entry:
    return Entry(index, 1, 0, f"entry-{index}".encode() * 8)


def snapshot_data(index: int, rows: int) -> bytes:
    """The FSM state at ``index``: every row says which index it was taken at."""
    table = Table(
        columns=["id", "taken_at", "payload"],
        types=["VARCHAR", "BIGINT", "VARCHAR"],
        rows=[[f"t{i}", index, "p" * 200] for i in range(rows)],
    )
    return msgspec.msgpack.encode(TabularSnapshot(tables={"tasks": table}))


def test_snapshots_written_beside_saves_load_consistently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks: every snapshot is many commits interleaved with the saves.
    monkeypatch.setattr(duckdb_store, "SNAPSHOT_CHUNK_BYTES", 64 << 10)
    db = tmp_path / "raft.duckdb"
    store = DuckDBStore(db)
    store.load()
    saved_last = 0  # written by the Raft thread (this one), read by the snapshot thread
    taken: queue.Queue[int] = queue.Queue()
    failures: list[BaseException] = []
    stop = threading.Event()

    def take_snapshots() -> None:
        try:
            while not stop.is_set():
                at = saved_last
                if at == 0:
                    stop.wait(0.001)
                    continue
                store.write_snapshot(Snapshot(SnapshotMeta(at, 1, MEMBERS), snapshot_data(at, 2_000)))
                taken.put(at)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=take_snapshots)
    thread.start()
    snapshots: list[int] = []
    compacted_upto = 0
    deadline = time.monotonic() + 120
    try:
        batch_sizes = [1, 5, 64, 1, 1, 17]
        while len(snapshots) < 4 or saved_last < 400:
            assert time.monotonic() < deadline, f"only {len(snapshots)} snapshots written"
            assert not failures, failures
            count = batch_sizes[saved_last % len(batch_sizes)]
            batch = [entry(i) for i in range(saved_last + 1, saved_last + count + 1)]
            last_hard_state = HardState(term=1, vote="n1", commit=saved_last)
            store.save(last_hard_state, batch)
            saved_last += count
            while not taken.empty():
                at = taken.get()
                snapshots.append(at)
                compacted_upto = max(compacted_upto, at - TRAILING)
                store.compact_log(compacted_upto)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not failures, failures
    assert not thread.is_alive()
    while not taken.empty():  # a snapshot finished after the last save: stored, not compacted
        snapshots.append(taken.get())
    store.close()

    store = DuckDBStore(db)
    state = store.load()
    store.close()
    last_snapshot = max(snapshots)
    assert state.snapshot is not None
    assert state.snapshot.meta.index == last_snapshot
    assert state.snapshot.data == snapshot_data(last_snapshot, 2_000)
    assert state.entries == [entry(i) for i in range(compacted_upto + 1, saved_last + 1)]
    assert state.hard_state == last_hard_state


def test_an_install_stops_a_local_snapshot_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "raft.duckdb"
    store = DuckDBStore(db)
    store.load()
    store.save(HardState(term=1, vote="n1", commit=100), [entry(i) for i in range(1, 101)])
    started = threading.Event()
    original_stage = DuckDBStore._stage

    def stage_until_an_install_waits(self, con, prepared, should_stop):  # type: ignore[no-untyped-def]
        if should_stop is None:  # the install's own staging
            return original_stage(self, con, prepared, should_stop)

        def stop_once_the_install_waits() -> bool:
            started.set()
            return store._install_waiting.wait(30)

        return original_stage(self, con, prepared, stop_once_the_install_waits)

    monkeypatch.setattr(DuckDBStore, "_stage", stage_until_an_install_waits)
    failures: list[BaseException] = []

    def write_local() -> None:
        try:
            store.write_snapshot(Snapshot(SnapshotMeta(50, 1, MEMBERS), snapshot_data(50, 100)))
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=write_local)
    thread.start()
    assert started.wait(30)
    installed = Snapshot(SnapshotMeta(120, 2, MEMBERS), snapshot_data(120, 10))
    store.save_snapshot(installed)
    thread.join(timeout=30)
    assert not thread.is_alive() and not failures, failures
    store.save(HardState(term=2, vote="n2", commit=120), [])
    store.close()

    store = DuckDBStore(db)
    state = store.load()
    store.close()
    assert state.snapshot == installed and state.entries == []
    con = duckdb.connect(str(db), read_only=True)
    tables = sorted(r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall())
    con.close()
    assert tables == ["log", "orion_store", "snap_tasks", "snapshot_meta"]  # no staged leftovers


def test_statements_run_on_the_calling_thread(tmp_path: Path) -> None:
    """No worker pool: an append's executor would wake a worker and wait for it (issue 16)."""
    store = DuckDBStore(tmp_path / "log.duckdb")
    store.load()
    try:
        assert store._con.execute("SELECT current_setting('threads')").fetchone() == (1,)
        store.save(HardState(term=1), [entry(1), entry(2)])
        assert [e.index for e in store.read_entries(1, 2)] == [1, 2]
    finally:
        store.close()
