"""The DuckDB store's checksums, identity, trailing entries, format migration and file modes."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import duckdb
import msgspec
import pytest

from orion.raft.duckdb_store import FORMAT_VERSION, WHAT_TO_DO, DuckDBStore
from orion.raft.store_integrity import entry_checksum
from orion.raft.tabular import decode_tabular_snapshot
from orion.raft.types import (
    Entry,
    EntryKind,
    HardState,
    Membership,
    Snapshot,
    SnapshotMeta,
    StoreCorruptError,
    StoredState,
    Table,
    TabularSnapshot,
)

MEMBERS = Membership(voters={"n1": "127.0.0.1:7100", "n2": "127.0.0.1:7101"}, cluster_id="c0ffee")


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, f"cmd-{i}-{term}".encode()) for i in range(first, last + 1)]


def tasks_snapshot(rows: int = 3) -> bytes:
    tasks = Table(
        columns=["id", "memory", "cpu", "env", "blob", "ok"],
        types=["VARCHAR", "BIGINT", "DOUBLE", "VARCHAR", "BLOB", "BOOLEAN"],
        rows=[[f"t{i}", i << 30, i / 4, '{"K":"v"}', bytes([i % 256]) * 3, i % 2 == 0] for i in range(rows)],
    )
    return msgspec.msgpack.encode(TabularSnapshot(tables={"tasks": tasks}))


def open_store(path: Path) -> tuple[DuckDBStore, StoredState]:
    store = DuckDBStore(path)
    return store, store.load()


def load_fails(path: Path, match: str) -> str:
    store = DuckDBStore(path)
    try:
        with pytest.raises(StoreCorruptError, match=match) as caught:
            store.load()
    finally:
        store.close()
    message = str(caught.value)
    assert str(path) in message and WHAT_TO_DO in message, message
    return message


def edit(path: Path, *statements: tuple[str, list[object]]) -> None:
    """Change the file behind the store's back, as a bug or a hand edit would."""
    con = duckdb.connect(str(path))
    try:
        for sql, params in statements:
            con.execute(sql, params)
    finally:
        con.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store, _ = open_store(tmp_path / "raft.duckdb")
    store.save(HardState(term=2, vote="n1", commit=12), entries(1, 10, 1) + entries(11, 20, 2))
    store.save_snapshot(Snapshot(SnapshotMeta(12, 2, MEMBERS), tasks_snapshot()))
    store.save_identity("0123456789abcdef0123456789abcdef")
    store.close()
    return tmp_path / "raft.duckdb"


# -- checksums -----------------------------------------------------------------------------


def test_intact_store_loads(db: Path) -> None:
    store, state = open_store(db)
    store.close()
    assert state.entries == entries(13, 20, 2)
    assert state.snapshot is not None and state.snapshot.data == tasks_snapshot()


def test_changed_entry_data_fails_its_checksum(db: Path) -> None:
    edit(db, ("UPDATE log SET data = ? WHERE idx = 15", [b"cmd-15-X"]))
    message = load_fails(db, "log entry 15 fails its checksum")
    assert message.startswith(f"Raft store {db} is damaged")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE log SET term = 3 WHERE idx = 17",  # same data, another term
        "UPDATE log SET kind = 2 WHERE idx = 17",  # same data, another kind
        "UPDATE log SET idx = 21 WHERE idx = 20",  # a row moved to another index
    ],
)
def test_changed_entry_header_fails_its_checksum(db: Path, statement: str) -> None:
    edit(db, (statement, []))
    load_fails(db, r"log entry (17|21) fails its checksum")


def test_changed_hard_state_fails_its_checksum(db: Path) -> None:
    forged = msgspec.msgpack.encode(HardState(term=2, vote="n2", commit=12))
    edit(db, ("UPDATE log SET data = ? WHERE idx = (SELECT min(idx) FROM log)", [forged]))
    load_fails(db, r"hard state record \d+ fails its checksum")


def test_changed_snapshot_row_fails_the_snapshot_checksum(db: Path) -> None:
    edit(db, ("UPDATE snap_tasks SET memory = memory + 1 WHERE id = 't1'", []))
    load_fails(db, "the snapshot at index 12 fails its checksum")


def test_changed_snapshot_meta_fails_the_snapshot_checksum(db: Path) -> None:
    other = msgspec.msgpack.encode(Membership(voters={"n1": "127.0.0.1:7100"}, cluster_id="c0ffee"))
    edit(db, ("UPDATE snapshot_meta SET membership = ?", [other]))
    load_fails(db, "the snapshot at index 12 fails its checksum")


def test_changed_identity_fails_its_checksum(db: Path) -> None:
    edit(db, ("UPDATE orion_store SET incarnation = 'ffff'", []))
    load_fails(db, "header row .* fails its checksum")


def test_well_formed_but_inconsistent_rows_are_refused(db: Path) -> None:
    # Entry 12 is covered by the snapshot (term 2); a valid row there with another term
    # contradicts it.
    data = b"cmd-12-1"
    edit(db, ("INSERT INTO log VALUES (12, 1, 0, ?, ?)", [data, entry_checksum(12, 1, 0, data)]))
    load_fails(db, "inconsistent: log entry 12 has term 1 but the snapshot there has 2")


def test_values_that_are_hard_to_round_trip_do_not_raise_false_alarms(tmp_path: Path) -> None:
    nan_with_payload = struct.unpack("<d", bytes.fromhex("0100000000f8ff7f"))[0]
    table = Table(
        columns=["s", "f", "i", "b"],
        types=["VARCHAR", "DOUBLE", "BIGINT", "BLOB"],
        rows=[
            ["a\x00b", float("nan"), -(2**63), b"\x00"],
            ["\U0001f600", -0.0, 2**63 - 1, b""],
            ["", float("inf"), 0, None],
            ["x" * 100_000, nan_with_payload, None, b"\xff" * 1000],
            [None, 5e-324, 1, b"z"],
        ],
    )
    data = msgspec.msgpack.encode(TabularSnapshot(tables={"odd": table}))
    store, _ = open_store(tmp_path / "raft.duckdb")
    store.save(HardState(term=1, commit=1), entries(1, 1))
    store.save_snapshot(Snapshot(SnapshotMeta(1, 1, MEMBERS), data))
    store.checkpoint()  # through DuckDB's compression too, not only the WAL
    store.close()
    store, state = open_store(tmp_path / "raft.duckdb")
    store.close()
    assert state.snapshot is not None and state.snapshot.data == data


# -- identity ------------------------------------------------------------------------------


def test_identity_is_none_until_saved_and_survives_restarts(tmp_path: Path) -> None:
    store, _ = open_store(tmp_path / "raft.duckdb")
    assert store.load_identity() is None
    store.save_identity("00112233445566778899aabbccddeeff")
    store.close()
    store, _ = open_store(tmp_path / "raft.duckdb")
    assert store.load_identity() == "00112233445566778899aabbccddeeff"
    store.close()


@pytest.mark.parametrize("bad", ["", "ABCDEF", "not hex", "a" * 65, 42])
def test_identity_must_be_hex(tmp_path: Path, bad: object) -> None:
    store, _ = open_store(tmp_path / "raft.duckdb")
    with pytest.raises(ValueError, match="incarnation must be a lowercase hex string"):
        store.save_identity(bad)  # type: ignore[arg-type]
    store.close()


def test_identity_needs_a_loaded_store(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "raft.duckdb")
    with pytest.raises(RuntimeError, match=r"load\(\) must be called"):
        store.load_identity()
    store.close()


# -- trailing entries and compaction -------------------------------------------------------


def test_local_snapshot_keeps_the_log_until_compacted(tmp_path: Path) -> None:
    store, _ = open_store(tmp_path / "raft.duckdb")
    store.save(HardState(term=1, commit=30), entries(1, 40))
    local = Snapshot(SnapshotMeta(30, 1, MEMBERS), tasks_snapshot())
    store.write_snapshot(local)
    store.close()
    store, state = open_store(tmp_path / "raft.duckdb")
    assert state.snapshot == local and state.entries == entries(1, 40)  # the log is untouched
    store.compact_log(25)  # five trailing entries kept behind the snapshot
    store.close()
    store, state = open_store(tmp_path / "raft.duckdb")
    assert state.entries == entries(26, 40)
    store.save(None, entries(41, 42))
    store.close()
    store, state = open_store(tmp_path / "raft.duckdb")
    assert state.entries == entries(26, 42)
    store.close()


def test_write_snapshot_and_compact_log_refuse_what_would_lose_entries(tmp_path: Path) -> None:
    store, _ = open_store(tmp_path / "raft.duckdb")
    store.save(HardState(term=1, commit=10), entries(1, 10))
    with pytest.raises(ValueError, match="beyond the last stored log entry 10"):
        store.write_snapshot(Snapshot(SnapshotMeta(11, 1, MEMBERS), b"state"))
    with pytest.raises(ValueError, match="stored snapshot covers only up to 0"):
        store.compact_log(5)
    store.write_snapshot(Snapshot(SnapshotMeta(8, 1, MEMBERS), b"state@8"))
    with pytest.raises(ValueError, match="covers only up to 8"):
        store.compact_log(9)
    # An older or equal local snapshot changes nothing.
    store.write_snapshot(Snapshot(SnapshotMeta(6, 1, MEMBERS), b"state@6"))
    store.write_snapshot(Snapshot(SnapshotMeta(8, 1, MEMBERS), b"other"))
    store.close()
    store, state = open_store(tmp_path / "raft.duckdb")
    assert state.snapshot is not None and state.snapshot.data == b"state@8"
    assert state.entries == entries(1, 10)
    store.close()


def test_install_over_trailing_entries(tmp_path: Path) -> None:
    store, _ = open_store(tmp_path / "raft.duckdb")
    store.save(HardState(term=1, commit=20), entries(1, 30))
    store.write_snapshot(Snapshot(SnapshotMeta(20, 1, MEMBERS), b"local@20"))
    store.compact_log(15)
    store.save_snapshot(Snapshot(SnapshotMeta(25, 1, MEMBERS), b"leader@25"))  # matches entry 25
    store.close()
    store, state = open_store(tmp_path / "raft.duckdb")
    assert state.entries == entries(26, 30)
    store.save_snapshot(Snapshot(SnapshotMeta(28, 3, MEMBERS), b"leader@28"))  # conflicts
    store.close()
    store, state = open_store(tmp_path / "raft.duckdb")
    assert state.entries == [] and state.snapshot is not None and state.snapshot.data == b"leader@28"
    store.close()


def test_load_refuses_a_gap_between_the_snapshot_and_the_log(tmp_path: Path) -> None:
    store, _ = open_store(tmp_path / "raft.duckdb")
    store.save(HardState(term=1, commit=20), entries(1, 30))
    store.write_snapshot(Snapshot(SnapshotMeta(20, 1, MEMBERS), b"local@20"))
    store.close()
    edit(tmp_path / "raft.duckdb", ("DELETE FROM log WHERE idx > 0 AND idx <= 22", []))
    load_fails(tmp_path / "raft.duckdb", "the log starts at 23, after the snapshot at 20")


# -- format 1 ------------------------------------------------------------------------------

FORMAT_1_SCHEMA = """
CREATE TABLE orion_store (format_version INTEGER NOT NULL);
CREATE TABLE log (idx BIGINT NOT NULL, term BIGINT NOT NULL, kind INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE snapshot_meta (
    idx BIGINT NOT NULL, term BIGINT NOT NULL, membership BLOB NOT NULL,
    layout VARCHAR, raw_data BLOB
);
"""


def write_format_1_store(path: Path, snapshot_data: bytes) -> None:
    """A store as the previous format wrote it: no checksums, no identity."""
    tabular = decode_tabular_snapshot(snapshot_data)
    table = tabular.tables["tasks"]
    con = duckdb.connect(str(path))
    con.execute(FORMAT_1_SCHEMA)
    con.execute("INSERT INTO orion_store VALUES (1)")
    con.execute("INSERT INTO log VALUES (-1, 0, -1, ?)", [msgspec.msgpack.encode(HardState())])
    latest = msgspec.msgpack.encode(HardState(term=2, vote="n1", commit=15))
    con.execute("INSERT INTO log VALUES (-2, 2, -1, ?)", [latest])
    for entry in entries(11, 20, 2):
        con.execute("INSERT INTO log VALUES (?, ?, ?, ?)", [entry.index, entry.term, entry.kind, entry.data])
    layout = msgspec.json.encode([["tasks", table.columns, table.types]]).decode()
    members = msgspec.msgpack.encode(MEMBERS)
    con.execute("INSERT INTO snapshot_meta VALUES (10, 2, ?, ?, NULL)", [members, layout])
    columns = ", ".join(f"{c} {t}" for c, t in zip(table.columns, table.types, strict=True))
    con.execute(f"CREATE TABLE snap_tasks ({columns})")
    for row in table.rows:
        con.execute(f"INSERT INTO snap_tasks VALUES ({', '.join('?' * len(row))})", row)
    con.close()


def test_a_format_1_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "raft.duckdb"
    write_format_1_store(path, tasks_snapshot())
    store, state = open_store(path)
    expected = StoredState(
        hard_state=HardState(term=2, vote="n1", commit=15),
        snapshot=Snapshot(SnapshotMeta(10, 2, MEMBERS), tasks_snapshot()),
        entries=entries(11, 20, 2),
    )
    assert state == expected
    assert store.load_identity() is None
    store.save(None, entries(21, 21, 2))
    store.close()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT format_version FROM orion_store").fetchall() == [(FORMAT_VERSION,)]
    con.close()
    store, state = open_store(path)
    store.close()
    assert state.entries == entries(11, 21, 2)
    # The checksums computed at migration are enforced from then on.
    edit(path, ("UPDATE log SET data = 'x' WHERE idx = 11", []))
    load_fails(path, "log entry 11 fails its checksum")


# -- file modes ----------------------------------------------------------------------------


def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store, _ = open_store(tmp_path / "raft.duckdb")
        store.save(HardState(term=1), entries(1, 3))
        store.close()
    finally:
        os.umask(old)
    for name in ("raft.duckdb", "raft.duckdb.seq"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
