"""The Judge against a plain reference, on random fleets and batches (Hypothesis)."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from orion.model import NodeMeta, Task
from orion.scheduler import NodeView, schedule

GiB = 1024**3

# Capacities and requests are small multiples of powers of two, so every utilisation is an
# exact float and the reference's arithmetic cannot round differently from the Judge's.
nodes_strategy = st.lists(
    st.builds(
        lambda memory, cpu, used_memory, used_cpu, status, zone: (
            memory,
            cpu,
            used_memory,
            used_cpu,
            status,
            zone,
        ),
        memory=st.sampled_from([4, 8, 16]),
        cpu=st.sampled_from([2.0, 4.0]),
        used_memory=st.integers(0, 4),
        used_cpu=st.sampled_from([0.0, 0.5, 1.0]),
        status=st.sampled_from(["alive", "alive", "alive", "suspect", "dead"]),
        zone=st.sampled_from(["a", "b"]),
    ),
    max_size=12,
)
tasks_strategy = st.lists(
    st.tuples(st.integers(0, 6), st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.sampled_from([None, "a", "b"])),
    max_size=30,
)


def build(raw_nodes: list[tuple], raw_tasks: list[tuple]) -> tuple[list[NodeView], list[Task]]:
    nodes = [
        NodeView(
            id=f"n{i}",
            status=status,
            meta=NodeMeta(id=f"n{i}", memory_total=memory * GiB, cpu_total=cpu, tags={"zone": zone}),
            allocated_memory=used_memory * GiB,
            allocated_cpu=used_cpu,
        )
        for i, (memory, cpu, used_memory, used_cpu, status, zone) in enumerate(raw_nodes)
    ]
    tasks = [
        Task(
            id=f"t{i}",
            name=f"t{i}",
            image="img",
            memory=memory * GiB,
            cpu=cpu,
            node_selectors={"zone": zone} if zone else {},
        )
        for i, (memory, cpu, zone) in enumerate(raw_tasks)
    ]
    return nodes, tasks


def reference(nodes: list[NodeView], tasks: list[Task], strategy: str, seed: int) -> list[tuple[str, str]]:
    """The definition, written plainly: filter, score every node, first best in seeded order."""
    order = sorted(nodes, key=lambda node: node.id)
    random.Random(seed).shuffle(order)
    used = {node.id: [node.allocated_memory, node.allocated_cpu] for node in order}
    placed = []
    for task in tasks:
        best, best_score = None, None
        for node in order:
            memory_free = node.meta.memory_total - used[node.id][0]
            cpu_free = node.meta.cpu_total - used[node.id][1]
            feasible = (
                node.status == "alive"
                and all(node.meta.tags.get(k) == v for k, v in task.node_selectors.items())
                and memory_free >= task.memory
                and cpu_free >= task.cpu
            )
            if not feasible:
                continue
            if strategy == "binpack":
                memory_after = (used[node.id][0] + task.memory) / node.meta.memory_total
                cpu_after = (used[node.id][1] + task.cpu) / node.meta.cpu_total
                score = (memory_after + cpu_after) / 2
            else:
                score = memory_free
            if best_score is None or score > best_score:
                best, best_score = node, score
        if best is not None:
            used[best.id][0] += task.memory
            used[best.id][1] += task.cpu
            placed.append((task.id, best.id))
    return placed


@settings(max_examples=150, deadline=None)
@given(nodes_strategy, tasks_strategy, st.sampled_from(["binpack", "spread"]), st.integers(0, 2**32))
def test_exact_mode_matches_the_reference(raw_nodes, raw_tasks, strategy, seed) -> None:
    nodes, tasks = build(raw_nodes, raw_tasks)
    plan = schedule(nodes, tasks, strategy, seed)
    assert plan.assignments == reference(nodes, tasks, strategy, seed)


@settings(max_examples=150, deadline=None)
@given(
    nodes_strategy,
    tasks_strategy,
    st.sampled_from(["binpack", "spread"]),
    st.integers(0, 2**32),
    st.sampled_from([None, 1, 2, 3]),
)
def test_every_plan_respects_capacity_and_explains_every_node(
    raw_nodes, raw_tasks, strategy, seed, limit
) -> None:
    nodes, tasks = build(raw_nodes, raw_tasks)
    plan = schedule(nodes, tasks, strategy, seed, limit=limit)
    by_id = {node.id: node for node in nodes}
    tasks_by_id = {task.id: task for task in tasks}
    assert len(plan.assignments) + len(plan.pending_reasons) == len(tasks)
    used = {node.id: [node.allocated_memory, node.allocated_cpu] for node in nodes}
    for task_id, node_id in plan.assignments:
        task, node = tasks_by_id[task_id], by_id[node_id]
        assert node.status == "alive"
        assert all(node.meta.tags.get(k) == v for k, v in task.node_selectors.items())
        used[node_id][0] += task.memory
        used[node_id][1] += task.cpu
        assert used[node_id][0] <= max(node.meta.memory_total, node.allocated_memory)
        assert used[node_id][1] <= max(node.meta.cpu_total, node.allocated_cpu)
    for task_id, reason in plan.pending_reasons.items():
        task = tasks_by_id[task_id]
        # Free resources only shrink in a batch, so a pending task fits nowhere at the end either.
        assert not any(
            node.status == "alive"
            and all(node.meta.tags.get(k) == v for k, v in task.node_selectors.items())
            and node.meta.memory_total - used[node.id][0] >= task.memory
            and node.meta.cpu_total - used[node.id][1] >= task.cpu
            for node in nodes
        )
        header, _, counts = reason.partition(": ")
        assert header == f"0/{len(nodes)} nodes fit"
        if nodes:
            assert sum(int(n) for n in re.findall(r"(?:^|, )(\d+) ", counts)) == len(nodes)
