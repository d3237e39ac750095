"""How write_snapshot turns snapshot rows into DuckDB tables: in slices converted by msgspec
(decoded with the column types, encoded as JSON columns), committed in chunks bounded by the
rows' bytes, and kept as a blob whenever the tables would not give back the exact bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

from orion.raft import duckdb_store
from orion.raft.duckdb_rows import ColumnBatch
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta, Table, TabularSnapshot

MEMBERS = Membership(voters={"n1": "127.0.0.1:7100"})
COLUMNS = ["id", "memory", "cpu", "env", "blob", "ready"]
TYPES = ["VARCHAR", "BIGINT", "DOUBLE", "VARCHAR", "BLOB", "BOOLEAN"]


def good_row(i: int) -> list[Any]:
    return [f"t{i}", i * 1024, i / 4, "e" * (i % 50), bytes([i % 256]) * 3, i % 2 == 0]


def encode(rows: list[list[Any]], columns: list[str] = COLUMNS, types: list[str] = TYPES) -> bytes:
    table = Table(columns=columns, types=types, rows=rows)
    return msgspec.msgpack.encode(TabularSnapshot(tables={"tasks": table}))


def write_and_reload(path: Path, data: bytes) -> tuple[bytes, list[str], bool]:
    """Write ``data`` as a local snapshot, reopen the store; returns the loaded bytes, the
    tables in the file and whether the snapshot was kept as a blob."""
    store = DuckDBStore(path)
    store.load()
    store.save(HardState(term=1, commit=1), [Entry(1, 1, 0, b"x")])
    store.write_snapshot(Snapshot(SnapshotMeta(1, 1, MEMBERS), data))
    store.close()
    store = DuckDBStore(path)
    state = store.load()
    store.close()
    assert state.snapshot is not None
    con = duckdb.connect(str(path), read_only=True)
    tables = sorted(r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall())
    (raw,) = con.execute("SELECT raw_data FROM snapshot_meta").fetchone()  # type: ignore[misc]
    con.close()
    return state.snapshot.data, tables, raw is not None


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of a few rows and commits of a few slices, so small snapshots take many of each."""
    monkeypatch.setattr(duckdb_store, "_CONVERT_BYTES", 300)
    monkeypatch.setattr(duckdb_store, "SNAPSHOT_CHUNK_BYTES", 2_000)


def test_rows_of_every_column_type_come_back_exactly_in_many_slices(
    tmp_path: Path, small_slices: None
) -> None:
    rows = [good_row(i) for i in range(500)]
    rows[7] = [None, None, None, None, None, None]
    rows[8] = ["", -(2**63), -0.0, "ü€😀", b"", False]
    rows[9] = ["max", 2**63 - 1, float("inf"), "\x00nul", b"\x00" * 70_000, True]  # one row over a chunk
    rows[10] = ["tiny", 0, 5e-324, '{"a":"\\"}\n', b"\xff", None]
    rows[11] = ["nan", 0, float("nan"), "\t", b"\xfe", None]
    data = encode(rows)
    loaded, tables, as_blob = write_and_reload(tmp_path / "raft.duckdb", data)
    assert loaded == data
    assert not as_blob and tables == ["log", "orion_store", "snap_tasks", "snapshot_meta"]
    con = duckdb.connect(str(tmp_path / "raft.duckdb"), read_only=True)
    in_sql = con.execute("SELECT id, memory, ready FROM snap_tasks ORDER BY rowid LIMIT 3").fetchall()
    con.close()
    assert in_sql == [("t0", 0, True), ("t1", 1024, False), ("t2", 2048, True)]


def test_commits_are_bounded_by_the_rows_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of very different sizes in one table: no commit holds much more than a chunk."""
    chunk = 100_000
    big = 60_000
    monkeypatch.setattr(duckdb_store, "SNAPSHOT_CHUNK_BYTES", chunk)
    committed_rows: list[int] = []
    insert_chunk = DuckDBStore._insert_chunk

    def recording(con: duckdb.DuckDBPyConnection, stage: str, batches: list[ColumnBatch]) -> None:
        committed_rows.append(sum(batch.num_rows for batch in batches))
        insert_chunk(con, stage, batches)

    monkeypatch.setattr(DuckDBStore, "_insert_chunk", staticmethod(recording))
    rows = [[f"small-{i}", "x"] for i in range(2_000)]
    rows += [[f"big-{i}", "y" * big] for i in range(20)]
    rows += [[f"small-{i}", "z"] for i in range(2_000, 4_000)]
    data = encode(rows, ["id", "env"], ["VARCHAR", "VARCHAR"])
    loaded, _, as_blob = write_and_reload(tmp_path / "raft.duckdb", data)
    assert loaded == data and not as_blob
    sizes = [len(msgspec.msgpack.encode(row)) for row in rows]
    committed_bytes = []
    start = 0
    for count in committed_rows:
        committed_bytes.append(sum(sizes[start : start + count]))
        start += count
    assert start == len(rows)
    assert len(committed_bytes) > 10 and max(committed_bytes) < chunk + big


@pytest.mark.parametrize(
    ("what", "bad_row"),
    [
        ("a bool in a BIGINT column", ["t", True, 1.0, "e", b"b", True]),
        ("an int in a DOUBLE column", ["t", 1, 1, "e", b"b", True]),
        ("bytes in a VARCHAR column", [b"t", 1, 1.0, "e", b"b", True]),
        ("a str in a BLOB column", ["t", 1, 1.0, "e", "b", True]),
        ("an int in a BOOLEAN column", ["t", 1, 1.0, "e", b"b", 1]),
        ("an int beyond BIGINT", ["t", 2**63, 1.0, "e", b"b", True]),
        ("a NaN DuckDB would not give back bit for bit", ["t", 1, -float("nan"), "e", b"b", True]),
        ("a row one value short", ["t", 1, 1.0, "e", b"b"]),
        ("a nested value", ["t", 1, 1.0, ["e"], b"b", True]),
    ],
)
def test_a_row_the_tables_cannot_hold_keeps_the_snapshot_as_a_blob(
    tmp_path: Path, small_slices: None, what: str, bad_row: list[Any]
) -> None:
    """Far into the table, after several chunks were committed: the staged tables go and the
    exact bytes are stored as a blob."""
    rows = [good_row(i) for i in range(300)]
    rows[250] = bad_row
    data = encode(rows)
    loaded, tables, as_blob = write_and_reload(tmp_path / "raft.duckdb", data)
    assert loaded == data, what
    assert as_blob and tables == ["log", "orion_store", "snapshot_meta"], what


def test_rows_encoded_other_than_msgspec_encodes_them_keep_the_snapshot_as_a_blob(
    tmp_path: Path, small_slices: None
) -> None:
    rows = [good_row(i) for i in range(100)]
    data = encode(rows)
    short = msgspec.msgpack.encode("t60")  # fixstr
    long_form = b"\xd9" + bytes([3]) + b"t60"  # the same string as str8: valid, not msgspec's
    assert data.count(short) == 1
    data = data.replace(short, long_form)
    loaded, tables, as_blob = write_and_reload(tmp_path / "raft.duckdb", data)
    assert loaded == data
    assert as_blob and "snap_tasks" not in tables


@pytest.mark.parametrize(
    ("what", "tables"),
    [
        ("no columns", {"tasks": Table(columns=[], types=[], rows=[])}),
        ("an unknown type", {"tasks": Table(columns=["a"], types=["HUGEINT"], rows=[[1]])}),
        ("columns differing in case only", {"t": Table(columns=["a", "A"], types=["BIGINT"] * 2, rows=[])}),
        (
            "tables differing in case only",
            {"t": Table(["a"], ["BIGINT"], []), "T": Table(["a"], ["BIGINT"], [])},
        ),
    ],
)
def test_layouts_the_tables_cannot_hold_keep_the_snapshot_as_a_blob(
    tmp_path: Path, what: str, tables: dict[str, Table]
) -> None:
    data = msgspec.msgpack.encode(TabularSnapshot(tables=tables))
    loaded, in_file, as_blob = write_and_reload(tmp_path / "raft.duckdb", data)
    assert loaded == data, what
    assert as_blob and not any(t.startswith(("snap_", "stage_")) for t in in_file), what


def test_empty_tables_are_created_and_come_back(tmp_path: Path) -> None:
    data = encode([])
    loaded, tables, as_blob = write_and_reload(tmp_path / "raft.duckdb", data)
    assert loaded == data and not as_blob and "snap_tasks" in tables
