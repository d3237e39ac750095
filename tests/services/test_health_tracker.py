"""HealthTracker (orion/services/health.py): interval, timeout, retries and start period turn
check results into health transitions, and only transitions come out."""

from __future__ import annotations

import pytest

from orion.model import Health, HealthCheck
from orion.services.health import CheckResult, HealthTracker, Transition

HTTP = HealthCheck(kind="http", port=80, path="/health", interval=5.0, timeout=1.0, retries=3)


def check_once(
    tracker: HealthTracker, task_id: str, now: float, passed: bool, took: float = 0.1, detail: str = ""
) -> Transition | None:
    assert task_id in tracker.due(now), (task_id, now, tracker.next_due())
    probe = tracker.begin(task_id, now)
    return tracker.record(probe, CheckResult(passed, detail, now + took))


def test_a_new_task_is_checked_at_once_and_turns_healthy_on_its_first_pass() -> None:
    tracker = HealthTracker()
    tracker.track("t1", HTTP, started=100.0)
    assert tracker.health("t1") == Health.STARTING
    assert tracker.due(100.0) == ["t1"]
    transition = check_once(tracker, "t1", 100.0, True)
    assert transition == Transition("t1", Health.HEALTHY, "http check of :80/health passed")
    assert tracker.health("t1") == Health.HEALTHY
    # Passing again changes nothing: nothing to send through Raft.
    assert check_once(tracker, "t1", 105.1, True) is None


def test_the_next_check_waits_an_interval_after_the_last_one_ended() -> None:
    tracker = HealthTracker()
    tracker.track("t1", HTTP, started=0.0)
    probe = tracker.begin("t1", 0.0)
    assert tracker.due(100.0) == []  # in flight: never two checks of one task at once
    assert tracker.next_due() is None
    with pytest.raises(ValueError, match="already in flight"):
        tracker.begin("t1", 1.0)
    tracker.record(probe, CheckResult(True, "", 0.5))
    assert tracker.next_due() == 5.5
    assert tracker.due(5.4) == []
    assert tracker.due(5.5) == ["t1"]


def test_retries_failures_in_a_row_turn_a_healthy_task_unhealthy_and_one_pass_heals_it() -> None:
    tracker = HealthTracker()
    tracker.track("t1", HTTP, started=0.0)
    now = 0.0
    assert check_once(tracker, "t1", now, True) is not None
    results = []
    for _ in range(3):
        now = tracker.next_due() or 0.0
        results.append(check_once(tracker, "t1", now, False, detail="status 500"))
    assert results[:2] == [None, None]
    assert results[2] == Transition(
        "t1", Health.UNHEALTHY, "http check of :80/health failed 3 time(s) in a row: status 500"
    )
    # Failing on while unhealthy sends nothing more.
    assert check_once(tracker, "t1", tracker.next_due() or 0.0, False) is None
    assert check_once(tracker, "t1", tracker.next_due() or 0.0, True) == Transition(
        "t1", Health.HEALTHY, "http check of :80/health passed"
    )


def test_a_pass_between_failures_starts_the_count_again() -> None:
    tracker = HealthTracker()
    tracker.track("t1", HTTP, started=0.0, health=Health.HEALTHY)
    outcomes = [False, False, True, False, False]
    for passed in outcomes:
        assert check_once(tracker, "t1", tracker.next_due() or 0.0, passed) is None
    assert tracker.health("t1") == Health.HEALTHY


def test_a_starting_task_that_never_passes_turns_unhealthy() -> None:
    tracker = HealthTracker()
    tracker.track("t1", HTTP, started=0.0)
    transitions = [check_once(tracker, "t1", tracker.next_due() or 0.0, False) for _ in range(3)]
    assert transitions[:2] == [None, None]
    assert transitions[2] is not None and transitions[2].health == Health.UNHEALTHY


def test_failures_within_the_start_period_do_not_count_until_the_first_pass() -> None:
    check = HealthCheck(kind="tcp", port=80, interval=1.0, timeout=0.5, retries=2, start_period=10.0)
    tracker = HealthTracker()
    tracker.track("t1", check, started=100.0)
    now = 100.0
    while now < 110.0:  # ten failures inside the start period: still starting
        assert check_once(tracker, "t1", now, False, took=0.1) is None
        now = tracker.next_due() or 0.0
    assert tracker.health("t1") == Health.STARTING
    # Past it, failures count: two in a row.
    assert check_once(tracker, "t1", now, False) is None
    transition = check_once(tracker, "t1", tracker.next_due() or 0.0, False, detail="connection refused")
    assert transition == Transition(
        "t1", Health.UNHEALTHY, "tcp check of :80 failed 2 time(s) in a row: connection refused"
    )


def test_after_a_pass_failures_count_even_within_the_start_period() -> None:
    check = HealthCheck(kind="tcp", port=80, interval=1.0, timeout=0.5, retries=2, start_period=60.0)
    tracker = HealthTracker()
    tracker.track("t1", check, started=0.0)
    assert check_once(tracker, "t1", 0.0, True) is not None
    assert check_once(tracker, "t1", tracker.next_due() or 0.0, False) is None
    transition = check_once(tracker, "t1", tracker.next_due() or 0.0, False)
    assert transition is not None and transition.health == Health.UNHEALTHY


def test_a_check_slower_than_its_timeout_failed_whatever_it_answered() -> None:
    check = HealthCheck(kind="exec", command=["cat", "/ready"], interval=1.0, timeout=0.5, retries=1)
    tracker = HealthTracker()
    tracker.track("t1", check, started=0.0, health=Health.HEALTHY)
    transition = check_once(tracker, "t1", 0.0, True, took=0.7)
    assert transition == Transition(
        "t1", Health.UNHEALTHY, "exec check (cat /ready) failed 1 time(s) in a row: no answer within 0.5s"
    )


def test_tracking_starts_from_what_the_cluster_recorded() -> None:
    tracker = HealthTracker()
    tracker.track("none", HTTP, started=0.0, health=Health.NONE)
    tracker.track("healthy", HTTP, started=0.0, health=Health.HEALTHY)
    assert tracker.health("none") == Health.STARTING
    assert tracker.health("healthy") == Health.HEALTHY
    # A node that restarts finds its healthy task healthy: a pass sends nothing.
    assert check_once(tracker, "healthy", 0.0, True) is None


def test_a_result_of_an_earlier_run_or_a_forgotten_task_is_dropped() -> None:
    tracker = HealthTracker()
    tracker.track("t1", HTTP, started=0.0)
    stale = tracker.begin("t1", 0.0)
    tracker.restart("t1", HTTP, started=50.0)  # the container started again meanwhile
    assert tracker.record(stale, CheckResult(True, "", 0.1)) is None
    assert tracker.health("t1") == Health.STARTING
    assert tracker.due(50.0) == ["t1"]  # the new run is not blocked by the old check
    probe = tracker.begin("t1", 50.0)
    tracker.forget("t1")
    assert tracker.record(probe, CheckResult(True, "", 50.1)) is None
    assert tracker.health("t1") is None and tracker.tracked() == []


def test_tracking_again_keeps_the_state_unless_the_check_changed() -> None:
    tracker = HealthTracker()
    assert tracker.track("t1", HTTP, started=0.0)
    check_once(tracker, "t1", 0.0, True)
    assert not tracker.track("t1", HTTP, started=0.0)
    assert tracker.health("t1") == Health.HEALTHY
    other = HealthCheck(kind="tcp", port=81)
    assert tracker.track("t1", other, started=10.0, health=Health.HEALTHY)
    assert tracker.due(10.0) == ["t1"]
