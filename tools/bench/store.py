"""Append throughput of the DuckDB LogStore with production durability (WAL fsync per save).

    .venv/bin/python -m tools.bench.store [--entries N] [--dir DIR]

For each batch size (1, 64, 1,024 entries of 300 bytes) a fresh store receives saves of that
many entries plus a hard state, as the Raft shell does; prints entries/s and p50/p99 per save.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState
from tools.stats import p50, p99

ENTRY_BYTES = 300


def bench(directory: Path, batch: int, total: int) -> tuple[float, float, float]:
    path = directory / f"bench-{batch}.duckdb"
    store = DuckDBStore(path)
    store.load()
    payload = os.urandom(ENTRY_BYTES)
    latencies: list[float] = []
    next_index = 1
    saves = max(1, total // batch)
    started = time.perf_counter()
    for _ in range(saves):
        entries = [Entry(i, 1, 0, payload) for i in range(next_index, next_index + batch)]
        t0 = time.perf_counter()
        store.save(HardState(term=1, vote="n1", commit=next_index - 1), entries)
        latencies.append(time.perf_counter() - t0)
        next_index += batch
    elapsed = time.perf_counter() - started
    store.close()
    return saves * batch / elapsed, p50(latencies), p99(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=0, help="entries per batch size (default: auto)")
    parser.add_argument("--dir", default=None, help="directory for the store files (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"{'batch':>6} {'entries/s':>11} {'p50 ms':>8} {'p99 ms':>8}")
        for batch in (1, 64, 1024):
            total = args.entries or {1: 2_000, 64: 64_000, 1024: 204_800}[batch]
            rate, p50, p99 = bench(Path(tmp), batch, total)
            print(f"{batch:>6} {rate:>11,.0f} {p50 * 1e3:>8.2f} {p99 * 1e3:>8.2f}")


if __name__ == "__main__":
    main()
