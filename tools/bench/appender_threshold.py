"""Process CPU per DuckDB log save at small batch sizes, with the store's appender switch at
two thresholds, interleaved (``_APPENDER_MIN_ROWS`` in orion/raft/duckdb_store.py).

    .venv/bin/python -m tools.bench.appender_threshold [--runs 4] [--saves 300] [--rows 4 5 6 7]

Each run saves ``--saves`` batches of ``rows - 1`` entries plus the hard state row into a fresh
store (one fdatasync a save, as the Raft shell does) with the switch at the appender's threshold
and at one above every size measured (so the VALUES INSERT); the order alternates per run.
Prints the median CPU per save of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import orion.raft.duckdb_store as duckdb_store
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState

ENTRY_BYTES = 300
WARMUP_SAVES = 20


def cpu_per_save_ms(directory: Path, threshold: int, rows: int, saves: int, tag: str) -> float:
    kept = duckdb_store._APPENDER_MIN_ROWS
    duckdb_store._APPENDER_MIN_ROWS = threshold
    try:
        return _measure(directory, threshold, rows, saves, tag)
    finally:
        duckdb_store._APPENDER_MIN_ROWS = kept


def _measure(directory: Path, threshold: int, rows: int, saves: int, tag: str) -> float:
    store = DuckDBStore(directory / f"{tag}-{threshold}-{rows}.duckdb")
    store.load()
    payload = os.urandom(ENTRY_BYTES)
    entries_per_save = rows - 1  # the hard state is the save's last row
    next_index = 1

    def save() -> None:
        nonlocal next_index
        last = next_index + entries_per_save
        entries = [Entry(i, 1, 0, payload) for i in range(next_index, last)]
        store.save(HardState(term=1, vote="n1", commit=next_index - 1), entries)
        next_index = last

    for _ in range(WARMUP_SAVES):
        save()
    started = time.process_time()
    for _ in range(saves):
        save()
    cpu = (time.process_time() - started) / saves
    store.close()
    return cpu * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--saves", type=int, default=300)
    parser.add_argument("--rows", type=int, nargs="+", default=[4, 5, 6, 7])
    args = parser.parse_args()
    appender = min(args.rows)
    values = max(args.rows) + 1
    results: dict[tuple[int, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            order = (appender, values) if run % 2 == 0 else (values, appender)
            for rows in args.rows:
                for threshold in order:
                    cpu = cpu_per_save_ms(Path(tmp), threshold, rows, args.saves, f"r{run}")
                    results.setdefault((rows, threshold), []).append(cpu)
    print(f"{'rows':>5} {'appender ms':>12} {'VALUES ms':>10} {'ratio':>6}")
    for rows in args.rows:
        a = statistics.median(results[(rows, appender)])
        v = statistics.median(results[(rows, values)])
        print(f"{rows:>5} {a:>12.3f} {v:>10.3f} {a / v:>6.2f}")


if __name__ == "__main__":
    main()
