"""Terminal tasks leave the state: CollectGarbage (retention) and RemoveTask (``orion task rm``)."""

from __future__ import annotations

import pytest
from test_state import Driver, GiB, node, task

from orion.fsm.commands import (
    AssignTasks,
    CollectGarbage,
    CommandError,
    Refusal,
    RemoveTask,
    ReportTaskState,
    SetPending,
    StopTask,
    SubmitTask,
    UpsertNode,
    encode_command,
)
from orion.fsm.state import ClusterState, TaskIds
from orion.model import Task, TaskState


@pytest.fixture
def run() -> Driver:
    driver = Driver()
    driver(UpsertNode(at=1.0, meta=node("n1")))
    return driver


def running(run: Driver, task_id: str, at: float, **fields: object) -> None:
    run(SubmitTask(at=at, task=task(task_id, **fields)))
    run(AssignTasks(at=at, assignments=[(task_id, "n1")]))
    run(ReportTaskState(at=at, task_id=task_id, node_id="n1", state=TaskState.RUNNING))


def failed(run: Driver, task_id: str, at: float) -> None:
    running(run, task_id, at)
    run(ReportTaskState(at=at, task_id=task_id, node_id="n1", state=TaskState.FAILED, exit_code=1))


def stopped(run: Driver, task_id: str, at: float) -> None:
    running(run, task_id, at)
    run(StopTask(at=at, task_id=task_id))


def ids(fsm: ClusterState) -> list[str]:
    return [t.id for t in fsm.tasks()]


def test_collect_removes_terminal_tasks_older_than_before(run: Driver) -> None:
    stopped(run, "old-stopped", at=10.0)
    failed(run, "old-failed", at=20.0)
    stopped(run, "new-stopped", at=100.0)
    running(run, "old-running", at=5.0)
    run(SubmitTask(at=5.0, task=task("old-pending", memory=64 * GiB)))  # never fits: stays Pending
    assert run.fsm.has_garbage(before=50.0)

    result = run(CollectGarbage(at=110.0, before=50.0))

    assert result == TaskIds(["old-stopped", "old-failed"])  # oldest first
    assert ids(run.fsm) == ["new-stopped", "old-running", "old-pending"]
    assert [t.id for t in run.fsm.tasks_on_node("n1")] == ["old-running", "new-stopped"]
    assert run.fsm.task_by_name("name-old-failed") is None
    assert run.fsm.allocated("n1") == (GiB, 0.5, 0)  # only the running task holds resources
    assert not run.fsm.has_garbage(before=50.0)
    assert run(CollectGarbage(at=111.0, before=50.0)) == TaskIds([])


def test_collect_takes_at_most_max_tasks_oldest_first(run: Driver) -> None:
    for i, at in enumerate([30.0, 10.0, 20.0, 10.0]):
        stopped(run, f"t{i}", at=at)
    assert run(CollectGarbage(at=99.0, before=50.0, max_tasks=2)) == TaskIds(["t1", "t3"])  # ties: by id
    assert run(CollectGarbage(at=99.0, before=50.0, max_tasks=2)) == TaskIds(["t2", "t0"])
    assert run.fsm.tasks() == []


def test_a_failed_task_stopped_later_is_kept_until_its_stop_is_old(run: Driver) -> None:
    failed(run, "t1", at=10.0)
    run(StopTask(at=60.0, task_id="t1"))
    assert run(CollectGarbage(at=70.0, before=50.0)) == TaskIds([])
    assert not run.fsm.has_garbage(before=50.0)
    assert run(CollectGarbage(at=80.0, before=61.0)) == TaskIds(["t1"])


def test_collect_refuses_a_bad_command_and_changes_nothing(run: Driver) -> None:
    stopped(run, "t1", at=10.0)
    for command in (
        CollectGarbage(at=99.0, before=float("nan")),
        CollectGarbage(at=99.0, before=float("inf")),
        CollectGarbage(at=99.0, before=50.0, max_tasks=0),
        CollectGarbage(at=float("nan"), before=50.0),
    ):
        result = run(command)
        assert isinstance(result, CommandError)
    assert ids(run.fsm) == ["t1"]


def test_rm_removes_a_terminal_task_and_frees_its_name(run: Driver) -> None:
    run(SubmitTask(at=1.0, task=Task(id="a", name="web", image="busybox")))
    run(SubmitTask(at=2.0, task=Task(id="b", name="web", image="busybox")))
    run(StopTask(at=3.0, task_id="b"))
    removed = run(RemoveTask(at=4.0, task_id="b"))
    assert isinstance(removed, Task) and (removed.id, removed.state) == ("b", "Stopped")
    assert ids(run.fsm) == ["a"]
    assert run.fsm.task_by_name("web") == run.fsm.task("a")  # as a restored replica would say
    restored = ClusterState()
    restored.restore(run.fsm.snapshot())
    assert restored.task_by_name("web") == run.fsm.task("a")


@pytest.mark.parametrize("state", ["Pending", "Scheduled", "Running"])
def test_rm_refuses_an_active_task(run: Driver, state: str) -> None:
    run(SubmitTask(at=1.0, task=task("t1")))
    if state != "Pending":
        run(AssignTasks(at=2.0, assignments=[("t1", "n1")]))
    if state == "Running":
        run(ReportTaskState(at=3.0, task_id="t1", node_id="n1", state=TaskState.RUNNING))
    before = run.fsm.snapshot()
    result = run(RemoveTask(at=4.0, task_id="t1"))
    assert isinstance(result, CommandError)
    assert result.message == f"task t1 is {state}: stop it first, or remove it with force"
    assert run.fsm.task("t1") is not None and run.fsm.task("t1").state == state
    # Only the applied index moved.
    restored = ClusterState()
    restored.restore(before)
    assert restored.tasks() == run.fsm.tasks()


def test_rm_force_stops_and_removes_an_active_task(run: Driver) -> None:
    running(run, "t1", at=1.0, memory=2 * GiB, cpu=1.5)
    run(SubmitTask(at=2.0, task=task("t2", memory=64 * GiB)))  # Pending, not yet judged
    run(SubmitTask(at=2.0, task=task("t3", memory=64 * GiB)))
    run(SetPending(at=2.5, task_ids=["t3"], reason="0/1 nodes fit"))
    assert run.fsm.allocated("n1") == (2 * GiB, 1.5, 0)

    removed = run(RemoveTask(at=5.0, task_id="t1", force=True))
    assert isinstance(removed, Task)
    assert (removed.state, removed.desired, removed.updated_at) == ("Stopped", "stop", 5.0)
    assert run.fsm.allocated("n1") == (0, 0.0, 0)
    assert run.fsm.tasks_on_node("n1") == []

    run(RemoveTask(at=6.0, task_id="t2", force=True))
    run(RemoveTask(at=6.0, task_id="t3", force=True))
    assert run.fsm.pending_tasks() == [] and run.fsm.pending_count == 0
    assert run.fsm.fresh_pending(10) == [] and run.fsm.tasks() == []


def test_rm_of_an_unknown_task_is_not_found(run: Driver) -> None:
    result = run(RemoveTask(at=1.0, task_id="nope"))
    assert result == CommandError(Refusal.NOT_FOUND, "no task with id nope")  # not_found to clients


def test_removed_tasks_stay_removed_after_a_snapshot_and_replicas_keep_agreeing(run: Driver) -> None:
    for i in range(6):
        stopped(run, f"t{i}", at=10.0 + i)
    failed(run, "f", at=12.5)
    run(StopTask(at=40.0, task_id="f"))  # leaves a stale entry in the collector's heap
    run(RemoveTask(at=41.0, task_id="t0"))  # and another
    run(CollectGarbage(at=42.0, before=12.0))  # t1
    data = run.fsm.snapshot()
    restored = ClusterState()
    restored.restore(data)
    assert ids(restored) == ids(run.fsm) == ["t2", "t3", "t4", "t5", "f"]
    assert restored.snapshot() == data

    # The original (with stale heap entries) and the restored replica collect the same tasks.
    rest = [
        CollectGarbage(at=50.0, before=14.5, max_tasks=1),
        CollectGarbage(at=50.0, before=41.0),
        RemoveTask(at=51.0, task_id="t5"),
    ]
    index = run.index
    for command in rest:
        index += 1
        data_i = encode_command(command)
        assert restored.apply(index, data_i) == run.fsm.apply(index, data_i)
    assert restored.snapshot() == run.fsm.snapshot()
    assert ids(restored) == []
