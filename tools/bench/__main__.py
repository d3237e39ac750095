"""Run the benchmark suite, one benchmark after the other (``make bench``).

    .venv/bin/python -m tools.bench [--quick] [--only raft_core,failover]

First the in-process ones: the Raft core's committed entries/s on a simulated perfect network
(raft_core) and the DuckDB log's append rate with one fdatasync per save (store); then the
side-by-side comparisons against etcd, PySyncObj, Docker Swarm and ``docker run``
(write_throughput, failover, heal, lifeguard_experiment, swarm, container_start, node,
node_footprint, restart_replay). Each
runs in its own process and alone as well (``python -m tools.bench.NAME --help``); the comparisons write
benchmarks/results/*.json and print a Markdown table.

``--quick`` runs fewer samples and shorter levels, a smoke run of a few minutes, and writes its
results to a temporary directory instead. The comparisons need Docker (the local
``orion-busybox`` image from ``python -m tools.docker_setup``), the ``bench`` extra (pysyncobj,
aiohttp), and apt-get for Debian's etcd-server if it is missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from tools.bench.common import ROOT

# (module under tools.bench, arguments) in the order they run.
FULL: list[tuple[str, list[str]]] = [
    ("raft_core", ["--entries", "200000"]),
    ("store", []),
    ("write_throughput", ["--duration", "8", "--repeats", "2"]),
    ("failover", ["--runs", "10"]),
    ("heal", ["--runs", "10"]),
    ("lifeguard_experiment", []),
    ("swarm", ["--sizes", "10,50", "--runs", "2"]),
    ("container_start", ["--samples", "20"]),
    ("node", ["--submits", "200", "--kill-runs", "5"]),
    ("node_footprint", []),
    ("restart_replay", []),
]
QUICK: list[tuple[str, list[str]]] = [
    ("raft_core", ["--entries", "20000"]),
    ("store", ["--entries", "2048"]),
    ("write_throughput", ["--duration", "2", "--modes", "threads", "--levels", "16"]),
    ("failover", ["--runs", "2"]),
    ("heal", ["--runs", "1"]),
    ("lifeguard_experiment", ["--members", "16", "--impaired", "2", "--seeds", "1", "--duration", "200"]),
    ("swarm", ["--sizes", "10", "--runs", "1"]),
    ("container_start", ["--samples", "3"]),
    ("node", ["--submits", "100", "--kill-runs", "1", "--idle-s", "2"]),
    ("node_footprint", ["--short"]),
    ("restart_replay", ["--short"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run; results to a temp dir")
    parser.add_argument("--only", default="", help="comma-separated benchmark names to run")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    only = [name for name in args.only.split(",") if name]
    unknown = sorted(set(only) - {name for name, _ in plan})
    if unknown:
        known = ", ".join(name for name, _ in plan)
        parser.error(f"--only: no benchmark named {', '.join(unknown)} (known: {known})")
    env = dict(os.environ)
    if args.quick:
        env["ORION_BENCH_RESULTS"] = tempfile.mkdtemp(prefix="orion-bench-quick-")
        print(f"quick run: results in {env['ORION_BENCH_RESULTS']}", flush=True)
    failed = []
    for name, arguments in plan:
        if only and name not in only:
            continue
        command = [sys.executable, "-m", f"tools.bench.{name}", *arguments]
        print(f"\n## python -m tools.bench.{name} {' '.join(arguments)}\n", flush=True)
        start = time.monotonic()
        code = subprocess.call(command, cwd=ROOT, env=env)
        print(f"\n({name}: exit {code}, {time.monotonic() - start:.0f} s)", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
