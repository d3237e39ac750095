"""The durable LogStore: a Raft node's log, hard state, snapshot and identity in one DuckDB file.

Layout (format version ``FORMAT_VERSION``):

- ``orion_store``: one row: the format version, the member incarnation (NULL until
  ``save_identity``) and their checksum. Its absence in a non-empty file is refused.
- ``log``: (idx, term, kind, data, crc); no primary key: measured side by side, a key was no
  faster at 1,024 rows per insert and up to 40% slower at 64, and its ART index lengthens
  checkpoints (up to 1.5 s, ANCHORS.md). Appends arrive in index order, so zonemaps keep the
  range deletes cheap; uniqueness and contiguity are checked by this module and at load.
  Rows with ``idx > 0`` are Raft entries. Rows with ``idx < 0`` and ``kind = -1`` are hard
  state records (``data`` = msgpack HardState). Every write the Raft thread makes appends one,
  with ``idx = -(write sequence number)``, so the latest is the lowest and the lowest tells
  how many writes the file holds (see ``store_integrity.WriteHint``). Keeping them in the same
  table lets a save be one autocommit INSERT: touching a second table in a transaction halves
  single-entry throughput here. ``compact_log`` and ``save_snapshot`` delete the old records.
  ``crc`` is ``store_integrity.entry_checksum`` of the row, verified at load.
- ``snapshot_meta``: zero or one row: index, term, membership (msgpack), the table layout as
  JSON, ``raw_data`` when the snapshot is not a ``TabularSnapshot`` that tables can hold, and
  the snapshot's checksum (over all of that and the exact ``Snapshot.data`` bytes).
- ``snap_<name>``: one DuckDB table per FSM table of the snapshot, with its own column types,
  so an operator can ``select * from snap_tasks`` on a stopped node. ``stage_<name>`` tables
  are a snapshot being written; one left by a crash is dropped by the next snapshot write.

Beside the database, ``<file>.snapshot-<index>-<term>`` holds the stored snapshot's exact bytes
while the store is open: ``stored_snapshot`` maps it read-only for the shell to stream to a
lagging follower, so no one keeps those bytes in memory (~35 MB at 100k tasks: the Raft core
kept them for that until issue 16 item 5). It is a cache, written after each snapshot is
stored (not fsync'd), written again at ``load`` from the tables, and removed at ``close``; a
new one gets a new name, so a follower's stream of the previous one reads on from its mapping.

Every write method is atomic. DuckDB fdatasyncs its WAL on every COMMIT (checked with
strace: one fdatasync per save), so a returned write is durable. Automatic WAL checkpoints
(stalls of 100-300 ms) are switched off; ``write_snapshot`` checkpoints after it has written,
off the Raft thread, and ``checkpoint()`` may be called from any thread. A checkpoint still
holds every commit that starts while it runs until it ends: a save waited out all 256 ms of
the one after a 100k-task snapshot (issue 16, session 12). Each attached DuckDB file has a
checkpoint lock of its own, so the snapshot's tables in a file of their own would free the
log's commits from it.

Threads: the Raft thread calls ``save``, ``compact_log``, ``save_snapshot`` and the identity
methods on one DuckDB connection; ``write_snapshot`` and ``checkpoint`` may run on another
thread at the same time, on a second connection to the same database. They write a
snapshot's tables in commits of about ``SNAPSHOT_CHUNK_BYTES`` (each commit's WAL write and
fsync makes the Raft thread's commits wait) and swap them in with one small transaction;
the two snapshot writers are serialized, and an install from the leader stops a local
snapshot write at its next chunk (the installed snapshot is newer). Rows go from the snapshot
bytes to columns in C calls over about ``_CONVERT_BYTES`` of rows each (msgspec decodes a slice
of rows with the column types, re-encodes it to prove the bytes come back exactly, and
``duckdb_rows.ColumnBatch`` encodes the columns as JSON text, about ``_STATEMENT_BYTES`` per
INSERT), so the writer never holds the interpreter lock for long and does little Python work
per row, and it paces itself (``orion.raft.pacing``: it sleeps as long as it worked), so a Raft
thread waiting for the lock gets it within a few milliseconds.

Damage. Refusing to start is the answer to any of it: the node's data dir is wiped and the
node rejoins as a new member (``StoreCorruptError`` says so).
- DuckDB checksums every block of the main file, so bytes overwritten there or a truncated
  file are refused at open or at load.
- This module checksums every log row, the snapshot and the identity row (verified at load),
  which catches what DuckDB cannot see: a value changed through DuckDB, by a bug or by hand.
- The WAL, measured with duckdb 2.0.1: each WAL entry is framed as (length, checksum, bytes)
  after an unframed header. Bytes changed inside an entry, its checksum field, or a length
  shortened: DuckDB refuses to open ("Corrupt WAL file: entry at byte position N computed
  checksum ..."). A length field pointing past the end of the file, a damaged WAL header, a
  zeroed tail starting at a frame, or the WAL file deleted: DuckDB replays what comes before
  and silently drops the rest (it cannot tell them from a torn last write), and truncates the
  WAL there at the next write. A torn last write was never acknowledged, so that is right for
  it; for the others the write hint (``store_integrity.WriteHint``) tells: the file holds
  fewer writes than were acknowledged, and ``load`` refuses before anything is written. What
  this cannot catch: such damage among writes made within the ~30 s before a power cut (the
  hint is not fsync'd, so it may be that old), or the hint file lost along with the WAL.
  Until ``load`` succeeds, closing does not checkpoint, so a refused store is left as found.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import mmap
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import msgspec

try:
    # The engine alone: the duckdb package around it (DuckDB 1.4+) imports 88 Python modules
    # for APIs this store does not use, ~4 MB of every node's memory (issue 16 item 5). Its
    # classes and exceptions are the package's own objects.
    import _duckdb as duckdb
except ImportError:  # an older DuckDB, whose engine the package loads as duckdb.duckdb
    import duckdb  # type: ignore[no-redef]

from orion.raft.duckdb_rows import ColumnBatch, InexactValue, insert_sql
from orion.raft.pacing import Pacer
from orion.raft.store_integrity import WriteHint, entry_checksum, identity_checksum, snapshot_checksum
from orion.raft.tabular import TableSpans, array_header, decode_tabular_spans
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

FORMAT_VERSION = 2
# Format 1 (no checksums, no identity) is migrated at load: checksums are computed once from
# the rows as read, after the same consistency checks as always.
_MIGRATES_FROM = 1
WHAT_TO_DO = "wipe the data dir and start the node again: it rejoins the cluster as a new member"
# Bytes of snapshot rows per commit while a snapshot is written: bounds how long one commit
# holds DuckDB's WAL (and so delays a concurrent save) to a few tens of ms.
SNAPSHOT_CHUNK_BYTES = 4 << 20
# Bytes of snapshot rows converted per step: bounds how long one C call holds the interpreter
# lock beside the Raft thread (converting 128 KiB of task rows takes 1-2 ms).
_CONVERT_BYTES = 128 << 10
# Bytes of snapshot rows per INSERT statement within a chunk's commit: DuckDB parses each
# statement's JSON text whole, so this bounds the memory one statement takes (a statement per
# ~1,000 task rows cost ~7 ms of overhead each).
_STATEMENT_BYTES = 2 << 20
CHECKPOINT_PATIENCE = 5.0  # seconds a checkpoint retries while the Raft thread's writes are open

# How a batch of log rows goes in, by its size (one INSERT each way; CPU per commit measured
# side by side with tools/bench/duckdb_append_floor.py, load 3-5): below 8 rows one multi-row
# INSERT ... VALUES (0.9 ms for one row, +0.1 ms a row: its text is parsed each time); up to
# 191 rows one Python list per column, unnested (1.6 ms at 16 rows, 2.3 ms at 64: DuckDB
# converts each value, ~7 us a BLOB); from 192 rows one JSON text (orion.raft.duckdb_rows:
# 3.6 ms at 256, 7.2 ms at 1,024). Arrow, the path until issue 16 item 5 dropped pyarrow, took
# 2.2, 2.5, 2.6 and 4.1 ms.
_LIST_MIN_ROWS = 8
_JSON_MIN_ROWS = 192
# save (the Raft thread's appends) differs (issue 16, session 6; CPU per commit side by side,
# duckdb 2.0.1, load ~8, 600-byte entries + the hard state row): below 8 rows the VALUES
# INSERT, its text parsed once and DuckDB's optimizer off (1 row: 0.98-1.44 ms against
# 1.38-1.91); from 8 rows DuckDB's appender, no SQL at all (8 rows 1.78 ms against lists'
# 2.41, 32 rows 1.97 against 2.89, 256 rows 2.99 against JSON's 5.72, 1,024 rows 3.81
# against 8.74). The switch at 4 rows (3 entries and the hard state) was measured with DuckDB
# on one thread (session 7: 4-12% less CPU than the VALUES INSERT at 4-6 rows, equal at 3 and
# 8, side by side at load 19). With the worker pool back (``DuckDBStore.__init__``), measured
# again in session 8 (``python -m tools.bench.appender_threshold``: process CPU per save, the
# two interleaved, 4 and 8 runs, load 0.1-0.9): appender / VALUES at 3 rows 1.28, at 4 1.16 and
# 0.96, at 5-8 0.91-1.00, all 1.1-1.6 ms: so the switch stays at 4.
_APPENDER_MIN_ROWS = 4
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The Python type DuckDB gives back for each column type, as msgspec decodes it (strictly: a
# bool is no int, bytes are no str, and an int beyond BIGINT is refused). A value of any other
# type would not survive the round trip byte for byte; the one msgspec converts (an int in a
# DOUBLE column becomes a float) is caught by re-encoding.
_ROW_VALUE_TYPES: dict[str, Any] = {
    "BIGINT": Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)],
    "DOUBLE": float,
    "VARCHAR": str,
    "BLOB": bytes,
    "BOOLEAN": bool,
}
_VALID_KINDS = frozenset(int(k) for k in EntryKind)
HARD_STATE_KIND = -1  # kind of the hard state records in the log table
_LOG_TYPES = ("BIGINT", "BIGINT", "INTEGER", "BLOB", "BIGINT")  # as in _LOG_TABLE_SQL
_INCARNATION = re.compile(r"[0-9a-f]{1,64}")

_LOG_TABLE_SQL = (
    "CREATE TABLE {name} (idx BIGINT NOT NULL, term BIGINT NOT NULL, kind INTEGER NOT NULL, "
    "data BLOB NOT NULL, crc BIGINT NOT NULL)"
)
_STORE_TABLE_SQL = (
    "CREATE TABLE {name} (format_version INTEGER NOT NULL, incarnation VARCHAR, crc BIGINT NOT NULL)"
)
_META_TABLE_SQL = (
    "CREATE TABLE {name} (idx BIGINT NOT NULL, term BIGINT NOT NULL, membership BLOB NOT NULL, "
    "layout VARCHAR, raw_data BLOB, crc BIGINT NOT NULL)"
)

LogRow = tuple[int, int, int, bytes, int]
RowValue = int | float | str | bytes | bool | None


class _TableLayout(msgspec.Struct, array_like=True):
    name: str
    columns: list[str]
    types: list[str]


@dataclass(frozen=True)
class _StagedSnapshot:
    """A snapshot whose rows are in ``stage_`` tables (or that is kept as an opaque blob),
    ready to be swapped in, with its checksum."""

    meta: SnapshotMeta
    membership: bytes
    table_names: list[str]  # staged, when tabular
    layout: str | None  # JSON, when tabular
    raw_data: bytes | None  # when not tabular
    crc: int


class _Superseded(Exception):
    """A snapshot install is waiting: the local snapshot being written is older, give up."""


class _NotExact(Exception):
    """Rows the tables would not give back byte for byte: keep the snapshot as a blob."""


class _RowConverter:
    """Snapshot rows of one table layout, still encoded, into a ``ColumnBatch``."""

    _encoder = msgspec.msgpack.Encoder()

    def __init__(self, types: list[str]) -> None:
        row_type = tuple[tuple(_ROW_VALUE_TYPES[t] | None for t in types)]  # type: ignore[misc]
        self._decoder = msgspec.msgpack.Decoder(list[row_type])  # type: ignore[valid-type]

    def add(self, count: int, encoded_rows: memoryview, batch: ColumnBatch) -> None:
        """Add ``count`` rows, encoded one after another in ``encoded_rows``, to ``batch``;
        ``_NotExact`` when a value has another type than its column, would not come back bit
        for bit, or the rows are encoded any other way than msgspec encodes them."""
        encoded = array_header(count) + encoded_rows
        try:
            rows = self._decoder.decode(encoded)
        except msgspec.DecodeError as exc:
            raise _NotExact(str(exc)) from exc
        if self._encoder.encode(rows) != encoded:
            raise _NotExact("the rows re-encode differently")
        try:
            batch.add(list(zip(*rows, strict=True)))
        except InexactValue as exc:
            raise _NotExact(str(exc)) from exc


def _rows_end(ends: Sequence[int], start: int, limit: int) -> int:
    """Where a slice of rows from ``start`` ends: at the first row that brings its bytes to
    ``limit`` (so a slice holds less than ``limit`` plus one row), or at the last row.
    ``ends[i]`` is the byte offset after row ``i``."""
    before = ends[start - 1] if start else 0
    return min(bisect.bisect_left(ends, before + limit, lo=start) + 1, len(ends))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _tables_of(data: bytes) -> dict[str, TableSpans] | None:
    """The snapshot's tables with their rows still encoded (as offsets into ``data``), or None
    when it is no ``TabularSnapshot`` that DuckDB tables can hold (its rows are checked as they
    are staged)."""
    tables = decode_tabular_spans(data)
    if tables is None:
        return None
    # DuckDB matches identifiers case-insensitively, even quoted ones.
    if len({name.lower() for name in tables}) != len(tables):
        return None
    for table in tables.values():
        if not table.columns or len(table.columns) != len(table.types):
            return None
        if len({c.lower() for c in table.columns}) != len(table.columns):
            return None
        if any(t not in _ROW_VALUE_TYPES for t in table.types):
            return None
    return tables


@functools.cache
def _values_sql(table: str, rows: int) -> str:
    return f"INSERT INTO {table} VALUES " + ", ".join(["(?, ?, ?, ?, ?)"] * rows)


@functools.cache
def _lists_sql(table: str) -> str:
    columns = ", ".join(f"unnest(${i}::{t}[])" for i, t in enumerate(_LOG_TYPES, 1))
    return f"INSERT INTO {table} SELECT {columns}"


def _entry_row(entry: Entry) -> LogRow:
    kind = int(entry.kind)
    return (
        entry.index,
        entry.term,
        kind,
        entry.data,
        entry_checksum(entry.index, entry.term, kind, entry.data),
    )


def _hard_state_row(hard_state: HardState, seq: int) -> LogRow:
    data = msgspec.msgpack.encode(hard_state)
    return (-seq, hard_state.term, HARD_STATE_KIND, data, entry_checksum(-seq, hard_state.term, -1, data))


class DuckDBStore:
    """LogStore on a DuckDB file. One Raft thread calls it; ``write_snapshot`` and
    ``checkpoint`` may also be called from one other thread (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size == 0:
            # DuckDB would silently start a new database in an empty file.
            raise self._damaged("the file is empty (truncated)")
        existed = self.path.exists()
        try:
            self._con = duckdb.connect(str(self.path))
            # Until load() has checked the store, closing must leave the files as they are:
            # a checkpoint would fold a partly replayed WAL into the main file.
            self._con.execute("PRAGMA disable_checkpoint_on_shutdown")
            self._con.execute("SET checkpoint_threshold = '1TB'")
            self._con.execute("SET preserve_insertion_order = true")
            # DuckDB's allocator (jemalloc) gives freed pages back to the system only as it
            # allocates again, unless its background threads purge them: after a snapshot
            # write an idle node kept 30-70 MB it no longer used (issue 16 item 5).
            self._con.execute("SET allocator_background_threads = true")
            # Statements run on the calling thread: with DuckDB's worker pool each append's
            # executor woke a worker and waited for it (in process: 0.79 -> 0.64 ms of CPU per
            # one-entry save, 1.39 -> 1.04 at 16 entries). Session 7 measured ~40 MiB more held
            # at 100k tasks with one thread and left the pool; with the checkpoints between
            # snapshots and the store's buffer release since, it is 137.6-140.3 MiB against
            # 135.3-137.2 (benchmarks/results/footprint_s12_*.json, issue 16 session 12).
            self._con.execute("SET threads = 1")
            self._no_async_io_threads()
            self._bg = self._con.cursor()  # write_snapshot and checkpoint, on their own thread
            # save's appends on a connection of their own, with DuckDB's optimizer off: rows of
            # literals have nothing to optimize, and its passes cost ~0.2 ms of a ~1 ms save
            # (measured, issue 16 session 6). The loads' queries keep it on the main connection.
            self._log = self._con.cursor()
            self._log.execute("PRAGMA disable_optimizer")
            self._reads = self._con.cursor()  # read_entries, on the Raft thread
        except duckdb.Error as exc:
            # Another process holding the file is not damage. Match DuckDB's lock message
            # exactly: a bare "lock" also matches "block" in checksum errors on damaged files.
            if "could not set lock" in str(exc).lower():
                raise
            raise self._damaged(f"DuckDB cannot open it: {exc}") from exc
        if not existed:
            os.chmod(self.path, 0o600)  # holds task secrets; the WAL follows the umask
        self._hint = WriteHint(self.path.with_name(self.path.name + ".seq"))
        self._snapshot_lock = threading.Lock()  # one snapshot writer at a time, and checkpoints
        self._install_waiting = threading.Event()
        self._snapshot_index = 0
        self._snapshot_term = 0
        # The stored snapshot's meta and the file with its bytes (see stored_snapshot). Set
        # after the file is complete; a reader on another thread takes it in one read.
        self._spill: tuple[SnapshotMeta, Path] | None = None
        self._last_index = 0
        self._last_term = 0
        self._write_seq = 0
        self._hard_state = HardState()
        self._incarnation: str | None = None
        self._loaded = False
        self._closed = False
        # save's statements parsed once (by rows per batch) and its appender, on self._log.
        self._values_statements: dict[int, Any] = {}
        self._appender: Any = None

    def _no_async_io_threads(self) -> None:
        """DuckDB 2.0 starts 8 threads for asynchronous reads of Parquet and CSV files; its own
        database file is read synchronously, so the store never uses them (issue 16 item 5: 8 of
        an idle node's 50 threads). DuckDB before 2.0 has neither the threads nor the setting."""
        try:
            self._con.execute("SET async_threads = 0")
        except duckdb.CatalogException:
            pass

    # -- errors ----------------------------------------------------------------------------

    def _damaged(self, what: str) -> StoreCorruptError:
        return StoreCorruptError(
            f"Raft store {self.path} is damaged: {what}; {WHAT_TO_DO} (data dir {self.path.parent})"
        )

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> StoredState:
        try:
            state = self._load()
        except StoreCorruptError:
            raise
        except (duckdb.Error, msgspec.DecodeError, ValueError, KeyError) as exc:
            raise self._damaged(str(exc)) from exc
        self._con.execute("PRAGMA enable_checkpoint_on_shutdown")
        self._hint.record(self._write_seq)
        for stale in self.path.parent.glob(self.path.name + ".snapshot-*"):
            stale.unlink(missing_ok=True)  # a cache left by a crash: written again below
        if state.snapshot is not None:
            self._spill_snapshot(state.snapshot)
        self._loaded = True
        return state

    def _load(self) -> StoredState:
        tables = {row[0] for row in self._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if not tables:
            self._create_schema()
            return StoredState(hard_state=HardState(), snapshot=None, entries=[])
        if "orion_store" not in tables:
            raise StoreCorruptError(
                f"{self.path} is not an Orion Raft store (no orion_store table); refusing to use it"
            )
        version = self._read_format_version()
        checked = version == FORMAT_VERSION
        hard_states, entries = self._load_log(checked)
        hard_state = hard_states[0][1]
        snapshot, snapshot_crc = self._load_snapshot(tables, checked)
        self._check_consistency(hard_state, snapshot, entries)
        self._write_seq = hard_states[0][0]
        self._check_write_hint()
        if not checked:
            self._migrate(hard_states, entries, snapshot, snapshot_crc)
        self._hard_state = hard_state
        if snapshot is not None:
            self._snapshot_index, self._snapshot_term = snapshot.meta.index, snapshot.meta.term
        self._last_index, self._last_term = self._snapshot_index, self._snapshot_term
        if entries and entries[-1].index > self._snapshot_index:
            self._last_index, self._last_term = entries[-1].index, entries[-1].term
        return StoredState(hard_state=hard_state, snapshot=snapshot, entries=entries)

    def _create_schema(self) -> None:
        # A new database: any hint left beside it belongs to a store that is gone.
        self._write_seq = 1
        con = self._con
        con.execute("BEGIN TRANSACTION")
        con.execute(_STORE_TABLE_SQL.format(name="orion_store"))
        con.execute(_LOG_TABLE_SQL.format(name="log"))
        con.execute(_META_TABLE_SQL.format(name="snapshot_meta"))
        con.execute(
            "INSERT INTO orion_store VALUES (?, NULL, ?)",
            [FORMAT_VERSION, identity_checksum(FORMAT_VERSION, None)],
        )
        con.execute("INSERT INTO log VALUES (?, ?, ?, ?, ?)", list(_hard_state_row(HardState(), 1)))
        con.execute("COMMIT")
        # The empty schema goes to the main file, so the WAL only ever holds Raft writes.
        con.execute("CHECKPOINT")

    def _read_format_version(self) -> int:
        columns = {
            row[0]
            for row in self._con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'orion_store'"
            ).fetchall()
        }
        if "crc" not in columns:
            rows = self._con.execute("SELECT format_version FROM orion_store").fetchall()
            if rows != [(_MIGRATES_FROM,)]:
                raise StoreCorruptError(
                    f"Raft store {self.path} has format version {rows}, expected {FORMAT_VERSION}"
                )
            return _MIGRATES_FROM
        rows = self._con.execute("SELECT format_version, incarnation, crc FROM orion_store").fetchall()
        if len(rows) != 1:
            raise self._damaged(f"orion_store has {len(rows)} rows instead of one")
        version, incarnation, crc = rows[0]
        if version != FORMAT_VERSION:
            raise StoreCorruptError(
                f"Raft store {self.path} has format version {version}, expected {FORMAT_VERSION}"
            )
        if crc != identity_checksum(version, incarnation):
            raise self._damaged("the store's header row (format version, incarnation) fails its checksum")
        self._incarnation = incarnation
        return version

    def _load_log(self, checked: bool) -> tuple[list[tuple[int, HardState]], list[Entry]]:
        """Every row of ``log``, verified: the hard state records as (write sequence number,
        HardState), latest first, and the entries in index order."""
        crc_column = "crc" if checked else "NULL"
        rows = self._con.execute(
            f"SELECT idx, term, kind, data, {crc_column} FROM log ORDER BY idx"
        ).fetchall()
        hard_states: list[tuple[int, HardState]] = []
        entries: list[Entry] = []
        for idx, term, kind, data, crc in rows:
            if checked and crc != entry_checksum(idx, term, kind, data):
                what = f"log entry {idx}" if idx > 0 else f"hard state record {-idx}"
                raise self._damaged(f"{what} fails its checksum")
            if idx > 0:
                entries.append(Entry(idx, term, kind, data))
            elif idx < 0 and kind == HARD_STATE_KIND:
                hard_states.append((-idx, msgspec.msgpack.decode(data, type=HardState)))
            else:
                raise self._damaged(f"bad hard state record at {idx} (kind {kind})")
        if not hard_states:
            raise self._damaged("no hard state record")
        return hard_states, entries

    def _load_snapshot(self, tables: set[str], checked: bool) -> tuple[Snapshot | None, int]:
        """The stored snapshot and its checksum (verified when ``checked``)."""
        crc_column = "crc" if checked else "NULL"
        rows = self._con.execute(
            f"SELECT idx, term, membership, layout, raw_data, {crc_column} FROM snapshot_meta"
        ).fetchall()
        if not rows:
            return None, 0
        if len(rows) != 1:
            raise self._damaged(f"snapshot_meta has {len(rows)} rows")
        index, term, membership_bytes, layout_json, raw_data, stored_crc = rows[0]
        membership_bytes = bytes(membership_bytes)
        membership = msgspec.msgpack.decode(membership_bytes, type=Membership)
        meta = SnapshotMeta(index=index, term=term, membership=membership)
        data = bytes(raw_data) if raw_data is not None else self._rebuild_tabular(tables, layout_json)
        layout_bytes = layout_json.encode() if layout_json is not None else b""
        crc = snapshot_checksum(index, term, membership_bytes, layout_bytes, data)
        if checked and crc != stored_crc:
            raise self._damaged(
                f"the snapshot at index {index} fails its checksum "
                "(snapshot_meta or a row of a snap_ table changed)"
            )
        return Snapshot(meta=meta, data=data), crc

    def _rebuild_tabular(self, tables: set[str], layout_json: str) -> bytes:
        layouts = msgspec.json.decode(layout_json, type=list[_TableLayout])
        rebuilt: dict[str, Table] = {}
        for layout in layouts:
            if "snap_" + layout.name not in tables:
                raise self._damaged(f"snapshot table snap_{layout.name} is missing")
            columns = ", ".join(_quote(c) for c in layout.columns)
            rows = self._con.execute(
                f"SELECT {columns} FROM {_quote('snap_' + layout.name)} ORDER BY rowid"
            ).fetchall()
            rebuilt[layout.name] = Table(
                columns=layout.columns, types=layout.types, rows=list(map(list, rows))
            )
        return msgspec.msgpack.encode(TabularSnapshot(tables=rebuilt))

    def _check_consistency(
        self, hard_state: HardState, snapshot: Snapshot | None, entries: list[Entry]
    ) -> None:
        def corrupt(what: str) -> StoreCorruptError:
            return self._damaged(f"inconsistent: {what}")

        snap_index = snapshot.meta.index if snapshot else 0
        snap_term = snapshot.meta.term if snapshot else 0
        if entries:
            first, last = entries[0].index, entries[-1].index
            if first > snap_index + 1:
                raise corrupt(f"the log starts at {first}, after the snapshot at {snap_index} + 1 (a gap)")
            if last < snap_index:
                raise corrupt(f"the log ends at {last}, before the snapshot at {snap_index}")
        expected = entries[0].index if entries else snap_index + 1
        prev_term = 0
        for entry in entries:
            if entry.index != expected:
                raise corrupt(f"log entry {entry.index} where {expected} was expected (log not contiguous)")
            if entry.term < prev_term:
                raise corrupt(
                    f"log entry {entry.index} has term {entry.term} below previous term {prev_term}"
                )
            if entry.kind not in _VALID_KINDS:
                raise corrupt(f"log entry {entry.index} has unknown kind {entry.kind}")
            if entry.index == snap_index and entry.term != snap_term:
                raise corrupt(
                    f"log entry {entry.index} has term {entry.term} but the snapshot there has {snap_term}"
                )
            if entry.index == snap_index + 1 and entry.term < snap_term:
                raise corrupt(
                    f"log entry {entry.index} has term {entry.term} below the snapshot's {snap_term}"
                )
            expected, prev_term = expected + 1, entry.term
        last_index = max(expected - 1, snap_index)
        if hard_state.commit > last_index:
            raise corrupt(f"commit index {hard_state.commit} is beyond the last index {last_index}")
        # Not the snapshot's term: an installed snapshot is stored before the hard state of
        # the term that sent it, and a crash may come between the two writes.
        if entries and hard_state.term < prev_term:
            raise corrupt(f"current term {hard_state.term} is below the last log term {prev_term}")

    def _check_write_hint(self) -> None:
        acknowledged = self._hint.read()
        if acknowledged is not None and acknowledged > self._write_seq:
            raise self._damaged(
                f"it holds {self._write_seq} writes but {acknowledged} were acknowledged "
                f"(recorded in {self._hint.path}): the WAL {self.path}.wal was damaged or removed "
                "and DuckDB dropped the writes after the damage"
            )

    def _migrate(
        self,
        hard_states: list[tuple[int, HardState]],
        entries: list[Entry],
        snapshot: Snapshot | None,
        snapshot_crc: int,
    ) -> None:
        """Rewrite a format 1 store as format 2: the same rows, with checksums."""
        rows: list[LogRow] = [_hard_state_row(hs, seq) for seq, hs in hard_states]
        rows += [_entry_row(e) for e in entries]
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(_LOG_TABLE_SQL.format(name="log_v2"))
            self._insert_rows(con, rows, table="log_v2")
            con.execute("DROP TABLE log")
            con.execute("ALTER TABLE log_v2 RENAME TO log")
            con.execute(_META_TABLE_SQL.format(name="snapshot_meta_v2"))
            if snapshot is not None:
                con.execute(
                    "INSERT INTO snapshot_meta_v2 SELECT idx, term, membership, layout, raw_data, ? "
                    "FROM snapshot_meta",
                    [snapshot_crc],
                )
            con.execute("DROP TABLE snapshot_meta")
            con.execute("ALTER TABLE snapshot_meta_v2 RENAME TO snapshot_meta")
            con.execute("DROP TABLE orion_store")
            con.execute(_STORE_TABLE_SQL.format(name="orion_store"))
            con.execute(
                "INSERT INTO orion_store VALUES (?, NULL, ?)",
                [FORMAT_VERSION, identity_checksum(FORMAT_VERSION, None)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")

    def read_entries(self, lo: int, hi: int) -> list[Entry]:
        """Stored entries lo..hi, each checked against its checksum, on a connection of their
        own (the Raft thread reads while a writer thread appends on ``_log``)."""
        self._require_loaded()
        rows = self._reads.execute(
            "SELECT idx, term, kind, data, crc FROM log WHERE idx BETWEEN ? AND ? ORDER BY idx",
            [max(lo, 1), hi],
        ).fetchall()
        entries: list[Entry] = []
        for idx, term, kind, data, crc in rows:
            if crc != entry_checksum(idx, term, kind, data):
                raise self._damaged(f"log entry {idx} fails its checksum")
            entries.append(Entry(idx, term, kind, data))
        if len(entries) != hi - lo + 1 or (entries and entries[0].index != lo):
            raise ValueError(f"entries {lo}..{hi} are not all stored ({len(entries)} found)")
        return entries

    # -- identity --------------------------------------------------------------------------

    def load_identity(self) -> str | None:
        """The member incarnation saved in this store, or None if none was saved yet."""
        self._require_loaded()
        return self._incarnation

    def save_identity(self, incarnation: str) -> None:
        """Durably record this data dir's member incarnation (a uuid4 hex string)."""
        self._require_loaded()
        if not isinstance(incarnation, str) or not _INCARNATION.fullmatch(incarnation):
            raise ValueError(
                f"incarnation must be a lowercase hex string such as uuid4().hex, not {incarnation!r}"
            )
        seq = self._write_seq + 1
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "UPDATE orion_store SET incarnation = ?, crc = ?",
                [incarnation, identity_checksum(FORMAT_VERSION, incarnation)],
            )
            self._insert_rows(con, [_hard_state_row(self._hard_state, seq)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._wrote(seq)
        self._incarnation = incarnation

    # -- writing the log -------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        self._require_loaded()
        if hard_state is None and not entries:
            return
        if entries:
            self._check_batch(entries)
        rows: list[LogRow] = [_entry_row(e) for e in entries]
        # Every write carries a hard state record, so the file tells how many writes it holds.
        latest = self._hard_state if hard_state is None else hard_state
        seq = self._write_seq + 1
        rows.append(_hard_state_row(latest, seq))
        con = self._con
        if entries and entries[0].index <= self._last_index:
            # A follower replacing a conflicting suffix: delete and insert in one transaction.
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DELETE FROM log WHERE idx >= ?", [entries[0].index])
                self._insert_rows(con, rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        else:
            self._append(rows)
        self._wrote(seq)
        self._hard_state = latest
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

    def _append(self, rows: list[LogRow]) -> None:
        """The rows in one autocommit write on the log connection (atomic; DuckDB fdatasyncs
        its WAL on the commit): a few rows by a multi-row INSERT whose text was parsed once,
        more by DuckDB's appender, whose flush is one commit with no SQL statement at all."""
        if len(rows) < _APPENDER_MIN_ROWS:
            statement = self._values_statements.get(len(rows))
            if statement is None:
                statement = self._log.extract_statements(_values_sql("log", len(rows)))[0]
                self._values_statements[len(rows)] = statement
            self._log.execute(statement, [v for row in rows for v in row])
            return
        if self._appender is None:
            self._appender = self._log.appender("log")
        try:
            self._appender.append_rows(rows)
            self._appender.flush()
        except BaseException:
            # A failed flush wrote nothing; rows left buffered would go in at the next flush.
            self._appender.clear()
            raise

    @staticmethod
    def _insert_rows(con: duckdb.DuckDBPyConnection, rows: list[LogRow], table: str = "log") -> None:
        """One INSERT statement (so one commit, one WAL fsync, in autocommit)."""
        if len(rows) < _LIST_MIN_ROWS:
            con.execute(_values_sql(table, len(rows)), [v for row in rows for v in row])
            return
        if len(rows) < _JSON_MIN_ROWS:
            con.execute(_lists_sql(table), [list(column) for column in zip(*rows, strict=True)])
            return
        batch = ColumnBatch(_LOG_TYPES)
        batch.add(list(zip(*rows, strict=True)))
        con.execute(insert_sql(table, _LOG_TYPES), batch.arguments())

    def compact_log(self, upto_index: int) -> None:
        """Drop stored entries with index <= upto_index, which the stored snapshot covers."""
        self._require_loaded()
        if upto_index > self._snapshot_index:
            raise ValueError(
                f"cannot drop log entries up to {upto_index}: the stored snapshot covers only "
                f"up to {self._snapshot_index}"
            )
        seq = self._write_seq + 1
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            # The old hard state records go too: only the latest one is ever read.
            con.execute("DELETE FROM log WHERE idx < 0 OR idx <= ?", [upto_index])
            self._insert_rows(con, [_hard_state_row(self._hard_state, seq)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._wrote(seq)
        self._release_buffers()

    def release_buffers(self) -> None:
        """After a checkpoint of the log, on the Raft thread between its writes, with no
        snapshot write or checkpoint under way: see ``_release_buffers``."""
        self._require_loaded()
        self._release_buffers()

    def _release_buffers(self) -> None:
        """Make DuckDB drop the table blocks it keeps cached. After a snapshot write its buffer
        pool holds the snapshot's tables (6.8 MB at 100k tasks, offline), which nothing reads
        until the next start (the shell streams the spill file), and the log's blocks; DuckDB
        evicts them only under memory pressure, i.e. never under its default limit (80% of
        RAM). Lowering the limit evicts every unpinned block, then the limit goes back: RssAnon
        -6.6 MB at 100k tasks, in ~6 ms (issue 16 item 5). Only on the Raft thread, between
        writes (the shell settles its writer before a compaction or an install), and never
        while a snapshot write or checkpoint runs on the other connection: a write that needed
        a new block under the lowered limit could fail. A block read again later is read back
        from the file (the log's last block, at the next append)."""
        if not self._snapshot_lock.acquire(blocking=False):
            return  # a snapshot write or checkpoint is under way: next time
        try:
            with contextlib.suppress(duckdb.Error):  # could not evict enough: DuckDB keeps its limit
                self._con.execute("SET memory_limit = '1MB'")
            self._con.execute("RESET memory_limit")
        finally:
            self._snapshot_lock.release()

    def _wrote(self, seq: int) -> None:
        self._write_seq = seq
        self._hint.record(seq)

    # -- writing snapshots -----------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot from the leader: store it and drop every log entry it covers
        or that does not match it, in one transaction."""
        self._require_loaded()
        meta = snapshot.meta
        self._install_waiting.set()  # a local snapshot being written stops at its next chunk
        with self._snapshot_lock:
            self._install_waiting.clear()
            if meta.index < self._snapshot_index:
                raise ValueError(
                    f"snapshot at {meta.index} is older than the stored one at {self._snapshot_index}"
                )
            con = self._con
            staged = self._stage(con, snapshot, should_stop=None)
            seq = self._write_seq + 1
            con.execute("BEGIN TRANSACTION")
            try:
                keeps_suffix = self._log_matches(meta.index, meta.term)
                if keeps_suffix:
                    con.execute("DELETE FROM log WHERE idx < 0 OR idx <= ?", [meta.index])
                else:
                    con.execute("DELETE FROM log")
                self._insert_rows(con, [_hard_state_row(self._hard_state, seq)])
                self._swap_in(con, staged)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._wrote(seq)
            self._snapshot_index, self._snapshot_term = meta.index, meta.term
            self._spill_snapshot(snapshot)
        if not keeps_suffix or self._last_index < meta.index:
            self._last_index, self._last_term = meta.index, meta.term
        self._release_buffers()

    def write_snapshot(self, snapshot: Snapshot) -> None:
        """Durably store a snapshot taken locally, without touching the log. Safe to call
        from a background thread while the Raft thread calls ``save``. Does nothing when the
        store already holds a snapshot at this index or later, or when a snapshot from the
        leader is installed meanwhile (it is newer). Checkpoints afterwards."""
        self._require_loaded()
        meta = snapshot.meta
        with self._snapshot_lock:
            if meta.index <= self._snapshot_index:
                return
            if meta.index > self._last_index:
                raise ValueError(
                    f"snapshot at {meta.index} is beyond the last stored log entry {self._last_index}"
                )
            cur = self._bg
            try:
                staged = self._stage(cur, snapshot, should_stop=self._install_waiting.is_set)
            except _Superseded:
                return
            cur.execute("BEGIN TRANSACTION")
            try:
                self._swap_in(cur, staged)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            self._snapshot_index, self._snapshot_term = meta.index, meta.term
            self._spill_snapshot(snapshot)
            # Fold the WAL (the log since the last checkpoint and this snapshot) into the
            # main file here, off the Raft thread, so a restart replays little.
            self._checkpoint_between_writes()

    def _spill_snapshot(self, snapshot: Snapshot) -> None:
        """Write ``snapshot``'s bytes to a file of their own and make it the one
        ``stored_snapshot`` maps; the previous file is removed (a mapping of it stays valid)."""
        meta = snapshot.meta
        path = self.path.with_name(f"{self.path.name}.snapshot-{meta.index}-{meta.term}")
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as out:
            out.write(snapshot.data)
        os.replace(partial, path)
        previous, self._spill = self._spill, (meta, path)
        if previous is not None and previous[1] != path:
            previous[1].unlink(missing_ok=True)

    def stored_snapshot(self) -> Snapshot | None:
        """The stored snapshot with its data a read-only mapping of its file (pages come from
        the page cache as they are read, and are given back when the mapping is dropped): safe
        from any thread, and valid for as long as the caller holds it, whatever is stored next."""
        for _ in range(3):
            spill = self._spill
            if spill is None:
                return None
            meta, path = spill
            try:
                with open(path, "rb") as source:
                    size = os.fstat(source.fileno()).st_size
                    data = mmap.mmap(source.fileno(), size, access=mmap.ACCESS_READ) if size else b""
            except FileNotFoundError:
                continue  # replaced by a newer snapshot's file meanwhile: take that one
            # Any buffer serves where Snapshot.data is read (streamed, checksummed), and a
            # Struct does not check field types when built.
            return Snapshot(meta, cast(bytes, data))
        return None

    def _stage(
        self,
        con: duckdb.DuckDBPyConnection,
        snapshot: Snapshot,
        should_stop: Callable[[], bool] | None,
    ) -> _StagedSnapshot:
        """Write the snapshot's rows into ``stage_`` tables, about ``SNAPSHOT_CHUNK_BYTES``
        per commit (rows of one table may differ in size by orders of magnitude), or settle
        for keeping it as a blob when tables would not give back its exact bytes. A background
        write (``should_stop`` given) paces itself; the Raft thread's install goes flat out."""
        self._drop_tables(con, "stage_")
        meta = snapshot.meta
        membership = msgspec.msgpack.encode(meta.membership)
        tables = _tables_of(snapshot.data)
        pace = Pacer() if should_stop is not None else None
        layout: str | None = None
        if tables is not None:
            try:
                view = memoryview(snapshot.data)
                for name, table in tables.items():
                    self._stage_table(con, name, table, view, should_stop, pace)
            except _NotExact:
                self._drop_tables(con, "stage_")
                tables = None
            else:
                layouts = [_TableLayout(name, t.columns, t.types) for name, t in tables.items()]
                layout = msgspec.json.encode(layouts).decode()
        layout_bytes = layout.encode() if layout is not None else b""
        return _StagedSnapshot(
            meta=meta,
            membership=membership,
            table_names=list(tables) if tables is not None else [],
            layout=layout,
            raw_data=None if tables is not None else snapshot.data,
            # zlib releases the interpreter lock while it reads a big buffer.
            crc=snapshot_checksum(meta.index, meta.term, membership, layout_bytes, snapshot.data),
        )

    def _stage_table(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        table: TableSpans,
        data: memoryview,
        should_stop: Callable[[], bool] | None,
        pace: Pacer | None,
    ) -> None:
        stage = _quote("stage_" + name)
        columns = ", ".join(f"{_quote(c)} {t}" for c, t in zip(table.columns, table.types, strict=True))
        con.execute(f"CREATE TABLE {stage} ({columns})")
        converter = _RowConverter(table.types)
        ends = table.ends
        base = table.start
        start = 0
        while start < len(ends):
            if should_stop is not None and should_stop():
                raise _Superseded
            end = _rows_end(ends, start, SNAPSHOT_CHUNK_BYTES)
            batches = [ColumnBatch(table.types)]
            while start < end:
                step_end = min(_rows_end(ends, start, _CONVERT_BYTES), end)
                if batches[-1].num_bytes >= _STATEMENT_BYTES:
                    batches.append(ColumnBatch(table.types))
                lo = base + (ends[start - 1] if start else 0)
                converter.add(step_end - start, data[lo : base + ends[step_end - 1]], batches[-1])
                start = step_end
                if pace is not None:
                    pace()
            self._insert_chunk(con, stage, batches)

    @staticmethod
    def _insert_chunk(con: duckdb.DuckDBPyConnection, stage: str, batches: list[ColumnBatch]) -> None:
        """One commit; an INSERT per slice, so no statement parses and holds a big text."""
        con.execute("BEGIN TRANSACTION")
        try:
            for batch in batches:
                con.execute(insert_sql(stage, batch.types), batch.arguments())
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @staticmethod
    def _swap_in(con: duckdb.DuckDBPyConnection, staged: _StagedSnapshot) -> None:
        """Inside the caller's transaction: replace the stored snapshot by the staged one."""
        DuckDBStore._drop_tables(con, "snap_")
        for name in staged.table_names:
            con.execute(f"ALTER TABLE {_quote('stage_' + name)} RENAME TO {_quote('snap_' + name)}")
        meta = staged.meta
        con.execute("DELETE FROM snapshot_meta")
        con.execute(
            "INSERT INTO snapshot_meta VALUES (?, ?, ?, ?, ?, ?)",
            [meta.index, meta.term, staged.membership, staged.layout, staged.raw_data, staged.crc],
        )

    def _log_matches(self, index: int, term: int) -> bool:
        if index == self._snapshot_index:
            return term == self._snapshot_term
        row = self._con.execute("SELECT term FROM log WHERE idx = ?", [index]).fetchone()
        return row is not None and row[0] == term

    @staticmethod
    def _drop_tables(con: duckdb.DuckDBPyConnection, prefix: str) -> None:
        names = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, ?)", [prefix]
        ).fetchall()
        for (name,) in names:
            con.execute(f"DROP TABLE {_quote(name)}")

    # -- housekeeping ----------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Fold the WAL into the main file; False when the Raft thread's writes left no gap
        for it within ``CHECKPOINT_PATIENCE`` seconds (the WAL then waits for the next one).
        Safe from any thread; waits for a snapshot write in progress. Takes up to a few
        hundred ms: keep it off the Raft thread."""
        with self._snapshot_lock:
            return self._checkpoint_between_writes()

    def _checkpoint_between_writes(self) -> bool:
        # DuckDB refuses to start a checkpoint while another connection's write transaction
        # is open (FORCE CHECKPOINT would abort it: a save would fail). Saves are short, so
        # one of a few quick retries finds a gap; once it runs, a save waits until it ends.
        deadline = time.monotonic() + CHECKPOINT_PATIENCE
        while True:
            try:
                self._bg.execute("CHECKPOINT")
                return True
            except duckdb.TransactionException as exc:
                if "other write transactions" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    return False
            time.sleep(0.001)

    def close(self) -> None:
        """Close the files. A snapshot write in progress on another thread stops first."""
        if self._closed:
            return
        self._install_waiting.set()
        with self._snapshot_lock:
            self._closed = True
            self._bg.close()
            self._reads.close()
            self._appender = None  # nothing buffered: every save flushed or cleared its rows
            self._log.close()
            self._con.close()
            self._hint.close()
            if self._spill is not None:
                with contextlib.suppress(OSError):
                    self._spill[1].unlink()

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise RuntimeError("DuckDBStore.load() must be called before using the store")

    def __repr__(self) -> str:
        return f"DuckDBStore({str(self.path)!r})"
