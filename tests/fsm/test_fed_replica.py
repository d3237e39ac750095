"""A worker's fed replica (issue 20): ClusterState.replace_node_tasks holds one node's tasks as
the feed gave them, and is dropped when the node starts replicating the log."""

from __future__ import annotations

import pytest

from orion.fsm import commands as c
from orion.fsm.state import ClusterState
from orion.model import Task, TaskState, VolumeMount
from orion.volumes.spec import Volume, VolumeSpec


def _task(task_id: str, state: str = TaskState.SCHEDULED, node: str = "w1", name: str = "") -> Task:
    return Task(id=task_id, name=name or task_id, image="busybox", state=state, node_id=node, memory=1 << 20)


def test_each_answer_replaces_the_node_tasks_whole() -> None:
    fsm = ClusterState()
    fsm.replace_node_tasks("w1", [_task("t1"), _task("t2")], ["gone-1"], index=7)
    assert [t.id for t in fsm.tasks_on_node("w1")] == ["t1", "t2"]
    assert fsm.held_port_tasks("w1") == ["gone-1"]  # a task that left: not in this partial state
    assert fsm.allocated("w1")[0] == 2 << 20
    assert fsm.fed_index == 7 and fsm.applied_index == 0
    fsm.replace_node_tasks("w1", [_task("t2", TaskState.RUNNING), _task("t3")], [], index=9)
    assert [(t.id, t.state) for t in fsm.tasks_on_node("w1")] == [
        ("t2", TaskState.RUNNING),
        ("t3", TaskState.SCHEDULED),
    ]
    assert fsm.task("t1") is None and fsm.task_by_name("t1") is None
    assert fsm.held_port_tasks("w1") == []
    fsm.replace_node_tasks("w1", [], [], index=10)
    assert fsm.tasks() == [] and fsm.allocated("w1") == (0, 0.0, 0)


def test_a_task_of_another_node_is_refused_and_changes_nothing() -> None:
    fsm = ClusterState()
    fsm.replace_node_tasks("w1", [_task("t1")], [], index=3)
    with pytest.raises(ValueError, match="tasks: task t9 is on node 'w2'"):
        fsm.replace_node_tasks("w1", [_task("t2"), _task("t9", node="w2")], [], index=4)
    assert [t.id for t in fsm.tasks()] == ["t1"] and fsm.fed_index == 3


def test_the_first_entry_applied_drops_the_fed_state_so_the_log_applies_from_its_start() -> None:
    fsm = ClusterState()
    fsm.replace_node_tasks("w1", [_task("t1", name="web")], ["old"], index=500)
    # Entry 1 of the log (a snapshot-less catch-up from the start) is not "already applied",
    # and the task the log submits under the same id does not collide with the fed copy.
    result = fsm.apply(1, c.encode_command(c.SubmitTask(task=Task(id="t1", name="web", image="x"), at=1.0)))
    assert isinstance(result, Task) and result.state == TaskState.PENDING
    assert fsm.fed_index == 0 and fsm.applied_index == 1
    assert fsm.tasks_on_node("w1") == [] and fsm.held_port_tasks("w1") == []
    with pytest.raises(ValueError, match="replicates the log"):
        fsm.replace_node_tasks("w1", [], [], index=501)


def test_a_snapshot_install_replaces_the_fed_state() -> None:
    source = ClusterState()
    source.apply(1, c.encode_command(c.SubmitTask(task=Task(id="s1", name="s1", image="x"), at=1.0)))
    fsm = ClusterState()
    fsm.replace_node_tasks("w1", [_task("t1")], ["old"], index=500)
    fsm.restore(source.snapshot())
    assert [t.id for t in fsm.tasks()] == ["s1"] and fsm.fed_index == 0 and fsm.applied_index == 1
    assert fsm.held_port_tasks("w1") == []


def test_fed_volumes_replace_the_volumes_table_and_go_with_the_fed_state() -> None:
    fsm = ClusterState()
    mounting = Task(
        id="db",
        name="db",
        image="x",
        node_id="w1",
        state=TaskState.RUNNING,
        volumes=[VolumeMount(volume="data", target="/d")],
    )
    data = Volume(name="data", uid="u1", spec=VolumeSpec(name="data"), node_id="w1", state="ready")
    fsm.replace_node_tasks("w1", [mounting], [], index=4, volumes=[data])
    assert fsm.volumes() == [data] and fsm.volume("data") == data
    assert fsm.volume_users("data") == [mounting] and fsm.volume_writers("data") == [mounting]
    fsm.replace_node_tasks("w1", [], [], index=5)
    assert fsm.volumes() == [] and fsm.volume_users("data") == []
    fsm.replace_node_tasks("w1", [mounting], [], index=6, volumes=[data])
    fsm.apply(1, c.encode_command(c.SubmitTask(task=Task(id="s1", name="s1", image="x"), at=1.0)))
    assert fsm.volumes() == [] and fsm.volume_users("data") == []  # the log's own table from here on
