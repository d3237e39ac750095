#!/usr/bin/env python3
"""Issue 2's benchmark: (a) committed entries/s of a 3-node Raft cluster in the simulator
(the core's pure CPU cost) and (b) DuckDB log append throughput at batch 1, 64 and 1,024
with production durability (one fdatasync per save). Both run in this one process."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000, help="entries for the core benchmark")
    args = parser.parse_args()
    print("== (a) Raft core, 3 nodes, simulator, perfect network ==", flush=True)
    core = subprocess.run([sys.executable, str(TOOLS / "bench_raft_core.py"), "--entries", str(args.entries)])
    print("\n== (b) DuckDB log store, 300-byte entries, fdatasync per save ==", flush=True)
    store = subprocess.run([sys.executable, str(TOOLS / "bench_store.py")])
    sys.exit(core.returncode or store.returncode)


if __name__ == "__main__":
    main()
