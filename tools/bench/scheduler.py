#!/usr/bin/env python3
"""Placements per second of the pure scheduler (the Judge) on simulated fleets.

Method: build N simulated nodes of mixed shapes ("roomy": 16/32/64 GiB with 4/8/16 cores;
"tight": 4/8 GiB with 2 cores, which the batch saturates), a zone tag, 2% of them not alive,
up to 30% already allocated, and T pending tasks of mixed sizes (128 MiB to
2 GiB, 0.1 to 1 core, 10% with a zone selector). Time one ``schedule()`` call (which includes
building its working copy of the fleet) and divide the tasks it placed by the wall time.
"decisions/s" also counts tasks left pending (each with its reason computed).
Each case runs in exact mode (every feasible node scored) and with Nomad's limit
(log2(N) feasible nodes scored per task). Targets: >= 1,500/s at 1,000 nodes and
>= 400/s at 10,000 nodes, with 10,000 pending tasks.

    .venv/bin/python -m tools.bench.scheduler                # all cases
    .venv/bin/python -m tools.bench.scheduler --quick        # smaller exact runs at 10k nodes
"""

from __future__ import annotations

import argparse
import random
import time

from orion.model import NodeMeta, Task
from orion.scheduler import NodeView, nomad_limit, schedule

GiB = 1024**3
MiB = 1024**2


SHAPES = {
    "roomy": [(16 * GiB, 4.0), (32 * GiB, 8.0), (64 * GiB, 16.0)],
    # Small nodes: the batch saturates them, so most tasks end pending with a reason.
    "tight": [(4 * GiB, 2.0), (8 * GiB, 2.0)],
}


def make_nodes(count: int, rng: random.Random, fleet: str) -> list[NodeView]:
    nodes = []
    for i in range(count):
        memory, cpu = rng.choice(SHAPES[fleet])
        meta = NodeMeta(
            id=f"node{i}",
            memory_total=memory,
            cpu_total=cpu,
            disk_total=200 * GiB,
            tags={"zone": "abc"[i % 3]},
        )
        used = rng.random() * 0.3
        status = "dead" if rng.random() < 0.02 else "alive"
        nodes.append(
            NodeView(
                id=meta.id,
                status=status,
                meta=meta,
                allocated_memory=int(memory * used),
                allocated_cpu=cpu * used,
                allocated_disk=0,
            )
        )
    return nodes


def make_tasks(count: int, rng: random.Random) -> list[Task]:
    tasks = []
    for i in range(count):
        selectors = {"zone": rng.choice("abc")} if rng.random() < 0.1 else {}
        tasks.append(
            Task(
                id=f"task{i}",
                name=f"task{i}",
                image="orion-busybox:latest",
                memory=rng.randint(128, 2048) * MiB,
                cpu=round(rng.uniform(0.1, 1.0), 2),
                disk=rng.randint(0, 4) * GiB,
                node_selectors=selectors,
            )
        )
    return tasks


def run_case(nodes: list[NodeView], tasks: list[Task], strategy: str, limit: int | None) -> tuple[int, float]:
    started = time.perf_counter()
    plan = schedule(nodes, tasks, strategy, seed=1, limit=limit)
    elapsed = time.perf_counter() - started
    assert len(plan.assignments) + len(plan.pending_reasons) == len(tasks)
    return len(plan.assignments), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="exact mode at 10k nodes with 1,000 tasks only")
    args = parser.parse_args()
    header = (
        "fleet",
        "nodes",
        "tasks",
        "strategy",
        "mode",
        "placed",
        "seconds",
        "placements/s",
        "decisions/s",
    )
    row = "{:>5} {:>6} {:>6} {:>8} {:>8} {:>7} {:>8} {:>13} {:>12}"
    print(row.format(*header))
    for fleet, node_count in (("roomy", 1_000), ("roomy", 10_000), ("tight", 1_000), ("tight", 10_000)):
        nodes = make_nodes(node_count, random.Random(2026), fleet)
        for strategy in ("binpack", "spread"):
            for limit in (nomad_limit(node_count), None):
                task_count = args.tasks
                if limit is None and node_count >= 10_000 and args.quick:
                    task_count = min(task_count, 1_000)
                tasks = make_tasks(task_count, random.Random(7))
                placed, elapsed = run_case(nodes, tasks, strategy, limit)
                mode = "exact" if limit is None else f"limit={limit}"
                cells = (fleet, node_count, task_count, strategy, mode, placed, f"{elapsed:.2f}")
                rates = (f"{placed / elapsed:,.0f}", f"{task_count / elapsed:,.0f}")
                print(row.format(*cells, *rates), flush=True)


if __name__ == "__main__":
    main()
