"""The scheduler places nothing on a node that is ineligible or draining, and says so in the
pending reason (a draining node is named as such, apart from one only made ineligible)."""

from __future__ import annotations

from orion.model import NodeMeta, NodeStatus, Task
from orion.scheduler.judge import schedule
from orion.scheduler.types import NodeView


def node(node_id: str, *, eligible: bool = True, draining: bool = False) -> NodeView:
    meta = NodeMeta(id=node_id, memory_total=1 << 30, cpu_total=2.0)
    return NodeView(node_id, NodeStatus.ALIVE, meta, eligible=eligible, draining=draining)


def test_ineligible_and_draining_nodes_take_nothing_and_the_reason_says_why() -> None:
    nodes = [node("a", eligible=False), node("b", eligible=False, draining=True), node("c")]
    tasks = [Task(id=f"t{i}", name=f"t{i}", image="x", memory=600 << 20) for i in range(2)]
    plan = schedule(nodes, tasks, "binpack", seed=1)
    assert plan.assignments == [("t0", "c")]
    assert plan.pending_reasons["t1"] == (
        "0/3 nodes fit: 1 insufficient memory (need 600.0 MiB, largest free 424.0 MiB), "
        "1 draining, 1 not eligible"
    )
