"""orion/fsm/touched.py: what applied entries touched, derived from the commands and from every
task version the state stores, as the Raft actor's listeners collect it (RaftListeners)."""

from __future__ import annotations

from typing import get_args

import msgspec
import pytest

from orion.actors.raft_listeners import RaftListeners
from orion.fsm import commands as c
from orion.fsm.snapshot import encode_snapshot
from orion.fsm.state import ClusterState
from orion.fsm.touched import (
    EVERYTHING,
    EVERYTHING_KIND,
    NOTHING,
    RECORD_KINDS,
    Touched,
    record_kinds,
)
from orion.model import NodeMeta, NodeStatus, Task
from orion.services.spec import ServiceSpec, TaskTemplate

AT = 1_000.0


def test_every_command_type_is_classified() -> None:
    """A command type added to the union without a line in RECORD_KINDS fails here (and would
    wake every loop at run time, as an unknown one does)."""
    assert set(RECORD_KINDS) == set(get_args(c.Command))
    for kinds in RECORD_KINDS.values():
        assert EVERYTHING_KIND not in kinds


@pytest.mark.parametrize("command_type", get_args(c.Command), ids=lambda t: t.__name__)
def test_the_kinds_of_each_encoded_command_are_its_types(command_type: type) -> None:
    tag = command_type.__struct_config__.tag
    data = msgspec.msgpack.encode({"op": tag, "at": AT})
    assert record_kinds(data) == RECORD_KINDS[command_type]


def test_an_unknown_or_undecodable_command_touched_everything() -> None:
    assert record_kinds(msgspec.msgpack.encode({"op": "launch_rockets", "at": AT})) == {EVERYTHING_KIND}
    assert record_kinds(b"\xc1 not msgpack") == {EVERYTHING_KIND}
    assert record_kinds(msgspec.msgpack.encode([1, 2])) == {EVERYTHING_KIND}


class Applier:
    """A state with the Raft actor's listeners on it, applied to as the Raft actor does."""

    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.listeners = RaftListeners(self.fsm, "inc")

    def apply(self, *commands: c.Command) -> Touched:
        for command in commands:
            data = c.encode_command(command)
            self.fsm.apply(self.fsm.applied_index + 1, data)
            self.listeners.applied(data)
        return self.listeners.take_touched()


def node(node_id: str) -> c.UpsertNode:
    return c.UpsertNode(meta=NodeMeta(id=node_id, memory_total=1 << 30, cpu_total=4.0), at=AT)


def task(task_id: str, memory: int = 0) -> Task:
    return Task(id=task_id, name=task_id, image="busybox", memory=memory)


def test_an_unplaceable_submit_touches_tasks_and_no_node() -> None:
    applier = Applier()
    applier.apply(node("n1"))
    touched = applier.apply(c.SubmitTask(task=task("big", memory=1 << 40), at=AT))
    assert touched.tasks and touched.fresh_pending
    assert not (touched.everything or touched.nodes or touched.services or touched.service_tasks)
    assert touched.task_nodes == frozenset() and not touched.concerns_node("n1")
    # Once judged, nothing waits for the scheduler: a submit judged by the leader stays so.
    touched = applier.apply(c.SetPending(task_ids=["big"], reason="no node fits", at=AT))
    assert touched.tasks and not touched.fresh_pending
    judged = c.SubmitTask(task=task("big2", memory=1 << 40), reason="no node fits", judged_at=2, at=AT)
    touched = applier.apply(judged)
    assert touched == Touched(tasks=True)


def test_placement_and_rescheduling_touch_the_nodes_involved_and_say_which_are_gone() -> None:
    applier = Applier()
    applier.apply(node("n1"), node("n2"), c.SubmitTask(task=task("t1"), at=AT))
    touched = applier.apply(c.AssignTasks(assignments=[("t1", "n1")], at=AT))
    assert touched.task_nodes == {"n1"} and touched.gone_nodes == frozenset()
    assert touched.concerns_node("n1") and not touched.concerns_node("n2")
    touched = applier.apply(c.SetNodeStatus(node_id="n1", status=NodeStatus.DEAD, at=AT))
    assert touched.nodes and touched.task_nodes == frozenset()
    touched = applier.apply(c.RescheduleNodeTasks(node_id="n1", reason="dead", at=AT))
    assert touched.task_nodes == {"n1"} and touched.gone_nodes == {"n1"} and touched.fresh_pending


def test_port_holds_name_the_node_that_holds_them() -> None:
    applier = Applier()
    bound = msgspec.structs.replace(task("p1"), port_bindings={"80/tcp": "8080"})
    applier.apply(node("n1"), node("n2"), c.SubmitTask(task=bound, at=AT))
    applier.apply(c.AssignTasks(assignments=[("p1", "n1")], at=AT))
    applier.apply(c.SetNodeStatus(node_id="n1", status=NodeStatus.DEAD, at=AT))
    applier.apply(c.RescheduleNodeTasks(node_id="n1", reason="dead", at=AT))
    applier.apply(c.AssignTasks(assignments=[("p1", "n2")], at=AT))
    assert applier.fsm.held_port_tasks("n1") == ["p1"]
    touched = applier.apply(c.ReleasePorts(node_id="n1", task_ids=["p1"], at=AT))
    assert "n1" in touched.task_nodes and "n1" in touched.gone_nodes


def test_services_and_their_tasks_are_told_apart_from_one_off_tasks() -> None:
    applier = Applier()
    spec = ServiceSpec(name="web", template=TaskTemplate(image="web:1"), replicas=1)
    touched = applier.apply(c.CreateService(spec=spec, at=AT))
    assert touched.services and not touched.service_tasks
    service = applier.fsm.service("web")
    assert service is not None
    replica = msgspec.structs.replace(
        task("web-1"), name="web.1", service="web", slot=1, version=service.template_version
    )
    touched = applier.apply(c.ServiceStep(name="web", expected_version=service.version, add=[replica], at=AT))
    assert touched.services and touched.service_tasks and touched.fresh_pending


def test_node_network_and_volume_records() -> None:
    applier = Applier()
    assert applier.apply(node("n1")) == Touched(nodes=True)
    touched = applier.apply(c.AllocateSubnet(node_id="n1", cluster_cidr="10.99.0.0/16", at=AT))
    assert touched.nodes and touched.network and not touched.tasks


def test_a_replaced_state_or_an_unexplained_change_touched_everything() -> None:
    applier = Applier()
    applier.apply(node("n1"))
    applier.listeners.state_replaced()
    assert applier.listeners.take_touched() == EVERYTHING
    assert applier.listeners.take_touched() == EVERYTHING  # nothing recorded: look anyway
    applier.fsm.restore(encode_snapshot(applier.fsm.snapshot_source()))
    applier.listeners.state_replaced()
    assert applier.apply(c.SubmitTask(task=task("t"), at=AT)).everything


def test_a_fed_state_dropped_by_the_first_entry_touched_everything() -> None:
    applier = Applier()
    applier.fsm.replace_node_tasks("n1", [msgspec.structs.replace(task("fed"), node_id="n1")], [], 5)
    data = c.encode_command(node("n1"))
    fed = applier.fsm.fed_index != 0
    applier.fsm.apply(1, data)
    applier.listeners.applied(data, replaced=fed)
    assert applier.listeners.take_touched() == EVERYTHING


def test_union_keeps_what_either_touched() -> None:
    a = Touched(tasks=True, task_nodes=frozenset({"n1"}))
    b = Touched(services=True, task_nodes=frozenset({"n2"}), gone_nodes=frozenset({"n2"}), fresh_pending=True)
    both = a.union(b)
    assert both == Touched(
        tasks=True,
        services=True,
        task_nodes=frozenset({"n1", "n2"}),
        gone_nodes=frozenset({"n2"}),
        fresh_pending=True,
    )
    assert NOTHING.union(EVERYTHING).everything and not NOTHING.union(NOTHING).concerns_node("n1")
