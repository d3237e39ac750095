"""orion.raft.duckdb_rows: rows go into a DuckDB table through one JSON text and come back
exactly, value for value and bit for bit."""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

import duckdb
import pytest

from orion.raft.duckdb_rows import ColumnBatch, InexactValue, insert_sql
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, EntryKind, HardState

TYPES = ("VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "BLOB", "BOOLEAN")


def round_trip(columns: list[list[Any]], slices: int = 1) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (" + ", ".join(f"c{i} {t}" for i, t in enumerate(TYPES)) + ")")
    batch = ColumnBatch(TYPES)
    length = len(columns[0])
    step = max(1, -(-length // slices))
    for start in range(0, length, step):
        batch.add([column[start : start + step] for column in columns])
    assert batch.num_rows == length
    con.execute(insert_sql("t", TYPES), batch.arguments())
    rows = con.execute("SELECT * FROM t ORDER BY rowid").fetchall()
    con.close()
    return rows


def bits(value: float | None) -> bytes | None:
    return None if value is None else struct.pack("<d", value)


def test_every_type_and_edge_value_comes_back_in_order_over_several_slices() -> None:
    rows: list[tuple[Any, ...]] = [
        ("", -(2**63), -(2**31), -0.0, b"", False),
        ('\x00nul "quoted" \\ \n\t ü€😀', 2**63 - 1, 2**31 - 1, math.inf, b"\x00\xff" * 1000, True),
        (None, None, None, None, None, None),
        ('{"json":["inside"]}', 0, 0, -math.inf, os.urandom(300), True),
        ("nan", 1, 1, math.nan, b"=", False),
        ("subnormal", 2, 2, 5e-324, b"==", None),
        ("big", 3, 3, 1.7976931348623157e308, b"x" * 3, False),
    ]
    rows += [(f"r{i}", i, -i, i / 7, bytes([i % 256]) * (i % 5), i % 2 == 0) for i in range(500)]
    columns = [list(column) for column in zip(*rows, strict=True)]
    for slices in (1, 3, 50):
        got = round_trip(columns, slices)
        assert len(got) == len(rows)
        for want, have in zip(rows, got, strict=True):
            assert want[:3] == have[:3] and want[4:] == have[4:]
            assert bits(want[3]) == bits(have[3])


def test_random_doubles_come_back_bit_for_bit() -> None:
    doubles = [struct.unpack("<d", os.urandom(8))[0] for _ in range(20_000)]
    doubles = [d for d in doubles if not math.isnan(d)]
    n = len(doubles)
    got = round_trip([["x"] * n, [0] * n, [0] * n, doubles, [b""] * n, [True] * n])
    assert [bits(row[3]) for row in got] == [bits(d) for d in doubles]


def test_a_nan_duckdb_would_not_give_back_is_refused() -> None:
    other_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000123))[0]
    for value in (-math.nan, other_nan):
        with pytest.raises(InexactValue, match="NaN"):
            ColumnBatch(["DOUBLE"]).add([[1.0, value]])


def test_bad_shapes_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="column types"):
        insert_sql("t", ("HUGEINT",))
    with pytest.raises(ValueError, match="2 columns for a table of 1"):
        ColumnBatch(["BIGINT"]).add([[1], [2]])
    with pytest.raises(ValueError, match="differ in length"):
        ColumnBatch(["BIGINT", "BIGINT"]).add([[1], [2, 3]])


def test_an_empty_batch_inserts_nothing() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a BIGINT, b BLOB)")
    batch = ColumnBatch(["BIGINT", "BLOB"])
    batch.add([[], []])
    con.execute(insert_sql("t", ("BIGINT", "BLOB")), batch.arguments())
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)


@pytest.mark.parametrize("sizes", [[1, 7, 8, 100, 191, 192, 500], [600, 3, 64]])
def test_log_batches_of_every_insert_path_come_back(tmp_path: Path, sizes: list[int]) -> None:
    """DuckDBStore.save takes a VALUES insert, list parameters or JSON text by batch size."""
    store = DuckDBStore(tmp_path / "raft.duckdb")
    store.load()
    entries: list[Entry] = []
    for size in sizes:
        first = len(entries) + 1
        batch = [
            Entry(i, 1 + i // 300, EntryKind.NORMAL, os.urandom(i % 7 * 50))
            for i in range(first, first + size)
        ]
        store.save(HardState(term=1 + (first + size) // 300, vote="n1", commit=first), batch)
        entries += batch
    store.close()
    store = DuckDBStore(tmp_path / "raft.duckdb")
    state = store.load()
    store.close()
    assert state.entries == entries
