"""Disk as the only constraint that rules nodes out, in a fleet large enough for the sampled
walk (``nomad_limit``) that real clusters use: no placement may overrun a node's disk."""

from __future__ import annotations

from collections import Counter

import pytest

from orion.model import NodeMeta, Task
from orion.scheduler import NodeView, nomad_limit, schedule

GiB = 1024**3
FLEET = 100
BIG = {f"n{i:03d}" for i in range(0, FLEET, 10)}  # 10 of the 100 nodes have room for the tasks


def fleet() -> list[NodeView]:
    """Memory and CPU to spare everywhere; only the disk differs (10 GiB or 100 GiB)."""
    nodes = []
    for i in range(FLEET):
        node_id = f"n{i:03d}"
        disk = 100 * GiB if node_id in BIG else 10 * GiB
        meta = NodeMeta(id=node_id, memory_total=64 * GiB, cpu_total=32.0, disk_total=disk)
        nodes.append(NodeView(id=node_id, status="alive", meta=meta))
    return nodes


def disk_task(task_id: str) -> Task:
    return Task(
        id=task_id, name=task_id, image="orion-busybox:latest", memory=64 * 1024**2, cpu=0.1, disk=40 * GiB
    )


@pytest.mark.parametrize("strategy", ["binpack", "spread"])
@pytest.mark.parametrize("limit", [nomad_limit(FLEET), None])
def test_a_task_needing_disk_lands_only_where_the_disk_has_room(strategy: str, limit: int | None) -> None:
    assert nomad_limit(FLEET) < len(BIG)  # the walk samples fewer nodes than there are fits
    tasks = [disk_task(f"t{i:02d}") for i in range(2 * len(BIG) + 1)]  # one more than fits
    plan = schedule(fleet(), tasks, strategy, seed=7, limit=limit)
    per_node = Counter(node_id for _, node_id in plan.assignments)
    assert set(per_node) <= BIG, sorted(set(per_node) - BIG)
    assert max(per_node.values()) == 2  # 2 x 40 GiB fit in 100 GiB, a third does not
    assert len(plan.assignments) == 2 * len(BIG)
    (left,) = plan.pending_reasons.values()
    assert "0/100 nodes fit: 100 insufficient disk" in left


def test_tasks_without_disk_still_use_the_small_disks() -> None:
    """The filter above is the disk's: with no disk asked, the sampled walk uses the whole fleet."""
    tasks = [Task(id=f"t{i:02d}", name=f"t{i:02d}", image="orion-busybox:latest", cpu=0.1) for i in range(50)]
    plan = schedule(fleet(), tasks, "spread", seed=7, limit=nomad_limit(FLEET))
    assert {node_id for _, node_id in plan.assignments} - BIG
