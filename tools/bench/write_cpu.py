#!/usr/bin/env python3
"""CPU time each node of a local 3-node cluster spends per replicated write: a figure that a
busy machine disturbs far less than throughput does (it counts work, not waiting).

Starts a cluster from the tree it runs in, submits ``--count`` tasks that stay Pending at
concurrency ``-c`` to the leader with tools/loadgen.py, and reads each node's user+system CPU
time from /proc before and after. Compare two revisions by running it from each one's tree
(``PYTHONPATH=<tree>``, cwd ``<tree>``), as tools/bench/revisions.py does for throughput.

Run: ``.venv/bin/python -m tools.bench.write_cpu [--count 3000] [-c 16]``
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

from orion.testing.localcluster import LocalCluster
from tools.bench.common import WRITE_BENCH_SETTINGS


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="orion-cpu-") as tmp,
        LocalCluster(3, Path(tmp), settings=WRITE_BENCH_SETTINGS) as cluster,
    ):
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
                str(args.concurrency),
                "--count",
                str(args.count),
                "--json",
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        after = {i: cpu_seconds(pid) for i, pid in pids.items()}
    per_write = [round((after[i] - before[i]) / args.count * 1000, 3) for i in order]
    result = json.loads(out.splitlines()[-1])
    print(
        json.dumps(
            {
                "tree": os.getcwd(),
                "writes": args.count,
                "concurrency": args.concurrency,
                "cpu_ms_per_write": {"leader": per_write[0], "followers": per_write[1:]},
                "ops_per_s": result["throughput_per_s"],
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
