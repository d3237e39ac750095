"""Run every side-by-side benchmark, one after the other (``make bench``).

    .venv/bin/python tools/bench_all.py [--quick]

Each comparison is its own script (also runnable alone); results land in
benchmarks/results/*.json and each script prints a Markdown table. ``--quick`` runs fewer
samples and shorter levels for a smoke run, and writes its results to a temporary
directory instead. Needs Docker (the local ``orion-busybox`` image
from tools/docker_setup.py), the ``bench`` extra (pysyncobj, aiohttp), and apt-get for
Debian's etcd-server if it is missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parent

FULL = [
    ["bench_write_throughput.py", "--duration", "5"],
    ["bench_failover.py", "--runs", "10"],
    ["bench_swarm.py", "--sizes", "10,50", "--runs", "2"],
    ["bench_container_start.py", "--samples", "20"],
    ["bench_node.py", "--submits", "200", "--kill-runs", "5"],
]
QUICK = [
    ["bench_write_throughput.py", "--duration", "2", "--modes", "threads"],
    ["bench_failover.py", "--runs", "2"],
    ["bench_swarm.py", "--sizes", "10", "--runs", "1"],
    ["bench_container_start.py", "--samples", "3"],
    ["bench_node.py", "--submits", "100", "--kill-runs", "1", "--idle-s", "2"],
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated script names to run")
    args = parser.parse_args()
    failed = []
    env = dict(os.environ)
    if args.quick:
        env["ORION_BENCH_RESULTS"] = tempfile.mkdtemp(prefix="orion-bench-quick-")
        print(f"quick run: results in {env['ORION_BENCH_RESULTS']}", flush=True)
    for command in QUICK if args.quick else FULL:
        if args.only and command[0].removesuffix(".py") not in args.only.split(","):
            continue
        print(f"\n## {' '.join(command)}\n", flush=True)
        start = time.monotonic()
        code = subprocess.call(
            [sys.executable, str(TOOLS / command[0]), *command[1:]], cwd=TOOLS.parent, env=env
        )
        print(f"\n({command[0]}: exit {code}, {time.monotonic() - start:.0f} s)", flush=True)
        if code != 0:
            failed.append(command[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
