"""Many rows into a DuckDB table in one INSERT, without Arrow.

The rows travel column by column as one JSON text, ``{"c0": [...], "c1": [...], ...}``, which
msgspec writes in C and DuckDB's ``json_transform`` turns into typed lists that ``unnest``
lays side by side (several unnests in one SELECT are zipped, in order). A Python list of
values as a parameter would also do, but DuckDB converts it value by value: 7 us per BLOB
value, ~1 us per int, where the JSON text is one string parameter.

Exactness (a snapshot's tables must give back its bytes): BIGINT, INTEGER, VARCHAR and
BOOLEAN values are JSON values; BLOB values are base64 strings (msgspec's encoding of bytes)
decoded by ``from_base64``; DOUBLE values are their shortest round-trip text (``repr``) cast
by DuckDB, since JSON has no inf or nan. A NaN other than the one DuckDB parses from ``nan``
(another payload or sign) would not come back bit for bit: ``add`` refuses it with
``InexactValue`` and the caller keeps its data another way. Values must already have their
column's Python type (the callers check them): ``json_transform`` would convert a wrong one.

Why not Arrow: pyarrow maps ~21 MB of libraries into every node (issue 16 item 5), and this
is as fast from ~12 rows up to a few hundred (tools/bench/duckdb_append_floor.py).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Sequence
from typing import Any

import msgspec

# DuckDB column type -> (type inside the JSON lists, SQL around one unnested value).
_COLUMN_CODECS: dict[str, tuple[str, str]] = {
    "BIGINT": ("BIGINT[]", "{}"),
    "INTEGER": ("INTEGER[]", "{}"),
    "VARCHAR": ("VARCHAR[]", "{}"),
    "BOOLEAN": ("BOOLEAN[]", "{}"),
    "BLOB": ("VARCHAR[]", "from_base64({})"),
    "DOUBLE": ("VARCHAR[]", "CAST({} AS DOUBLE)"),
}
COLUMN_TYPES = frozenset(_COLUMN_CODECS)
_DUCKDB_NAN = struct.pack("<d", float("nan"))  # what DuckDB makes of the text 'nan'
_encoder = msgspec.json.Encoder()


class InexactValue(ValueError):
    """A value that would not come back from the table bit for bit."""


@functools.cache
def insert_sql(table: str, types: tuple[str, ...]) -> str:
    """The INSERT for ``ColumnBatch(types).arguments()`` into ``table`` (an SQL name, quoted
    as needed), its columns in this order."""
    if not types or any(t not in _COLUMN_CODECS for t in types):
        raise ValueError(f"column types must be some of {sorted(_COLUMN_CODECS)}, not {list(types)}")
    spec = ", ".join(f'"c{i}": "{_COLUMN_CODECS[t][0]}"' for i, t in enumerate(types))
    values = ", ".join(_COLUMN_CODECS[t][1].format(f"unnest(j.c{i})") for i, t in enumerate(types))
    return f"INSERT INTO {table} SELECT {values} FROM (SELECT json_transform($1, '{{{spec}}}') AS j)"


class ColumnBatch:
    """Rows for one INSERT, added a slice at a time as columns (so no single call holds the
    interpreter lock for long), each slice encoded as it comes."""

    def __init__(self, types: Sequence[str]) -> None:
        self.types = tuple(types)
        self.num_rows = 0
        self.num_bytes = 0  # of JSON so far
        self._pieces: list[list[bytes]] = [[] for _ in self.types]  # "v1,v2,..." per slice

    def add(self, columns: Sequence[Sequence[Any]]) -> None:
        """One slice of rows, as one sequence of values per column (all of one length)."""
        if len(columns) != len(self.types):
            raise ValueError(f"{len(columns)} columns for a table of {len(self.types)}")
        length = len(columns[0])
        for pieces, column_type, values in zip(self._pieces, self.types, columns, strict=True):
            if len(values) != length:
                raise ValueError("columns of one slice differ in length")
            if column_type == "DOUBLE":
                values = _double_texts(values)
            encoded = _encoder.encode(values)
            if len(encoded) > 2:  # not "[]"
                pieces.append(encoded[1:-1])
                self.num_bytes += len(encoded)
        self.num_rows += length

    def arguments(self) -> list[str]:
        """The parameters of ``insert_sql(table, types)``."""
        columns = (b'"c%d":[' % i + b",".join(pieces) + b"]" for i, pieces in enumerate(self._pieces))
        return [(b"{" + b",".join(columns) + b"}").decode()]


def _double_texts(values: Sequence[float | None]) -> list[str | None]:
    texts = [None if value is None else repr(value) for value in values]
    if "nan" in texts:
        for value in values:
            if value is not None and math.isnan(value) and struct.pack("<d", value) != _DUCKDB_NAN:
                raise InexactValue(f"a NaN with bits {struct.pack('<d', value).hex()} would not come back")
    return texts
