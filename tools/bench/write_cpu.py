#!/usr/bin/env python3
"""CPU time each node of a local 3-node cluster spends per replicated write: a figure that a
busy machine disturbs far less than throughput does (it counts work, not waiting).

Starts a fresh cluster, submits ``--count`` tasks that stay Pending at concurrency ``-c`` to the
leader with tools/loadgen.py, and reads each node's user+system CPU time from /proc before and
after. A fresh cluster per run keeps the state small and alike for every run: a cluster that has
been written to for minutes takes local snapshots of a large state every 8,192 entries, which
``write_throughput`` then counts in the writes of whichever level it fell in.

``--trees before=/tmp/w-before,after=/tmp/w-after`` compares revisions: for each repetition
and level, one run per tree in turn (each cluster started from its tree), so they share the
machine's load of those minutes. Results go to ``benchmarks/results/<--name>.json`` when
``--name`` is given.

Run: ``.venv/bin/python -m tools.bench.write_cpu [--count 3000] [-c 16 | --levels 16,64]
[--trees NAME=PATH,...] [--repeats 2] [--name write_cpu_x]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orion.testing.localcluster import LocalCluster
from tools.bench.common import WRITE_BENCH_SETTINGS, log, save_result
from tools.bench.trees import parse_trees, started_from


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(count: int, concurrency: int, tree: Path | None) -> dict[str, Any]:
    """One run on a fresh cluster started from ``tree`` (None: this process's tree)."""
    with (
        tempfile.TemporaryDirectory(prefix="orion-cpu-") as tmp,
        LocalCluster(3, Path(tmp), settings=WRITE_BENCH_SETTINGS) as cluster,
    ):
        with started_from(tree):
            cluster.start()
        time.sleep(3)  # let joins and promotions settle: they are not writes
        leader = cluster.leader_index()
        order = [leader] + [i for i in (1, 2, 3) if i != leader]
        pids = {i: cluster.node(i).pid for i in order}
        before = {i: cpu_seconds(pid) for i, pid in pids.items()}
        env = dict(os.environ, ORION_TOKEN_FILE=str(cluster.token_path))
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.loadgen",
                "--endpoints",
                cluster.node(leader).api_endpoint,
                "-c",
                str(concurrency),
                "--count",
                str(count),
                "--json",
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        after = {i: cpu_seconds(pid) for i, pid in pids.items()}
    per_write = [round((after[i] - before[i]) / count * 1000, 3) for i in order]
    result = json.loads(out.splitlines()[-1])
    return {
        "tree": str(tree or os.getcwd()),
        "writes": count,
        "concurrency": concurrency,
        "cpu_ms_per_write": {
            "leader": per_write[0],
            "followers": per_write[1:],
            "sum": round(sum(per_write), 3),
        },
        "ops_per_s": result["throughput_per_s"],
        "p50_ms": result["p50_ms"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--levels", default="", help="concurrencies, e.g. 16,64 (default: -c)")
    parser.add_argument("--trees", default="", help="NAME=PATH,...: one run per tree in turn")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--name", default="", help="also write benchmarks/results/<name>.json")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")] if args.levels else [args.concurrency]
    trees: dict[str, Path | None] = parse_trees(args.trees) if args.trees else {"": None}
    runs = []
    for repeat in range(1, args.repeats + 1):
        for concurrency in levels:
            for name, tree in trees.items():
                run = {"name": name, "repeat": repeat, **measure(args.count, concurrency, tree)}
                runs.append(run)
                if args.trees or args.repeats > 1 or len(levels) > 1:
                    log(
                        f"{name or 'this tree'} c={concurrency} rep {repeat}: "
                        f"{run['cpu_ms_per_write']} ms/write, {run['ops_per_s']}/s"
                    )
                print(json.dumps(run), flush=True)
    if args.name:
        save_result(args.name, {"count": args.count, "runs": runs})


if __name__ == "__main__":
    main()
