"""The scheduler's volume filter: pinned to the volume's node, its own pending reasons, one
single-writer user per batch."""

from __future__ import annotations

from orion.model import NodeMeta, Task, VolumeMount
from orion.scheduler.judge import schedule
from orion.scheduler.types import NodeView
from orion.scheduler.volumes import VolumeView


def _node(node_id: str, status: str = "alive") -> NodeView:
    return NodeView(node_id, status, NodeMeta(id=node_id, memory_total=1 << 30, cpu_total=4.0))


def _task(task_id: str, read_only: bool = False) -> Task:
    return Task(
        id=task_id,
        name=task_id,
        image="busybox",
        volumes=[VolumeMount(volume="data", target="/d", read_only=read_only)],
    )


NODES = [_node("node1"), _node("node2"), _node("node3")]


def test_a_bound_volume_pins_its_task_to_its_node() -> None:
    volumes = {"data": VolumeView("data", node_id="node2", state="ready")}
    for seed in range(5):
        plan = schedule(NODES, [_task("t1")], "spread", seed, volumes=volumes)
        assert plan.assignments == [("t1", "node2")]


def test_a_volume_on_a_dead_node_keeps_the_task_pending_with_its_reason() -> None:
    nodes = [_node("node1"), _node("node2", "dead")]
    plan = schedule(nodes, [_task("t1")], "spread", 1, volumes={"data": VolumeView("data", node_id="node2")})
    assert plan.assignments == []
    assert plan.pending_reasons["t1"] == "volume data lives on node2, which is dead"


def test_a_single_writer_volume_goes_to_one_writer_per_batch_and_readers_share_it() -> None:
    volumes = {"data": VolumeView("data")}
    plan = schedule(
        NODES, [_task("t1"), _task("t2"), _task("r1", read_only=True)], "spread", 3, volumes=volumes
    )
    placed = dict(plan.assignments)
    assert set(placed) == {"t1", "r1"}
    assert placed["r1"] == placed["t1"]  # the first placement bound the volume to its node
    assert plan.pending_reasons["t2"] == "volume data is single-writer and in use by task t1"


def test_a_multi_volume_takes_several_writers_and_a_lost_one_none() -> None:
    multi = {"data": VolumeView("data", node_id="node1", access="multi", writers=("old",))}
    assert len(schedule(NODES, [_task("t1"), _task("t2")], "spread", 1, volumes=multi).assignments) == 2
    lost = {"data": VolumeView("data", node_id="node1", state="lost")}
    plan = schedule(NODES, [_task("t1")], "spread", 1, volumes=lost)
    assert plan.pending_reasons["t1"].startswith("volume data is lost")
    plan = schedule(NODES, [_task("t1")], "spread", 1, volumes={})
    assert plan.pending_reasons["t1"] == "volume data does not exist"
