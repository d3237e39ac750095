"""Decoding of ``TabularSnapshot`` bytes.

``msgspec`` cannot decode ``TabularSnapshot`` by its own type: a row value's union
``int | float | str | bytes | bool | None`` holds two str-like types, which msgspec refuses. So
rows decode as ``Any`` here (MessagePack keeps str and bin apart, so nothing is lost) and the
shape is validated by hand.

``decode_tabular_exactly`` is for a store that rebuilds the bytes from tables: it returns the
snapshot only when re-encoding it gives back exactly the same bytes, and it works a row at a
time, so a thread writing a big snapshot lets the others run between rows (one decode and one
encode of a 200 MB snapshot hold the GIL for about 0.6 s and 0.4 s here).
"""

from __future__ import annotations

import itertools
from array import array
from typing import Any

import msgspec

from orion.raft.types import Table, TabularSnapshot

ROW_VALUE_TYPES = (int, float, str, bytes, bool, type(None))


class _LooseTable(msgspec.Struct):
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]


class _LooseTabular(msgspec.Struct):
    tables: dict[str, _LooseTable]


_decoder = msgspec.msgpack.Decoder(_LooseTabular)


class RawTable(msgspec.Struct):
    columns: list[str]
    types: list[str]
    rows: list[msgspec.Raw]  # each row still encoded: a view into the snapshot's bytes


class RawTabular(msgspec.Struct):
    tables: dict[str, RawTable]


_raw_decoder = msgspec.msgpack.Decoder(RawTabular)
_row_decoder = msgspec.msgpack.Decoder(list[Any])
_encoder = msgspec.msgpack.Encoder()
_EMPTY_ARRAY = b"\x90"
_EMPTY_MAP = b"\x80"


def decode_tabular_snapshot(data: bytes, *, check_rows: bool = True) -> TabularSnapshot:
    """Decode and validate; raise ``msgspec.ValidationError`` (a ``DecodeError``) on bad shape.

    ``check_rows=False`` skips the per-value checks for a caller that checks rows itself."""
    loose = _decoder.decode(data)
    tables: dict[str, Table] = {}
    for name, table in loose.tables.items():
        if not check_rows:
            tables[name] = Table(columns=table.columns, types=table.types, rows=table.rows)
            continue
        width = len(table.columns)
        if len(table.types) != width:
            raise msgspec.ValidationError(f"table {name!r}: {width} columns but {len(table.types)} types")
        for row in table.rows:
            if len(row) != width:
                raise msgspec.ValidationError(f"table {name!r}: a row has {len(row)} values, not {width}")
            for value in row:
                if not isinstance(value, ROW_VALUE_TYPES):
                    raise msgspec.ValidationError(f"table {name!r}: value of type {type(value).__name__}")
        tables[name] = Table(columns=table.columns, types=table.types, rows=table.rows)
    return TabularSnapshot(tables=tables)


def encode_tabular_snapshot(snapshot: TabularSnapshot) -> bytes:
    return msgspec.msgpack.encode(snapshot)


def decode_tabular_snapshot_exactly(data: bytes) -> TabularSnapshot | None:
    """The ``TabularSnapshot`` whose encoding is exactly ``data``, or None when ``data`` is
    not one or is encoded any other way than msgspec encodes it. Rows are not validated."""
    skeleton = decode_tabular_skeleton(data)
    if skeleton is None:
        return None
    tables: dict[str, Table] = {}
    for name, raw_table in skeleton.tables.items():
        rows: list[list[Any]] = []
        for raw in raw_table.rows:
            try:
                row = _row_decoder.decode(raw)
            except msgspec.DecodeError:
                return None
            if _encoder.encode(row) != memoryview(raw):
                return None
            rows.append(row)
        tables[name] = Table(columns=raw_table.columns, types=raw_table.types, rows=rows)
    return TabularSnapshot(tables=tables)


def decode_tabular_skeleton(data: bytes) -> RawTabular | None:
    """The tables of ``data`` with every row still encoded, or None when ``data`` is not a
    ``TabularSnapshot`` framed exactly as msgspec frames one around these rows. The rows
    themselves are not checked: a caller that needs ``data`` back byte for byte decodes and
    re-encodes them (in slices, so no single call holds the interpreter lock for long)."""
    framed = _framed_skeleton(data)
    return None if framed is None else framed[0]


def _framed_skeleton(data: bytes) -> tuple[RawTabular, list[int]] | None:
    """The skeleton of ``data`` and where each table's first row starts, when its framing is
    exactly msgspec's (``_framing_positions``), else None."""
    try:
        skeleton = _raw_decoder.decode(data)
    except msgspec.DecodeError:
        return None
    starts = _framing_positions(data, skeleton)
    return None if starts is None else (skeleton, starts)


class TableSpans(msgspec.Struct):
    """One table of a ``TabularSnapshot`` whose rows are left in the snapshot's bytes: row ``i``
    is ``data[start + (ends[i - 1] if i else 0) : start + ends[i]]``."""

    columns: list[str]
    types: list[str]
    start: int  # offset in the snapshot's bytes of the first row
    ends: array  # int64 offsets after each row, from ``start``: 8 bytes a row, no object each


def decode_tabular_spans(data: bytes) -> dict[str, TableSpans] | None:
    """As ``decode_tabular_skeleton``, but each table's rows as offsets into ``data`` rather
    than one ``msgspec.Raw`` each. A 100k-task snapshot's skeleton holds 100k Raw objects and a
    writer's running sums of their sizes another 100k ints (~8 MB of small objects, issue 16
    item 5); kept for the seconds a paced snapshot write takes, while other threads' long-lived
    objects land in the same pymalloc arenas, they left that much free but unreturnable memory
    behind each write. Here the Raw objects live only inside this call (which holds the
    interpreter lock throughout, so no other thread allocates meanwhile) and are freed
    before it returns."""
    framed = _framed_skeleton(data)
    if framed is None:
        return None
    skeleton, starts = framed
    spans = {
        name: TableSpans(
            columns=table.columns,
            types=table.types,
            start=start,
            ends=array("q", itertools.accumulate(map(len, table.rows))),
        )
        for (name, table), start in zip(skeleton.tables.items(), starts, strict=True)
    }
    del framed, skeleton
    return spans


def _framing_positions(data: bytes, skeleton: RawTabular) -> list[int] | None:
    """Where each table's first row starts in ``data`` when ``data`` is the encoding of
    ``skeleton``'s tables around its rows (every byte that is not a row is what msgspec writes
    for a ``TabularSnapshot`` with these names, columns and types, and the rows fill exactly the
    rest), else None. Only these small pieces are encoded; the caller compares the rows one by
    one."""
    head = _encoder.encode(TabularSnapshot(tables={}))
    if not head.endswith(_EMPTY_MAP):
        return None
    position = _expect(data, 0, head[: -len(_EMPTY_MAP)] + _map_header(len(skeleton.tables)))
    starts: list[int] = []
    for name, table in skeleton.tables.items():
        without_rows = _encoder.encode(Table(columns=table.columns, types=table.types, rows=[]))
        if position < 0 or not without_rows.endswith(_EMPTY_ARRAY):  # rows is the last field
            return None
        framing = _encoder.encode(name) + without_rows[: -len(_EMPTY_ARRAY)] + array_header(len(table.rows))
        position = _expect(data, position, framing)
        if position >= 0:
            starts.append(position)
            position += sum(map(len, table.rows))
    return starts if position == len(data) else None


def _expect(data: bytes, position: int, piece: bytes) -> int:
    """The position after ``piece`` when ``data`` holds it at ``position``, else -1."""
    if position < 0 or data[position : position + len(piece)] != piece:
        return -1
    return position + len(piece)


def _map_header(count: int) -> bytes:
    if count < 16:
        return bytes([0x80 | count])
    if count < 1 << 16:
        return b"\xde" + count.to_bytes(2, "big")
    return b"\xdf" + count.to_bytes(4, "big")


def array_header(count: int) -> bytes:
    """The MessagePack array header msgspec writes for ``count`` items (the shortest form)."""
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")
