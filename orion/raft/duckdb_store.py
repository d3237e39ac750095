"""The durable LogStore: a Raft node's log, hard state and snapshot in one DuckDB file.

Layout (format version ``FORMAT_VERSION``):

- ``orion_store``: one row, the format version; its absence in a non-empty file is refused.
- ``log``: (idx, term, kind, data); no primary key: measured side by side, a key was no
  faster at 1,024 rows per insert and up to 40% slower at 64, and its ART index lengthens
  checkpoints (up to 1.5 s, ANCHORS.md). Appends arrive in index order, so zonemaps keep the
  range deletes cheap; uniqueness and contiguity are checked by this module and at load.
  Rows with ``idx > 0`` are Raft entries. Rows with ``idx < 0`` and ``kind = -1`` are hard
  state records (``data`` = msgpack HardState), appended with a decreasing ``idx``, so the
  latest is the lowest. Keeping them in the same table lets a save be one autocommit INSERT:
  touching a second table in a transaction halves single-entry throughput here. Old records
  are deleted with snapshots and checkpoints. ``SELECT * FROM log WHERE idx > 0`` is the log.
- ``snapshot_meta``: zero or one row: index, term, membership (msgpack), the table layout as
  JSON, and ``raw_data`` when the snapshot is not a ``TabularSnapshot`` that tables can hold.
- ``snap_<name>``: one DuckDB table per FSM table of the snapshot, with its own column types,
  so an operator can ``select * from snap_tasks`` on a stopped node.

Every write method is one transaction. DuckDB fdatasyncs its WAL on every COMMIT (checked
with strace: one fdatasync per save), so a returned write is durable. Automatic WAL
checkpoints (stalls of 100-300 ms) are switched off; the shell calls ``checkpoint()`` off the
hot path, e.g. after a snapshot.

Damage: DuckDB checksums every block of the main file, so bytes overwritten there or a
truncated file are refused at open or at load (``StoreCorruptError`` naming the file), and the
consistency of what is read is checked too. Known limit: DuckDB replays its WAL up to the
first entry that fails its checksum and ignores the rest without an error (it cannot tell a
torn tail from damage in the middle), so a damaged WAL loses the writes after the damage.
Checkpointing after each snapshot keeps the WAL, and so that exposure, small.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa

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

FORMAT_VERSION = 1

# Batches smaller than this go through a prepared multi-row INSERT; larger ones via Arrow,
# whose fixed registration cost pays off only with a few rows.
_ARROW_MIN_ROWS = 16

_ARROW_TYPES: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "BLOB": pa.binary(),
    "BOOLEAN": pa.bool_(),
}
# The Python type DuckDB gives back for each column type: a value of any other type would not
# survive the round trip byte for byte (an int in a DOUBLE column comes back as a float).
_PY_TYPES: dict[str, type] = {"BIGINT": int, "DOUBLE": float, "VARCHAR": str, "BLOB": bytes, "BOOLEAN": bool}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_VALID_KINDS = frozenset(int(k) for k in EntryKind)
HARD_STATE_KIND = -1  # kind of the hard state records in the log table
_LOG_SCHEMA = pa.schema(
    [("idx", pa.int64()), ("term", pa.int64()), ("kind", pa.int32()), ("data", pa.binary())]
)

_SCHEMA_SQL = """
CREATE TABLE orion_store (format_version INTEGER NOT NULL);
CREATE TABLE log (idx BIGINT NOT NULL, term BIGINT NOT NULL, kind INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE snapshot_meta (
    idx BIGINT NOT NULL, term BIGINT NOT NULL, membership BLOB NOT NULL,
    layout VARCHAR, raw_data BLOB
);
"""


class _TableLayout(msgspec.Struct, array_like=True):
    name: str
    columns: list[str]
    types: list[str]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _snap_table(name: str) -> str:
    return _quote("snap_" + name)


def _fits_tables(tabular: TabularSnapshot) -> bool:
    """True when every value has exactly the Python type its column gives back, so tables
    rebuild the identical encoding."""
    # DuckDB matches identifiers case-insensitively, even quoted ones.
    if len({name.lower() for name in tabular.tables}) != len(tabular.tables):
        return False
    for table in tabular.tables.values():
        columns = {c.lower() for c in table.columns}
        if len(table.columns) != len(table.types) or len(columns) != len(table.columns):
            return False
        if any(t not in _PY_TYPES for t in table.types):
            return False
        expected = [_PY_TYPES[t] for t in table.types]
        width = len(expected)
        for row in table.rows:
            if len(row) != width:
                return False
            for value, py_type in zip(row, expected, strict=True):
                if value is None:
                    continue
                if type(value) is not py_type:
                    return False
                if py_type is int and not _INT64_MIN <= value <= _INT64_MAX:
                    return False
    return True


class DuckDBStore:
    """LogStore on a DuckDB file. Not thread-safe: one owner (the Raft shell) calls it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size == 0:
            # DuckDB would silently start a new database in an empty file.
            raise StoreCorruptError(f"Raft store {self.path} is empty (truncated file); refusing to start")
        try:
            self._con = duckdb.connect(str(self.path))
            self._con.execute("SET checkpoint_threshold = '1TB'")
            self._con.execute("SET preserve_insertion_order = true")
        except duckdb.Error as exc:
            # Another process holding the file is not damage. Match DuckDB's lock message
            # exactly: a bare "lock" also matches "block" in checksum errors on damaged files.
            if "could not set lock" in str(exc).lower():
                raise
            raise StoreCorruptError(f"cannot open Raft store {self.path}: {exc}") from exc
        self._snapshot_index = 0
        self._snapshot_term = 0
        self._last_index = 0
        self._last_term = 0
        self._hard_state_seq = 1
        self._loaded = False

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> StoredState:
        try:
            state = self._load()
        except StoreCorruptError:
            raise
        except (duckdb.Error, msgspec.DecodeError, ValueError, KeyError) as exc:
            raise StoreCorruptError(f"Raft store {self.path} is damaged: {exc}") from exc
        self._loaded = True
        return state

    def _load(self) -> StoredState:
        tables = {row[0] for row in self._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if not tables:
            self._create_schema()
            return StoredState(hard_state=HardState(), snapshot=None, entries=[])
        if "orion_store" not in tables:
            raise StoreCorruptError(f"{self.path} is not an Orion Raft store (no orion_store table)")
        versions = self._con.execute("SELECT format_version FROM orion_store").fetchall()
        if versions != [(FORMAT_VERSION,)]:
            raise StoreCorruptError(
                f"Raft store {self.path} has format version {versions}, expected {FORMAT_VERSION}"
            )
        hard_state = self._load_hard_state()
        snapshot = self._load_snapshot(tables)
        entries = self._load_entries()
        self._check_consistency(hard_state, snapshot, entries)
        if snapshot is not None:
            self._snapshot_index, self._snapshot_term = snapshot.meta.index, snapshot.meta.term
        self._last_index, self._last_term = self._snapshot_index, self._snapshot_term
        if entries:
            self._last_index, self._last_term = entries[-1].index, entries[-1].term
        return StoredState(hard_state=hard_state, snapshot=snapshot, entries=entries)

    def _create_schema(self) -> None:
        con = self._con
        con.execute("BEGIN TRANSACTION")
        con.execute(_SCHEMA_SQL)
        con.execute("INSERT INTO orion_store VALUES (?)", [FORMAT_VERSION])
        con.execute(
            "INSERT INTO log VALUES (-1, 0, ?, ?)", [HARD_STATE_KIND, msgspec.msgpack.encode(HardState())]
        )
        con.execute("COMMIT")
        # The empty schema goes to the main file, so the WAL only ever holds Raft writes.
        con.execute("CHECKPOINT")

    def _load_hard_state(self) -> HardState:
        rows = self._con.execute(
            "SELECT idx, kind, data FROM log WHERE idx <= 0 ORDER BY idx LIMIT 1"
        ).fetchall()
        if not rows:
            raise StoreCorruptError(f"Raft store {self.path}: no hard state record")
        idx, kind, data = rows[0]
        if idx == 0 or kind != HARD_STATE_KIND:
            raise StoreCorruptError(f"Raft store {self.path}: bad hard state record at {idx} (kind {kind})")
        self._hard_state_seq = -idx
        return msgspec.msgpack.decode(data, type=HardState)

    def _load_snapshot(self, tables: set[str]) -> Snapshot | None:
        rows = self._con.execute(
            "SELECT idx, term, membership, layout, raw_data FROM snapshot_meta"
        ).fetchall()
        if not rows:
            return None
        if len(rows) != 1:
            raise StoreCorruptError(f"Raft store {self.path}: snapshot_meta has {len(rows)} rows")
        index, term, membership_bytes, layout_json, raw_data = rows[0]
        membership = msgspec.msgpack.decode(membership_bytes, type=Membership)
        meta = SnapshotMeta(index=index, term=term, membership=membership)
        if raw_data is not None:
            return Snapshot(meta=meta, data=bytes(raw_data))
        layouts = msgspec.json.decode(layout_json, type=list[_TableLayout])
        rebuilt: dict[str, Table] = {}
        for layout in layouts:
            if "snap_" + layout.name not in tables:
                raise StoreCorruptError(
                    f"Raft store {self.path}: snapshot table snap_{layout.name} is missing"
                )
            columns = ", ".join(_quote(c) for c in layout.columns)
            arrow = self._con.sql(
                f"SELECT {columns} FROM {_snap_table(layout.name)} ORDER BY rowid"
            ).to_arrow_table()
            column_values = [arrow.column(i).to_pylist() for i in range(arrow.num_columns)]
            rows_out = [list(r) for r in zip(*column_values, strict=True)] if column_values else []
            rebuilt[layout.name] = Table(columns=layout.columns, types=layout.types, rows=rows_out)
        data = msgspec.msgpack.encode(TabularSnapshot(tables=rebuilt))
        return Snapshot(meta=meta, data=data)

    def _load_entries(self) -> list[Entry]:
        arrow = self._con.sql(
            "SELECT idx, term, kind, data FROM log WHERE idx > 0 ORDER BY idx"
        ).to_arrow_table()
        indexes = arrow.column(0).to_pylist()
        terms = arrow.column(1).to_pylist()
        kinds = arrow.column(2).to_pylist()
        datas = arrow.column(3).to_pylist()
        return [Entry(i, t, k, d) for i, t, k, d in zip(indexes, terms, kinds, datas, strict=True)]

    def _check_consistency(
        self, hard_state: HardState, snapshot: Snapshot | None, entries: list[Entry]
    ) -> None:
        def corrupt(what: str) -> StoreCorruptError:
            return StoreCorruptError(f"Raft store {self.path} is inconsistent: {what}")

        snap_index = snapshot.meta.index if snapshot else 0
        snap_term = snapshot.meta.term if snapshot else 0
        expected, prev_term = snap_index + 1, snap_term
        for entry in entries:
            if entry.index != expected:
                raise corrupt(f"log entry {entry.index} where {expected} was expected (log not contiguous)")
            if entry.term < prev_term:
                raise corrupt(
                    f"log entry {entry.index} has term {entry.term} below previous term {prev_term}"
                )
            if entry.kind not in _VALID_KINDS:
                raise corrupt(f"log entry {entry.index} has unknown kind {entry.kind}")
            expected, prev_term = expected + 1, entry.term
        last_index = expected - 1
        if hard_state.commit > last_index:
            raise corrupt(f"commit index {hard_state.commit} is beyond the last index {last_index}")
        if entries and hard_state.term < prev_term:
            raise corrupt(f"current term {hard_state.term} is below the last log term {prev_term}")

    # -- writing ---------------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        self._require_loaded()
        if entries:
            self._check_batch(entries)
        rows: list[tuple[int, int, int, bytes]] = [(e.index, e.term, int(e.kind), e.data) for e in entries]
        if hard_state is not None:
            self._hard_state_seq += 1
            hs_row = (
                -self._hard_state_seq,
                hard_state.term,
                HARD_STATE_KIND,
                msgspec.msgpack.encode(hard_state),
            )
            rows.append(hs_row)
        if not rows:
            return
        con = self._con
        if entries and entries[0].index <= self._last_index:
            # A follower replacing a conflicting suffix: delete and insert in one transaction.
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DELETE FROM log WHERE idx >= ?", [entries[0].index])
                self._insert_rows(rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        else:
            self._insert_rows(rows)  # one autocommit statement: atomic, WAL fsync'd on commit
        if entries:
            self._last_index, self._last_term = entries[-1].index, entries[-1].term

    def _check_batch(self, entries: Sequence[Entry]) -> None:
        first = entries[0].index
        if first <= self._snapshot_index:
            raise ValueError(f"entry {first} is at or below the snapshot index {self._snapshot_index}")
        if first > self._last_index + 1:
            raise ValueError(f"entry {first} would leave a gap after the last index {self._last_index}")
        for offset, entry in enumerate(entries):
            if entry.index != first + offset:
                raise ValueError(f"entries are not contiguous at {entry.index}")

    def _insert_rows(self, rows: list[tuple[int, int, int, bytes]]) -> None:
        if len(rows) < _ARROW_MIN_ROWS:
            placeholders = ", ".join(["(?, ?, ?, ?)"] * len(rows))
            self._con.execute(f"INSERT INTO log VALUES {placeholders}", [v for row in rows for v in row])
            return
        columns = list(zip(*rows, strict=True))
        batch = pa.Table.from_arrays(
            [
                pa.array(columns[0], pa.int64()),
                pa.array(columns[1], pa.int64()),
                pa.array(columns[2], pa.int32()),
                pa.array(columns[3], pa.binary()),
            ],
            schema=_LOG_SCHEMA,
        )
        self._con.register("_orion_log_batch", batch)
        try:
            self._con.execute("INSERT INTO log SELECT * FROM _orion_log_batch")
        finally:
            self._con.unregister("_orion_log_batch")

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._require_loaded()
        meta = snapshot.meta
        if meta.index < self._snapshot_index:
            raise ValueError(
                f"snapshot at {meta.index} is older than the stored one at {self._snapshot_index}"
            )
        con = self._con
        tabular = self._as_tabular(snapshot.data)
        con.execute("BEGIN TRANSACTION")
        try:
            keeps_suffix = self._log_matches(meta.index, meta.term)
            if keeps_suffix:
                con.execute("DELETE FROM log WHERE idx > 0 AND idx <= ?", [meta.index])
            else:
                con.execute("DELETE FROM log WHERE idx > 0")
            self._delete_old_hard_states()
            self._drop_snapshot_tables()
            con.execute("DELETE FROM snapshot_meta")
            membership = msgspec.msgpack.encode(meta.membership)
            if tabular is None:
                con.execute(
                    "INSERT INTO snapshot_meta VALUES (?, ?, ?, NULL, ?)",
                    [meta.index, meta.term, membership, snapshot.data],
                )
            else:
                layout = [_TableLayout(name, t.columns, t.types) for name, t in tabular.tables.items()]
                con.execute(
                    "INSERT INTO snapshot_meta VALUES (?, ?, ?, ?, NULL)",
                    [meta.index, meta.term, membership, msgspec.json.encode(layout).decode()],
                )
                for name, table in tabular.tables.items():
                    self._write_table(name, table)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._snapshot_index, self._snapshot_term = meta.index, meta.term
        if not keeps_suffix or self._last_index < meta.index:
            self._last_index, self._last_term = meta.index, meta.term

    def _log_matches(self, index: int, term: int) -> bool:
        if index == self._snapshot_index:
            return term == self._snapshot_term
        row = self._con.execute("SELECT term FROM log WHERE idx = ?", [index]).fetchone()
        return row is not None and row[0] == term

    @staticmethod
    def _as_tabular(data: bytes) -> TabularSnapshot | None:
        """The snapshot as tables, or None when it must be kept as an opaque blob (not a
        TabularSnapshot, or values the column types would not give back identically)."""
        try:
            tabular = decode_tabular_snapshot(data, check_rows=False)  # _fits_tables checks them
        except msgspec.DecodeError:
            return None
        if msgspec.msgpack.encode(tabular) != data or not _fits_tables(tabular):
            return None
        return tabular

    def _drop_snapshot_tables(self) -> None:
        names = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, 'snap_')"
        ).fetchall()
        for (name,) in names:
            self._con.execute(f"DROP TABLE {_quote(name)}")

    def _write_table(self, name: str, table: Table) -> None:
        columns = ", ".join(f"{_quote(c)} {t}" for c, t in zip(table.columns, table.types, strict=True))
        self._con.execute(f"CREATE TABLE {_snap_table(name)} ({columns})")
        if not table.rows:
            return
        arrays = [
            pa.array([row[i] for row in table.rows], _ARROW_TYPES[t]) for i, t in enumerate(table.types)
        ]
        batch = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])
        self._con.register("_orion_snap_batch", batch)
        try:
            self._con.execute(f"INSERT INTO {_snap_table(name)} SELECT * FROM _orion_snap_batch")
        finally:
            self._con.unregister("_orion_snap_batch")

    # -- housekeeping ----------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Drop superseded hard state records and fold the WAL into the main file. Stalls for
        up to a few hundred ms: call it off the hot path (after a snapshot, when idle)."""
        self._delete_old_hard_states()
        self._con.execute("CHECKPOINT")

    def _delete_old_hard_states(self) -> None:
        self._con.execute("DELETE FROM log WHERE idx < 0 AND idx > ?", [-self._hard_state_seq])

    def close(self) -> None:
        self._con.close()

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise RuntimeError("DuckDBStore.load() must be called before writing")

    def __repr__(self) -> str:
        return f"DuckDBStore({str(self.path)!r})"
