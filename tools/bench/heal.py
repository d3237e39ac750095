"""Self-healing, phase by phase: a task runs on node X of a 3-node LocalCluster; kill -9 X and
time until the task is Running on another node, split into where the time goes:

- detection: the kill until a survivor's gossip calls X dead (polled every 50 ms, so up to
  that much late);
- reschedule: until the leader moved X's task back to Pending (``reschedule_after`` and the
  leader's membership step), from the task's history (the leader's clock);
- placement: Pending to Scheduled on another node (the scheduler's round and its commit);
- container start: Scheduled to Running (the new node's worker starts the container, then
  reports Running through Raft).

Unlike the test clusters (gossip probe 500 ms, ``reschedule_after = 3s``), the nodes run with
the node's default [gossip] and [scheduler] settings unless flags say otherwise, so the figure
is what a default installation gives.

    .venv/bin/python -m tools.bench.heal [--runs 10] [--probe-interval 1s --suspicion-mult 4 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from orion.client import Client
from orion.config import GossipSection, SchedulerSection
from orion.model import Task
from orion.testing.localcluster import LocalCluster
from tools.bench.common import log, save_result, wait_for
from tools.stats import summary

IMAGE = "orion-busybox:latest"
POLL_S = 0.05
PHASES = ("detection", "reschedule", "placement", "container_start", "total")


def default_settings() -> dict[str, dict[str, Any]]:
    """The node's defaults for what decides how fast a dead node's tasks move."""
    gossip, scheduler = GossipSection(), SchedulerSection()
    return {
        "gossip": {
            "probe_interval": gossip.probe_interval,
            "probe_timeout": gossip.probe_timeout,
            "suspicion_mult": gossip.suspicion_mult,
        },
        "scheduler": {"reschedule_after": scheduler.reschedule_after},
    }


def first_event(task: Task, state: str, after: float, node: str | None = None) -> float | None:
    for event in task.history:
        if event.state == state and event.at >= after and (node is None or event.node_id == node):
            return event.at
    return None


def heal_once(cluster: LocalCluster, run: int) -> dict[str, float]:
    with Client(cluster.endpoints, timeout=5.0) as client:
        task = client.submit(IMAGE, command=["sleep", "3600"], memory="16MiB")
        task = client.wait(task.id, "Running", timeout=60)
    victim = next(n for n in cluster.nodes if n.node_id == task.node_id)
    survivors = [n.api_endpoint for n in cluster.nodes if n.index != victim.index]
    wall_kill = time.time()
    start = time.perf_counter()
    cluster.kill(victim.index)
    dead_at: float | None = None
    with Client(survivors, timeout=2.0, retries=3) as client:
        while True:
            if dead_at is None:
                with contextlib.suppress(Exception):
                    statuses = {n.id: n.status for n in client.nodes(stale=True)}
                    if statuses.get(victim.node_id) in ("dead", "left"):
                        dead_at = time.perf_counter() - start
            current = client.task(task.id)
            if current.state == "Running" and current.node_id not in ("", victim.node_id):
                total = time.perf_counter() - start
                break
            if time.perf_counter() - start > 120:
                raise TimeoutError(f"task {task.id} not Running elsewhere after 120 s")
            time.sleep(POLL_S)
        pending = first_event(current, "Pending", wall_kill)
        scheduled = first_event(current, "Scheduled", wall_kill, current.node_id)
        running = first_event(current, "Running", wall_kill, current.node_id)
        with contextlib.suppress(Exception):
            client.stop(task.id)
    detection = dead_at if dead_at is not None else float("nan")
    phases = {
        "detection": detection,
        "reschedule": (pending - wall_kill - detection) if pending else float("nan"),
        "placement": (scheduled - pending) if scheduled and pending else float("nan"),
        "container_start": (running - scheduled) if running and scheduled else float("nan"),
        "total": total,
    }
    log(
        f"run {run}: total {total:.2f} s = detection {phases['detection']:.2f} + reschedule "
        f"{phases['reschedule']:.2f} + placement {phases['placement']:.2f} + start "
        f"{phases['container_start']:.2f} ({victim.node_id} killed)"
    )
    cluster.start_node(victim.index)
    cluster.wait_ready(60)
    wait_for(lambda: _all_alive(cluster), 60, what="every node alive again")
    return phases


def _all_alive(cluster: LocalCluster) -> bool:
    with Client(cluster.endpoints, timeout=2.0) as client:
        return all(n.status == "alive" for n in client.nodes(stale=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--probe-interval", help="[gossip] probe_interval (default: the node's)")
    parser.add_argument("--probe-timeout", help="[gossip] probe_timeout (default: the node's)")
    parser.add_argument("--suspicion-mult", type=int, help="[gossip] suspicion_mult (default: the node's)")
    parser.add_argument("--reschedule-after", help="[scheduler] reschedule_after (default: the node's)")
    args = parser.parse_args()
    settings = default_settings()
    for section, key, value in (
        ("gossip", "probe_interval", args.probe_interval),
        ("gossip", "probe_timeout", args.probe_timeout),
        ("gossip", "suspicion_mult", args.suspicion_mult),
        ("scheduler", "reschedule_after", args.reschedule_after),
    ):
        if value is not None:
            settings[section][key] = value
    log(f"settings: {settings}")
    samples: dict[str, list[float]] = {phase: [] for phase in PHASES}
    with LocalCluster(3, Path(tempfile.mkdtemp(prefix="orion-bench-heal-")), settings=settings) as cluster:
        cluster.start()
        wait_for(lambda: _all_alive(cluster), 60, what="every node alive")
        for run in range(1, args.runs + 1):
            for phase, value in heal_once(cluster, run).items():
                samples[phase].append(value)
    result = {
        "settings": settings,
        "seconds": {
            phase: summary([v for v in values if v == v], 1.0, 2) for phase, values in samples.items()
        },
        "samples": samples,
    }
    log(f"total p50 {result['seconds']['total']['p50']} s over {args.runs} runs")
    for phase in PHASES[:-1]:
        log(f"  {phase}: p50 {result['seconds'][phase]['p50']} s")
    save_result("heal", result)


if __name__ == "__main__":
    main()
