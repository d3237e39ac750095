"""The floor of one durable Raft append on this disk: one DuckDB append + commit of N entries.

    .venv/bin/python -m tools.bench.duckdb_append_floor [--sizes 1,16,64,256] [--rounds 200]

For each batch size, ``--rounds`` commits of N entries of ``--entry-bytes`` each (plus the
hard state row every ``DuckDBStore.save`` writes), several ways, interleaved round by round so
the machine's load moves them alike:

- ``store.save``: ``orion.raft.duckdb_store.DuckDBStore.save`` as the Raft thread calls it
  (range checks, checksums, the hard state record, the insert and its commit);
- ``values``: one multi-row ``INSERT ... VALUES (?, ...), ...`` (autocommit; the store's path
  below 8 rows until session 6);
- ``json``: the rows as one JSON text of columns that DuckDB unnests
  (``orion.raft.duckdb_rows``; autocommit; the store's path from 192 rows up until session 6);
- ``list-params``: one Python list per column as parameters, unnested side by side;
- ``values-parsed``: the ``values`` INSERT parsed once (a ``Statement`` from
  ``extract_statements``) on a connection with DuckDB's optimizer off (the store's path below
  8 rows since issue 16, session 6);
- ``appender``: DuckDB's appender (``con.appender("log")``), ``append_rows`` then ``flush``,
  one commit and no SQL statement (the store's path from 8 rows up since session 6);
- ``arrow``: ``from_arrow(table).insert_into("log")``, a relation over an Arrow table
  (autocommit; the store's path from 12 rows up until pyarrow was dropped, issue 16 item 5);
- ``arrow-register``: ``register`` the Arrow table as a view, ``INSERT ... SELECT``,
  ``unregister`` (the store's path before issue 16);
  (the two Arrow methods only where pyarrow is installed: ``pip install .[bench]``)
- ``executemany`` (up to 16 entries: it grows by ~0.6 ms per row): one single-row INSERT run
  N times between BEGIN and COMMIT;
- ``fdatasync``: the disk alone, the same bytes appended to a file and fdatasync'd
  (what a bare WAL like etcd's pays).

Prints wall-clock p50/p99 per commit, CPU per commit (the thread's own time: what holds the
interpreter), and entries/s; ``--json`` for one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from orion.raft.duckdb_rows import ColumnBatch, insert_sql
from orion.raft.duckdb_store import _LOG_TABLE_SQL, _LOG_TYPES, DuckDBStore
from orion.raft.types import Entry, EntryKind, HardState
from tools.stats import percentile

Writer = Callable[[int], None]  # appends one batch; the argument is the first index


def _plain_db(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("SET checkpoint_threshold = '1TB'")
    con.execute(_LOG_TABLE_SQL.format(name="log"))
    return con


def _rows(first: int, n: int, payload: bytes) -> list[tuple[int, int, int, bytes, int]]:
    return [(i, 1, 0, payload, i) for i in range(first, first + n)] + [(-first, 1, -1, b"hs", 0)]


def writers(base: Path, n: int, payload: bytes) -> dict[str, tuple[Writer, Callable[[], None]]]:
    """Each method's writer and its closer, on its own fresh files."""
    out: dict[str, tuple[Writer, Callable[[], None]]] = {}

    store = DuckDBStore(base / "store.duckdb")
    store.load()

    def save(first: int) -> None:
        entries = [
            Entry(index=i, term=1, kind=EntryKind.NORMAL, data=payload) for i in range(first, first + n)
        ]
        store.save(HardState(term=1, vote="a", commit=first), entries)

    out["store.save"] = (save, store.close)

    values_con = _plain_db(base / "values.duckdb")
    values_sql = "INSERT INTO log VALUES " + ", ".join(["(?, ?, ?, ?, ?)"] * (n + 1))

    def values(first: int) -> None:
        values_con.execute(values_sql, [v for row in _rows(first, n, payload) for v in row])

    out["values"] = (values, values_con.close)

    json_con = _plain_db(base / "json.duckdb")
    json_sql = insert_sql("log", _LOG_TYPES)

    def json_rows(first: int) -> None:
        batch = ColumnBatch(_LOG_TYPES)
        batch.add(list(zip(*_rows(first, n, payload), strict=True)))
        json_con.execute(json_sql, batch.arguments())

    out["json"] = (json_rows, json_con.close)

    lists_con = _plain_db(base / "lists.duckdb")
    lists_sql = "INSERT INTO log SELECT " + ", ".join(
        f"unnest(${i}::{t}[])" for i, t in enumerate(_LOG_TYPES, 1)
    )

    def list_params(first: int) -> None:
        lists_con.execute(lists_sql, [list(c) for c in zip(*_rows(first, n, payload), strict=True)])

    out["list-params"] = (list_params, lists_con.close)

    parsed_con = _plain_db(base / "parsed.duckdb")
    parsed_con.execute("PRAGMA disable_optimizer")
    parsed = parsed_con.extract_statements(values_sql)[0]

    def values_parsed_once(first: int) -> None:
        parsed_con.execute(parsed, [v for row in _rows(first, n, payload) for v in row])

    out["values-parsed"] = (values_parsed_once, parsed_con.close)

    appender_con = _plain_db(base / "appender.duckdb")
    appender = appender_con.appender("log")

    def append(first: int) -> None:
        appender.append_rows(_rows(first, n, payload))
        appender.flush()

    out["appender"] = (append, appender_con.close)
    out.update(_arrow_writers(base, n, payload))

    if n <= 16:
        many_con = _plain_db(base / "many.duckdb")

        def many(first: int) -> None:
            many_con.execute("BEGIN TRANSACTION")
            many_con.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?)", _rows(first, n, payload))
            many_con.execute("COMMIT")

        out["executemany"] = (many, many_con.close)

    fd = os.open(base / "bare.wal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    blob = payload * n + b"hs"

    def bare(first: int) -> None:
        os.write(fd, blob)
        os.fdatasync(fd)

    out["fdatasync"] = (bare, lambda: os.close(fd))
    return out


def _arrow_writers(base: Path, n: int, payload: bytes) -> dict[str, tuple[Writer, Callable[[], None]]]:
    """The Arrow methods, when pyarrow is installed (the store no longer needs it)."""
    try:
        import pyarrow as pa
    except ImportError:
        return {}
    schema = pa.schema(
        [
            ("idx", pa.int64()),
            ("term", pa.int64()),
            ("kind", pa.int32()),
            ("data", pa.binary()),
            ("crc", pa.int64()),
        ]
    )

    def table(first: int) -> Any:
        columns = list(zip(*_rows(first, n, payload), strict=True))
        return pa.Table.from_arrays(
            [pa.array(c, t.type) for c, t in zip(columns, schema, strict=True)], schema=schema
        )

    out: dict[str, tuple[Writer, Callable[[], None]]] = {}
    arrow_con = _plain_db(base / "arrow.duckdb")

    def arrow(first: int) -> None:
        arrow_con.from_arrow(table(first)).insert_into("log")

    out["arrow"] = (arrow, arrow_con.close)
    register_con = _plain_db(base / "register.duckdb")

    def register(first: int) -> None:
        register_con.register("_batch", table(first))
        try:
            register_con.execute("INSERT INTO log SELECT * FROM _batch")
        finally:
            register_con.unregister("_batch")

    out["arrow-register"] = (register, register_con.close)
    return out


def measure(sizes: list[int], rounds: int, entry_bytes: int) -> list[dict[str, Any]]:
    payload = os.urandom(entry_bytes)
    results: list[dict[str, Any]] = []
    for n in sizes:
        base = Path(tempfile.mkdtemp(prefix="orion-append-floor-", dir=os.environ.get("ORION_BENCH_DIR")))
        try:
            methods = writers(base, n, payload)
            walls: dict[str, list[float]] = {name: [] for name in methods}
            cpus: dict[str, float] = dict.fromkeys(methods, 0.0)
            first = 1
            for _ in range(rounds):
                for name, (write, _close) in methods.items():
                    cpu, wall = time.thread_time(), time.perf_counter()
                    write(first)
                    walls[name].append(time.perf_counter() - wall)
                    cpus[name] += time.thread_time() - cpu
                first += n
            for name, (_write, close) in methods.items():
                close()
                samples = sorted(walls[name])
                results.append(
                    {
                        "entries": n,
                        "method": name,
                        "p50_ms": round(percentile(samples, 50) * 1e3, 3),
                        "p99_ms": round(percentile(samples, 99) * 1e3, 3),
                        "cpu_ms": round(cpus[name] / rounds * 1e3, 3),
                        "entries_per_s": round(n * rounds / sum(samples)),
                    }
                )
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,16,64,256", help="entries per commit")
    parser.add_argument("--rounds", type=int, default=200, help="commits per size and method")
    parser.add_argument("--entry-bytes", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure([int(s) for s in args.sizes.split(",")], args.rounds, args.entry_bytes)
    if args.json:
        print(json.dumps({"load_avg": os.getloadavg(), "results": results}))
        return
    print(f"load average {os.getloadavg()}")
    print("| entries | method | p50 ms | p99 ms | CPU ms | entries/s |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['entries']} | {r['method']} | {r['p50_ms']} | {r['p99_ms']} | {r['cpu_ms']} "
            f"| {r['entries_per_s']:,} |"
        )


if __name__ == "__main__":
    main()
