"""Stored tasks share empty containers and repeated strings (orion/fsm/compact.py), the name
index keeps a lone id bare, and none of it changes what the state answers or snapshots."""

from __future__ import annotations

import gc

from orion.fsm.commands import (
    AssignTasks,
    Command,
    RemoveTask,
    ReportTaskState,
    StopTask,
    SubmitTask,
    UpsertNode,
    encode_command,
)
from orion.fsm.compact import EMPTY_DICT, EMPTY_LIST, ZERO, compact_task
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task, TaskEvent, TaskState

GiB = 1 << 30


class Driver:
    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = 0

    def __call__(self, command: Command) -> object:
        self.index += 1
        return self.fsm.apply(self.index, encode_command(command))


def submitted(task_id: str, name: str = "", **fields: object) -> SubmitTask:
    return SubmitTask(
        at=1.0,
        task=Task(
            id=task_id,
            name=name or f"name-{task_id}",
            image="registry.local/app:1.2",
            command=["sleep", "3600"],
            memory=GiB,
            **{"node_selectors": {"zone": "a"}, **fields},
        ),
        reason="no node matches the node selectors",
    )


def test_stored_tasks_share_empty_containers_and_repeated_strings() -> None:
    apply = Driver()
    apply(submitted("t1"))
    apply(submitted("t2"))
    first, second = apply.fsm.task("t1"), apply.fsm.task("t2")
    assert first is not None and second is not None
    for name in ("port_bindings", "env", "host_ports"):
        assert getattr(first, name) is EMPTY_DICT and getattr(second, name) is EMPTY_DICT
    for name in ("port_holds", "restart_times", "volumes"):
        assert getattr(first, name) is EMPTY_LIST and getattr(second, name) is EMPTY_LIST
    assert first.image is second.image
    assert first.reason is second.reason == "no node matches the node selectors"
    assert first.command is not None and second.command is not None
    assert first.command == ["sleep", "3600"] and first.command[0] is second.command[0]
    assert first.node_selectors == {"zone": "a"}
    assert next(iter(first.node_selectors.values())) is next(iter(second.node_selectors.values()))
    assert EMPTY_DICT == {} and EMPTY_LIST == []  # nothing was written into the shared ones


def test_changes_keep_sharing_and_never_write_into_the_shared_empties() -> None:
    apply = Driver()
    apply(UpsertNode(at=0.0, meta=NodeMeta(id="n1", memory_total=8 * GiB, cpu_total=4.0)))
    apply(submitted("t1", node_selectors={}))
    apply(AssignTasks(at=2.0, assignments=[("t1", "n1")]))
    apply(ReportTaskState(at=3.0, task_id="t1", node_id="n1", state=TaskState.RUNNING))
    apply(StopTask(at=4.0, task_id="t1"))
    stored = apply.fsm.task("t1")
    assert stored is not None and stored.state == TaskState.STOPPED
    assert stored.node_id == "n1" and stored.host_ports is EMPTY_DICT and stored.port_holds is EMPTY_LIST
    assert [event.state for event in stored.history] == ["Pending", "Scheduled", "Running", "Stopped"]
    assert EMPTY_DICT == {} and EMPTY_LIST == []


def test_tasks_and_history_lines_are_not_tracked_by_the_collector() -> None:
    apply = Driver()
    apply(submitted("t1"))
    stored = apply.fsm.task("t1")
    assert stored is not None
    assert not gc.is_tracked(stored)
    assert not gc.is_tracked(stored.history[0])


def test_compact_task_changes_no_value() -> None:
    original = Task(
        id="t1",
        name="web",
        image="img",
        env={"K": "v" * 500},
        history=[TaskEvent(at=1.0, state="Pending", reason="submitted")],
    )
    compacted = compact_task(original)
    assert compacted == original
    assert compacted.port_bindings is EMPTY_DICT and compacted.volumes is EMPTY_LIST
    assert compacted.env["K"] == "v" * 500  # long values are kept as they are, not interned


def test_snapshot_of_a_compacted_state_is_byte_identical_after_restore() -> None:
    apply = Driver()
    for number in range(5):
        apply(submitted(f"t{number}", name="shared-name" if number % 2 else ""))
    snapshot = apply.fsm.snapshot()
    restored = ClusterState()
    restored.restore(snapshot)
    assert restored.snapshot() == snapshot
    assert restored.tasks() == apply.fsm.tasks()
    first = restored.task("t0")
    assert first is not None and first.env is EMPTY_DICT


def test_name_lookup_with_one_and_with_several_tasks_of_a_name() -> None:
    apply = Driver()
    apply(submitted("solo", name="solo"))
    apply(submitted("a", name="twin"))
    apply(submitted("b", name="twin"))
    solo = apply.fsm.task_by_name("solo")
    assert solo is not None and solo.id == "solo"
    latest = apply.fsm.task_by_name("twin")
    assert latest is not None and latest.id == "b"
    apply(StopTask(at=2.0, task_id="b"))
    active = apply.fsm.task_by_name("twin")
    assert active is not None and active.id == "a"  # the active one wins over a newer stopped one
    apply(RemoveTask(at=3.0, task_id="b"))
    apply(RemoveTask(at=3.0, task_id="a", force=True))
    assert apply.fsm.task_by_name("twin") is None
    apply(RemoveTask(at=3.0, task_id="solo", force=True))
    assert apply.fsm.task_by_name("solo") is None
    apply(submitted("c", name="twin"))
    again = apply.fsm.task_by_name("twin")
    assert again is not None and again.id == "c"


def test_equal_numbers_are_shared_and_encode_as_before() -> None:
    apply = Driver()
    apply(submitted("t1", cpu=0.5, disk=3 * GiB))
    apply(submitted("t2", cpu=0.5, disk=3 * GiB))
    apply(submitted("t3"))
    apply(submitted("t4", cpu=-0.0, stop_grace=0.0))
    first, second, plain, negative = (apply.fsm.task(t) for t in ("t1", "t2", "t3", "t4"))
    assert first is not None and second is not None and plain is not None and negative is not None
    assert first.cpu is second.cpu and first.disk is second.disk and first.memory is second.memory
    assert plain.cpu is ZERO and plain.drain_at is ZERO and first.drain_at is ZERO
    # -0.0 encodes differently from 0.0: kept as it is; a float never becomes an equal int.
    assert str(negative.cpu) == "-0.0" and negative.stop_grace is ZERO
    assert compact_task(Task(id="t", name="t", image="i", cpu=2, memory=GiB)).cpu == 2
    assert type(compact_task(Task(id="t", name="t", image="i", cpu=2)).cpu) is int
    snapshot = apply.fsm.snapshot()
    restored = ClusterState()
    restored.restore(snapshot)
    assert restored.snapshot() == snapshot


def test_tasks_placed_at_submit_are_stored_compacted() -> None:
    """A submit placed by the leader stores a Pending and then a Scheduled version: both share
    what equal tasks share, whichever is stored whole and whichever as a shape's row."""
    apply = Driver()
    apply(UpsertNode(at=0.0, meta=NodeMeta(id="n1", memory_total=8 * GiB, cpu_total=4.0, tags={"zone": "a"})))
    for number in range(3):
        placed = submitted(f"t{number}")
        apply(SubmitTask(at=1.0, task=placed.task, node_id="n1"))
    tasks = [apply.fsm.task(f"t{number}") for number in range(3)]
    assert all(task is not None and task.state == TaskState.SCHEDULED for task in tasks)
    first, *others = tasks
    assert first is not None
    for other in others:
        assert other is not None
        assert other.port_bindings is EMPTY_DICT and other.env is EMPTY_DICT
        assert other.image is first.image and other.reason is first.reason
        assert next(iter(other.node_selectors.values())) is next(iter(first.node_selectors.values()))
        assert [event.state for event in other.history] == ["Pending", "Scheduled"]
        assert other.history[1].node_id is first.history[1].node_id


def test_restored_histories_are_interned_in_whole_and_packed_rows() -> None:
    apply = Driver()
    apply(UpsertNode(at=0.0, meta=NodeMeta(id="n1", memory_total=8 * GiB, cpu_total=4.0)))
    for number in range(3):
        apply(submitted(f"t{number}", node_selectors={}))
        apply(AssignTasks(at=2.0, assignments=[(f"t{number}", "n1")]))
    restored = ClusterState()
    restored.restore(apply.fsm.snapshot())
    assert restored.snapshot() == apply.fsm.snapshot()
    tasks = [restored.task(f"t{number}") for number in range(3)]
    first, *others = tasks
    assert first is not None
    for other in others:
        assert other is not None and other == apply.fsm.task(other.id)
        for mine, theirs in zip(other.history, first.history, strict=True):
            assert mine.state is theirs.state and mine.node_id is theirs.node_id
            assert mine.reason is theirs.reason
