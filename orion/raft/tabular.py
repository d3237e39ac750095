"""Decoding of ``TabularSnapshot`` bytes.

``msgspec`` cannot decode ``TabularSnapshot`` by its own type: a row value's union
``int | float | str | bytes | bool | None`` holds two str-like types, which msgspec refuses. So
rows decode as ``Any`` here (MessagePack keeps str and bin apart, so nothing is lost) and the
shape is validated by hand.
"""

from __future__ import annotations

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
