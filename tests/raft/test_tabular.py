"""decode_tabular_snapshot_exactly: a snapshot comes back only when its bytes re-encode exactly."""

from __future__ import annotations

import msgspec
import pytest

from orion.raft.tabular import decode_tabular_snapshot_exactly
from orion.raft.types import Table, TabularSnapshot


def table(rows: int, width: int = 2) -> Table:
    return Table(
        columns=[f"c{i}" for i in range(width)],
        types=["BIGINT"] * width,
        rows=[[r * width + i for i in range(width)] for r in range(rows)],
    )


@pytest.mark.parametrize(
    "snapshot",
    [
        TabularSnapshot(tables={}),
        TabularSnapshot(tables={"empty": table(0)}),
        TabularSnapshot(
            tables={
                "t": Table(
                    columns=["s", "f", "b", "n"], types=["VARCHAR"] * 4, rows=[["x", 1.5, b"\0", None]]
                )
            }
        ),
        TabularSnapshot(tables={f"t{i}": table(i) for i in range(20)}),  # a map16 of tables
        TabularSnapshot(tables={"big": table(70_000, width=1)}),  # an array32 of rows
        TabularSnapshot(tables={"a": table(15), "b": table(16), "c": table(65_535, width=1)}),
    ],
    ids=["no tables", "no rows", "mixed values", "20 tables", "70k rows", "header sizes"],
)
def test_canonical_encodings_decode(snapshot: TabularSnapshot) -> None:
    data = msgspec.msgpack.encode(snapshot)
    decoded = decode_tabular_snapshot_exactly(data)
    assert decoded == snapshot
    assert msgspec.msgpack.encode(decoded) == data


def test_float_equality_is_by_bytes() -> None:
    snapshot = TabularSnapshot(
        tables={"t": Table(columns=["f"], types=["DOUBLE"], rows=[[float("nan")], [-0.0]])}
    )
    data = msgspec.msgpack.encode(snapshot)
    decoded = decode_tabular_snapshot_exactly(data)
    assert decoded is not None and msgspec.msgpack.encode(decoded) == data


ONE_ROW = msgspec.msgpack.encode(
    TabularSnapshot(tables={"t": Table(columns=["x"], types=["BIGINT"], rows=[[1]])})
)


@pytest.mark.parametrize(
    "data",
    [
        b"opaque state",
        b"",
        ONE_ROW + b"\x00",  # trailing bytes
        ONE_ROW.replace(b"\x91\x01", b"\x91\xd3" + (1).to_bytes(8, "big")),  # an int not in its shortest form
        ONE_ROW.replace(b"\x91\x01", b"\x91\xca" + b"\x3f\x80\x00\x00"),  # a float32
        ONE_ROW.replace(b"\x81\xa1t", b"\xde\x00\x01\xa1t"),  # a map16 header for one table
        msgspec.msgpack.encode(
            {"tables": {"t": {"rows": [[1]], "columns": ["x"], "types": ["BIGINT"]}}}
        ),  # order
        msgspec.msgpack.encode(
            {"tables": {"t": {"columns": ["x"], "types": ["BIGINT"], "rows": [[1]]}}, "more": 1}
        ),
        msgspec.msgpack.encode(
            {"tables": {"t": {"columns": ["x"], "types": ["BIGINT"], "rows": [7]}}}
        ),  # not a row
    ],
    ids=[
        "opaque",
        "empty",
        "trailing",
        "long int",
        "float32",
        "map16",
        "field order",
        "extra field",
        "scalar row",
    ],
)
def test_other_encodings_are_not_tables(data: bytes) -> None:
    assert decode_tabular_snapshot_exactly(data) is None
