"""The hollow nodes' container runtime: the calls the reconciler makes of the Docker worker,
answered at once from memory, and the real reconcile planner driven by it."""

from __future__ import annotations

import pytest

from orion.hollow.fake_runtime import FakeRuntime
from orion.model import Task, TaskState
from orion.worker.reconcile_plan import ReconcilePlanner, ReportState, StartContainer, Wanted
from orion.worker.restart_policy import RestartPolicy
from orion.worker.types import NoClusterIdError


def _task(task_id: str, **fields: object) -> Task:
    return Task(id=task_id, name=task_id, image="orion-busybox:latest", **fields)


def test_nothing_starts_before_the_cluster_id_is_known() -> None:
    runtime = FakeRuntime("h1")
    with pytest.raises(NoClusterIdError):
        runtime.start(_task("t1"))
    assert runtime.list_managed() == []


def test_start_runs_at_once_with_the_ports_the_cluster_gave() -> None:
    runtime = FakeRuntime("h1")
    runtime.set_cluster_id("c1")
    info = runtime.start(_task("t1", port_bindings={"80/tcp": "8080"}))
    assert info.running and info.node_id == "h1" and info.host_ports == {"80/tcp": 8080}
    assert runtime.inspect("t1") == info
    assert runtime.running_tasks_of("h1") == {"t1"}
    assert runtime.running_tasks_of("h2") == set()


def test_halt_keeps_an_exited_container_and_stop_removes_it() -> None:
    runtime = FakeRuntime("h1")
    runtime.set_cluster_id("c1")
    runtime.start(_task("t1"))
    runtime.start(_task("t2"))
    runtime.halt("t1")
    runtime.stop("t2")
    (kept,) = runtime.list_managed()
    assert (kept.task_id, kept.status, kept.exit_code) == ("t1", "exited", 137)
    assert runtime.running_tasks_of("h1") == set()


def test_the_real_planner_starts_a_scheduled_task_and_reports_it_running() -> None:
    runtime = FakeRuntime("h1")
    runtime.set_cluster_id("c1")
    planner = ReconcilePlanner("h1", RestartPolicy())
    task = _task("t1", state=TaskState.SCHEDULED, node_id="h1")
    planner.begin_round()
    planner.wanted(Wanted([task], []), 1.0)
    actions = planner.plan(runtime.list_managed(), True, 1.0, 1.0, 1000.0)
    assert actions == [StartContainer(task)]
    runtime.start(task)
    reports = [a for a in planner.started("t1", 1.1, 1000.1) if isinstance(a, ReportState)]
    assert [(r.task_id, r.state) for r in reports] == [("t1", TaskState.RUNNING)]


def test_a_crash_is_an_exit_the_planner_sees() -> None:
    runtime = FakeRuntime("h1")
    runtime.set_cluster_id("c1")
    runtime.start(_task("t1"))
    runtime.crash("t1", exit_code=3)
    assert runtime.inspect("t1").exit_code == 3
    assert not runtime.inspect("t1").running
