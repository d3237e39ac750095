"""NodeHealth (orion/services/health.py): which of a node's tasks are checked, and which
ReportHealth go out: transitions, and corrections while the cluster's record differs."""

from __future__ import annotations

import msgspec

from orion.model import Health, HealthCheck, Task, TaskState
from orion.services.health import REPORT_RETRY_S, CheckResult, HealthReport, NodeHealth

NODE = "n1"
CHECK = HealthCheck(kind="http", port=80, interval=1.0, timeout=0.5, retries=2)
PASSED = "http check of :80/ passed: status 200"


def task(task_id: str, **fields: object) -> Task:
    fields.setdefault("node_id", NODE)
    fields.setdefault("state", TaskState.RUNNING)
    fields.setdefault("health_check", CHECK)
    return Task(id=task_id, name=task_id, image="img", **fields)


def run_checks(health: NodeHealth, now: float, passed: bool) -> list[HealthReport]:
    reports: list[HealthReport] = []
    for probe, _ in health.due(now):
        detail = "status 200" if passed else "status 500"
        reports.extend(health.record(probe, CheckResult(passed, detail, now + 0.01)))
    return reports


def test_only_running_tasks_of_this_node_with_a_check_are_checked() -> None:
    health = NodeHealth(NODE)
    tasks = [
        task("checked"),
        task("no-check", health_check=None),
        task("scheduled", state=TaskState.SCHEDULED),
        task("elsewhere", node_id="n2"),
    ]
    assert health.sync(tasks, 0.0) == []
    due = health.due(0.0)
    assert [(probe.task_id, t.id) for probe, t in due] == [("checked", "checked")]
    assert health.due(0.0) == []  # in flight


def test_a_transition_is_reported_once_and_then_nothing_while_the_record_agrees() -> None:
    health = NodeHealth(NODE)
    health.sync([task("t1")], 0.0)
    assert run_checks(health, 0.0, True) == [HealthReport("t1", Health.HEALTHY, PASSED)]
    # The FSM does not show it yet: no second report within the retry time.
    assert health.sync([task("t1", health=Health.STARTING)], 1.0) == []
    assert run_checks(health, 1.1, True) == []
    assert health.sync([task("t1", health=Health.HEALTHY)], 2.0) == []
    assert health.sync([task("t1", health=Health.HEALTHY)], 20.0) == []


def test_a_report_the_cluster_never_recorded_is_sent_again_after_the_retry_time() -> None:
    health = NodeHealth(NODE)
    health.sync([task("t1")], 0.0)
    run_checks(health, 0.0, True)
    lost = [task("t1", health=Health.STARTING)]
    assert health.sync(lost, REPORT_RETRY_S - 0.1) == []
    assert health.sync(lost, REPORT_RETRY_S + 0.1) == [HealthReport("t1", Health.HEALTHY, PASSED)]


def test_a_node_that_restarts_takes_the_recorded_health_and_reports_nothing_new() -> None:
    health = NodeHealth(NODE)
    assert health.sync([task("t1", health=Health.HEALTHY)], 0.0) == []
    assert run_checks(health, 0.0, True) == []
    fresh = NodeHealth(NODE)
    # NONE (never reported) counts as starting: nothing to report until a check passes.
    assert fresh.sync([task("t2", health=Health.NONE)], 0.0) == []


def test_a_restarted_task_is_checked_afresh_and_leaves_the_healthy_record() -> None:
    health = NodeHealth(NODE)
    health.sync([task("t1", health=Health.HEALTHY)], 0.0)
    restarted = task("t1", health=Health.HEALTHY, restarts=1)
    assert health.sync([restarted], 5.0) == [
        HealthReport("t1", Health.STARTING, "its container started again")
    ]
    assert [probe.task_id for probe, _ in health.due(5.0)] == ["t1"]


def test_failures_in_a_row_report_unhealthy_and_a_task_that_stops_running_is_forgotten() -> None:
    health = NodeHealth(NODE)
    health.sync([task("t1", health=Health.HEALTHY)], 0.0)
    assert run_checks(health, 0.0, False) == []
    reports = run_checks(health, 1.1, False)
    assert reports == [
        HealthReport("t1", Health.UNHEALTHY, "http check of :80/ failed 2 time(s) in a row: status 500")
    ]
    stopped = msgspec.structs.replace(task("t1"), state=TaskState.STOPPED)
    assert health.sync([stopped], 3.0) == []
    assert health.tracker.tracked() == [] and health.task("t1") is None


def test_a_task_seen_between_two_runs_is_checked_afresh_when_it_runs_again() -> None:
    health = NodeHealth(NODE)
    health.sync([task("t1", health=Health.HEALTHY)], 0.0)
    between = task("t1", state=TaskState.SCHEDULED, health=Health.HEALTHY, restarts=1)
    assert health.sync([between], 1.0) == []
    assert health.tracker.tracked() == []
    again = task("t1", health=Health.HEALTHY, restarts=1)
    assert health.sync([again], 2.0) == [HealthReport("t1", Health.STARTING, "its container started again")]
    # A task that left the node is forgotten for good.
    assert health.sync([], 3.0) == []
    assert health.sync([task("t1", health=Health.HEALTHY, restarts=2)], 4.0) == []
