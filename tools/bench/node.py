"""Node-level figures on a real 3-node LocalCluster:

- idle RSS of each ``orion node`` process (VmRSS after the cluster formed and sat idle);
- submit round trip p50/p99 at concurrency 1 through the leader and through a follower
  (a follower forwards the write to the leader: one extra hop each way). The tasks stay
  Pending (a selector no node matches); fewer than 512 in all, because beyond the
  scheduler's batch of 512 unplaceable tasks its rounds spin on the leader (see
  benchmarks/comparisons.md) and would inflate whatever is measured second;
- node kill to tasks running elsewhere: a task runs on node X, kill -9 X, time until the
  task is Running on another node; p50 over ``--kill-runs`` runs. The LocalCluster settings
  apply: gossip probe 500 ms / timeout 250 ms, ``reschedule_after`` 3 s.

    .venv/bin/python -m tools.bench.node [--submits 200] [--kill-runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from orion.client import Client
from orion.testing.localcluster import LocalCluster
from tools.bench.common import log, save_result, wait_for
from tools.stats import summary

IMAGE = "orion-busybox:latest"
UNPLACEABLE = {"orion.bench": "never-matches"}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def submit_latencies(endpoint: str, n: int) -> list[float]:
    samples = []
    with Client([endpoint], timeout=5.0) as client:
        for _ in range(20):  # warm-up
            client.submit(IMAGE, node_selectors=UNPLACEABLE)
        for _ in range(n):
            start = time.perf_counter()
            client.submit(IMAGE, node_selectors=UNPLACEABLE)
            samples.append(time.perf_counter() - start)
    return samples


def kill_to_running_elsewhere(cluster: LocalCluster, runs: int) -> list[float]:
    samples = []
    for run in range(runs):
        with Client(cluster.endpoints, timeout=5.0) as client:
            task = client.submit(IMAGE, command=["sleep", "3600"], memory="16MiB")
            task = client.wait(task.id, "Running", timeout=60)
        victim = next(n for n in cluster.nodes if n.node_id == task.node_id)
        survivors = [n.api_endpoint for n in cluster.nodes if n.index != victim.index]
        start = time.perf_counter()
        cluster.kill(victim.index)
        with Client(survivors, timeout=2.0, retries=3) as client:

            def moved(task_id: str = task.id, old: str = victim.node_id) -> bool:
                current = client.task(task_id)
                return current.state == "Running" and current.node_id not in ("", old)

            wait_for(moved, 120, interval=0.05, what="the task to run on another node")
            samples.append(time.perf_counter() - start)
            log(f"kill run {run + 1}: {samples[-1]:.2f} s ({victim.node_id} killed)")
            with contextlib.suppress(Exception):
                client.stop(task.id)
        cluster.start_node(victim.index)
        cluster.wait_ready(60)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--submits", type=int, default=200, help="per path; keep 2 x (this + 20) under 512 pending tasks"
    )
    parser.add_argument("--kill-runs", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle time before reading RSS")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    with LocalCluster(3, Path(tempfile.mkdtemp(prefix="orion-bench-node-"))) as cluster:
        cluster.start()
        time.sleep(args.idle_s)  # a benchmark, not a test: let the fresh cluster sit idle
        result["idle_rss_mib"] = [round(rss_mib(n.pid), 1) for n in cluster.nodes if n.pid]
        leader = wait_for(cluster.leader_index, 30, what="a leader")
        follower = next(n.index for n in cluster.nodes if n.index != leader)
        via_leader = submit_latencies(cluster.node(leader).api_endpoint, args.submits)
        via_follower = submit_latencies(cluster.node(follower).api_endpoint, args.submits)
        result["submit_ms"] = {
            "via leader": summary(via_leader, 1e3, 2),
            "via follower": summary(via_follower, 1e3, 2),
        }
        log(
            f"submit p50 leader {result['submit_ms']['via leader']['p50']} ms, follower "
            f"{result['submit_ms']['via follower']['p50']} ms"
        )
    if args.kill_runs:
        # A fresh cluster: the pending tasks above must not sit in the scheduler's way.
        with LocalCluster(3, Path(tempfile.mkdtemp(prefix="orion-bench-kill-"))) as cluster:
            cluster.start()
            kills = kill_to_running_elsewhere(cluster, args.kill_runs)
            result["kill_to_running_elsewhere_s"] = {"summary": summary(kills, 1.0, 2), "samples": kills}
    save_result("node", result)


if __name__ == "__main__":
    main()
