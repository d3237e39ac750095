"""decode_tabular_snapshot_exactly: a snapshot comes back only when its bytes re-encode exactly;
decode_tabular_spans: each row's bytes found by offset, as the skeleton's Raw rows hold them."""

from __future__ import annotations

import msgspec
import pytest

from orion.raft.tabular import decode_tabular_skeleton, decode_tabular_snapshot_exactly, decode_tabular_spans
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


def test_spans_point_at_the_same_bytes_as_the_skeleton_rows() -> None:
    snapshot = TabularSnapshot(
        tables={
            "empty": table(0),
            "wide": table(40, width=5),
            "text": Table(columns=["s"], types=["VARCHAR"], rows=[["x" * n] for n in (0, 1, 300, 70_000, 2)]),
        }
    )
    data = msgspec.msgpack.encode(snapshot)
    skeleton = decode_tabular_skeleton(data)
    spans = decode_tabular_spans(data)
    assert skeleton is not None and spans is not None
    assert list(spans) == list(skeleton.tables)
    for name, raw in skeleton.tables.items():
        span = spans[name]
        assert (span.columns, span.types, len(span.ends)) == (raw.columns, raw.types, len(raw.rows))
        starts = [0, *span.ends][: len(span.ends)]
        rows = [data[span.start + lo : span.start + hi] for lo, hi in zip(starts, span.ends, strict=True)]
        assert rows == [bytes(r) for r in raw.rows]


def test_spans_of_what_is_no_table_snapshot_are_none() -> None:
    assert decode_tabular_spans(msgspec.msgpack.encode({"tables": 1})) is None
    data = msgspec.msgpack.encode(TabularSnapshot(tables={"t": table(3)}))
    assert decode_tabular_spans(data + b"\0") is None
