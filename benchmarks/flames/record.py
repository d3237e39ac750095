"""Record py-spy flame graphs of a 3-node cluster's leader under closed-loop submits.

    .venv/bin/python -m benchmarks.flames.record --label before [--levels 16,64] [--seconds 15]

Starts a LocalCluster(3) the way tools/bench/write_throughput.py does, and for each level runs
tools/loadgen.py's thread workers against the leader while ``py-spy record`` (no ``--idle``,
one stack per thread) samples the leader for ``--seconds``. Writes
``benchmarks/flames/leader-<label>-c<level>.svg`` and prints the loadgen summary and
``uptime`` of each level. Needs root (or ptrace rights) for py-spy.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from orion.testing.localcluster import LocalCluster
from tools import loadgen

HERE = Path(__file__).resolve().parent
PY_SPY = Path(sys.executable).with_name("py-spy")


def load(endpoint: str, concurrency: int, seconds: float, out: dict[str, Any]) -> None:
    args = loadgen.parse_args(
        ["--endpoints", endpoint, "-c", str(concurrency), "--duration", str(seconds), "--quiet"]
    )
    args.endpoints = [endpoint]
    out.update(loadgen.run(args))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", required=True, help="before, after, ...")
    parser.add_argument("--levels", default="16,64")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="orion-flames-"))
    try:
        with LocalCluster(3, base) as cluster:
            cluster.start()
            leader = cluster.leader_index()
            assert leader is not None
            node = cluster.node(leader)
            load(node.api_endpoint, 4, 2.0, {})  # warm up
            for concurrency in (int(c) for c in args.levels.split(",")):
                result: dict[str, Any] = {}
                worker = threading.Thread(
                    target=load, args=(node.api_endpoint, concurrency, args.seconds + 4, result)
                )
                worker.start()
                svg = HERE / f"leader-{args.label}-c{concurrency}.svg"
                subprocess.run(
                    [
                        str(PY_SPY),
                        "record",
                        "-o",
                        str(svg),
                        "--pid",
                        str(node.pid),
                        "--duration",
                        str(int(args.seconds)),
                        "--rate",
                        str(args.rate),
                        "--threads",
                        "--nonblocking",
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                worker.join()
                uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
                print(
                    f"c={concurrency}: {result['throughput_per_s']}/s p50 {result['p50_ms']} ms "
                    f"errors {result['errors']} | {uptime} | {svg.name}",
                    flush=True,
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
