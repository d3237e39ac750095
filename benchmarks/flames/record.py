"""Record py-spy flame graphs of a 3-node cluster's leader (and a follower) under closed-loop submits.

    .venv/bin/python -m benchmarks.flames.record --label before [--levels 16,64] [--seconds 15]
        [--follower] [--formats svg,raw]

Starts a LocalCluster(3) the way tools/bench/write_throughput.py does, and for each level runs
tools/loadgen.py's thread workers against the leader while ``py-spy record`` (no ``--idle``,
no ``--native``, one stack per thread, ``--rate`` samples a second) samples the leader for
``--seconds``; with ``--follower`` a follower too, at the same time. Writes
``benchmarks/flames/<role>-<label>-c<level>.svg`` and, with ``raw`` in ``--formats``, the
collapsed stacks (``.txt``, what ``benchmarks.flames.stages`` reads; each format is one py-spy
process per node, so ask only for what you need on a small machine), and prints the loadgen
summary and ``uptime`` of each level. Needs root (or ptrace rights) for py-spy.
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
from tools.bench.common import WRITE_BENCH_SETTINGS

HERE = Path(__file__).resolve().parent
PY_SPY = Path(sys.executable).with_name("py-spy")


def load(endpoint: str, concurrency: int, seconds: float, out: dict[str, Any]) -> None:
    args = loadgen.parse_args(
        ["--endpoints", endpoint, "-c", str(concurrency), "--duration", str(seconds), "--quiet"]
    )
    args.endpoints = [endpoint]
    out.update(loadgen.run(args))


def spy(pid: int, output: Path, seconds: float, rate: int, fmt: str, gil: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "-o",
            str(output),
            "--format",
            fmt,
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            str(rate),
            "--threads",
            "--nonblocking",
            *(["--gil"] if gil else []),
        ],
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", required=True, help="before, after, ...")
    parser.add_argument("--levels", default="16,64")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--follower", action="store_true", help="record a follower too")
    parser.add_argument(
        "--gil", action="store_true", help="only samples holding the interpreter lock (Python's own CPU)"
    )
    parser.add_argument("--formats", default="svg", help="svg, raw (collapsed stacks, .txt) or both")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="orion-flames-"))
    try:
        # The write benchmark's settings: the client edge's rate limit would refuse c=64's load.
        with LocalCluster(3, base, settings=WRITE_BENCH_SETTINGS) as cluster:
            cluster.start()
            leader = cluster.leader_index()
            assert leader is not None
            node = cluster.node(leader)
            roles = {"leader": node.pid}
            if args.follower:
                roles["follower"] = cluster.node(next(i for i in (1, 2, 3) if i != leader)).pid
            load(node.api_endpoint, 4, 2.0, {})  # warm up
            for concurrency in (int(c) for c in args.levels.split(",")):
                result: dict[str, Any] = {}
                worker = threading.Thread(
                    target=load, args=(node.api_endpoint, concurrency, args.seconds + 4, result)
                )
                worker.start()
                spies = []
                for role, pid in roles.items():
                    assert pid is not None
                    stem = HERE / f"{role}-{args.label}{'-gil' if args.gil else ''}-c{concurrency}"
                    for fmt in args.formats.split(","):
                        suffix, kind = (".txt", "raw") if fmt == "raw" else (".svg", "flamegraph")
                        spies.append(
                            spy(pid, stem.with_suffix(suffix), args.seconds, args.rate, kind, args.gil)
                        )
                for process in spies:
                    if process.wait() != 0:
                        raise SystemExit(f"py-spy failed: {process.args}")
                worker.join()
                uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
                print(
                    f"c={concurrency}: {result['throughput_per_s']}/s p50 {result['p50_ms']} ms "
                    f"errors {result['errors']} {result['error_examples'] or ''} | {uptime} | "
                    f"{', '.join(roles)}-{args.label}-c{concurrency}",
                    flush=True,
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
