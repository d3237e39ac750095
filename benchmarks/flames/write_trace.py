"""Where one write's time goes at concurrency 1: timestamps of each stage on the client, the
leader and the follower that answered first, for every write of a closed loop.

    .venv/bin/python -m benchmarks.flames.write_trace [--duration 6] [--json OUT] [--tree PATH]

Runs a 3-node ``LocalCluster`` of the tree it runs from, or of ``--tree`` (client rate limit
off, as the write benchmarks), ``tools/loadgen.py`` at c=1 against the leader, with
``trace_hook/sitecustomize.py`` loaded into every process (it re-runs itself with
``PYTHONPATH`` and ``ORION_WRITE_TRACE`` set). For each write it follows the chain client ->
leader API thread -> Raft actor -> transport -> follower transport -> Raft actor -> DuckDB
commit -> transport -> leader transport -> Raft actor -> apply -> reply -> API thread ->
client, taking at each step the first matching stage after the previous one (of the follower
whose answer left first), and prints the median and p90 time from the client's call to each
stage and the median of each step. The leader's own DuckDB commit runs beside the follower's
and is shown apart. Wrapping costs ~1-2 us per stage.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOOK = Path(__file__).resolve().parent / "trace_hook"

LEADER_OUT = ["api.serve", "raft.rx_propose", "shell.send_all", "transport.write"]
FOLLOWER = ["transport.accept", "raft.rx_frame", "store.save", "store.saved", "transport.write"]
LEADER_BACK = ["transport.accept", "raft.rx_frame", "raft.apply", "api.post", "api.send"]


def run(duration: float, tree: str) -> tuple[dict[str, str], int, dict[str, Any]]:
    """The cluster and the load; the pid -> role map (leader L, followers F1/F2, client)."""
    from orion.testing.localcluster import LocalCluster
    from tools import loadgen
    from tools.bench.common import WRITE_BENCH_SETTINGS
    from tools.bench.trees import started_from

    with (
        tempfile.TemporaryDirectory(prefix="orion-trace-") as base,
        LocalCluster(3, Path(base), settings=WRITE_BENCH_SETTINGS) as cluster,
    ):
        with started_from(Path(tree).resolve() if tree else None):
            if tree:  # the nodes run the tree's code, with the hook loaded before it
                os.environ["PYTHONPATH"] = os.pathsep.join([str(HOOK), os.environ["PYTHONPATH"]])
            cluster.start()
        leader = cluster.leader_index()
        assert leader is not None
        endpoint = cluster.node(leader).api_endpoint

        def load(seconds: float) -> dict[str, Any]:
            argv = ["--endpoints", endpoint, "-c", "1", "--duration", str(seconds), "--quiet"]
            args = loadgen.parse_args([*argv, "--mode", "threads"])
            args.endpoints = [endpoint]
            return loadgen.run(args)

        load(1.0)  # warm up: connections, first placements
        time.sleep(2.5)
        start = time.perf_counter_ns()
        result = load(duration)
        time.sleep(2.5)  # every process writes its trace within 2 s
        roles = {str(os.getpid()): "client"}
        followers = iter(("F1", "F2"))
        for node in cluster.nodes:
            roles[str(node.pid)] = "L" if node.index == leader else next(followers)
    return roles, start, result


def read_traces(trace_dir: Path, roles: dict[str, str], start: int) -> dict[str, list[tuple[int, str]]]:
    events: dict[str, list[tuple[int, str]]] = {}
    for path in trace_dir.glob("*.txt"):
        role = roles.get(path.stem)
        if role is None:
            continue
        rows = []
        for line in path.read_text().splitlines():
            at, stage = line.split()
            if int(at) >= start:
                rows.append((int(at), stage))
        events[role] = sorted(rows)
    return events


def chains(events: dict[str, list[tuple[int, str]]]) -> list[list[tuple[str, int]]]:
    times = {role: [at for at, _ in rows] for role, rows in events.items()}

    def first_after(role: str, stage: str, after: int) -> int | None:
        rows = events.get(role, [])
        for i in range(bisect.bisect_right(times.get(role, []), after), len(rows)):
            if rows[i][1] == stage:
                return rows[i][0]
        return None

    out = []
    for call in (at for at, stage in events["client"] if stage == "client.call"):
        chain: list[tuple[str, int]] = [("client.call", call)]
        at: int | None = call
        for stage in LEADER_OUT:
            at = first_after("L", stage, at) if at is not None else None
            chain.append((f"L {stage}", at or 0))
        if at is None:
            continue
        best: list[tuple[str, int]] | None = None
        for follower in ("F1", "F2"):
            part, f_at = [], at
            for stage in FOLLOWER:
                f_at = first_after(follower, stage, f_at) if f_at is not None else None
                part.append((f"F {stage}", f_at or 0))
            if f_at is not None and (best is None or f_at < best[-1][1]):
                best = part
        if best is None:
            continue
        chain += best
        at = best[-1][1]
        for stage in LEADER_BACK:
            at = first_after("L", stage, at) if at is not None else None
            chain.append((f"L {stage}", at or 0))
        done = first_after("client", "client.done", at) if at is not None else None
        own = first_after("L", "store.save", chain[1][1])
        own_done = first_after("L", "store.saved", own) if own is not None else None
        if done is None or own_done is None:
            continue
        chain.append(("client.done", done))
        chain += [("(L store.save, beside)", own), ("(L store.saved, beside)", own_done)]
        out.append(chain)
    return out


def summarize(traced: list[list[tuple[str, int]]]) -> list[dict[str, Any]]:
    rows = []
    main_stages = len(traced[0]) - 2
    for i, (stage, _) in enumerate(traced[0]):
        since_call = sorted((chain[i][1] - chain[0][1]) / 1e6 for chain in traced)
        step = (
            statistics.median((chain[i][1] - chain[i - 1][1]) / 1e6 for chain in traced)
            if 0 < i < main_stages
            else None
        )
        rows.append(
            {
                "stage": stage,
                "p50_ms": round(statistics.median(since_call), 3),
                "p90_ms": round(since_call[int(len(since_call) * 0.9)], 3),
                "step_p50_ms": None if step is None else round(step, 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--json", help="write the stages and the loadgen summary here")
    parser.add_argument(
        "--tree", default="", help="run the nodes from this source tree (e.g. a git worktree)"
    )
    args = parser.parse_args()
    if not os.environ.get("ORION_WRITE_TRACE"):
        trace_dir = tempfile.mkdtemp(prefix="orion-write-trace-")
        path = os.pathsep.join([str(HOOK), os.environ.get("PYTHONPATH", "") or os.getcwd()])
        env = dict(os.environ, ORION_WRITE_TRACE=trace_dir, PYTHONPATH=path)
        sys.exit(
            subprocess.call([sys.executable, "-m", "benchmarks.flames.write_trace", *sys.argv[1:]], env=env)
        )
    trace_dir = Path(os.environ["ORION_WRITE_TRACE"])
    load_before = os.getloadavg()
    roles, start, result = run(args.duration, args.tree)
    traced = chains(read_traces(trace_dir, roles, start))
    stages = summarize(traced)
    summary = {
        "writes": result["acked"],
        "traced": len(traced),
        "p50_ms": result["p50_ms"],
        "p90_ms": result["p90_ms"],
        "load_avg": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "stages": stages,
    }
    print(
        f"{summary['traced']} of {summary['writes']} writes traced; loadgen p50 {result['p50_ms']} ms, "
        f"p90 {result['p90_ms']} ms; load {summary['load_avg']} -> {summary['load_avg_after']}"
    )
    print("| stage | since the call, p50 ms | p90 ms | step p50 ms |")
    print("|---|---:|---:|---:|")
    for row in stages:
        step = "" if row["step_p50_ms"] is None else row["step_p50_ms"]
        print(f"| {row['stage']} | {row['p50_ms']} | {row['p90_ms']} | {step} |")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    for path in trace_dir.glob("*.txt"):
        path.unlink()
    trace_dir.rmdir()


if __name__ == "__main__":
    main()
