"""Restart policy: conditions, attempts within an interval (the budget resets), a growing
delay, then fail or delay mode; a task's spec overrides the node's default."""

from __future__ import annotations

import pytest

from orion.model import RestartSpec
from orion.worker import RestartPolicy

NOW = 1_000_000.0


def test_on_failure_restarts_a_crash_with_a_doubling_delay_then_gives_up() -> None:
    policy = RestartPolicy(max_attempts=3, interval=300.0, base=1.0, cap=30.0)
    times: list[float] = []
    delays = []
    now = NOW
    for _ in range(3):
        decision = policy.decide(3, False, times, now)
        assert decision.action == "restart"
        delays.append(decision.delay)
        times = decision.restart_times
        now += decision.delay + 1.0
    assert delays == [1.0, 2.0, 4.0]
    final = policy.decide(3, False, times, now)
    assert final.action == "fail"
    assert final.reason == "exited with code 3; gave up after 3 restart(s) in 5m"


def test_the_budget_resets_once_restarts_leave_the_interval() -> None:
    # Four kills, each more than the interval after the last: never Failed.
    policy = RestartPolicy(max_attempts=3, interval=60.0)
    times: list[float] = []
    for kill in range(4):
        decision = policy.decide(137, False, times, NOW + kill * 61.0)
        assert decision.action == "restart" and decision.delay == 1.0
        assert decision.reason == "exited with code 137; restart 1/3 in 1s"
        times = decision.restart_times
    assert len(times) == 1  # older restarts no longer count


def test_delay_mode_waits_for_the_oldest_restart_to_leave_the_interval() -> None:
    policy = RestartPolicy(max_attempts=2, interval=100.0, base=1.0, mode="delay")
    decision = policy.decide(1, False, [NOW - 30.0, NOW - 10.0], NOW)
    assert decision.action == "restart" and decision.delay == 70.0
    assert decision.restart_times == [NOW - 10.0, NOW + 70.0]
    assert decision.reason == "exited with code 1; 2 restart(s) in 1m40s: next in 1m10s"


def test_the_delay_is_capped() -> None:
    policy = RestartPolicy(max_attempts=10, interval=3600.0, base=1.0, cap=30.0)
    times: list[float] = []
    delays = []
    for _ in range(10):
        decision = policy.decide(1, False, times, NOW)
        delays.append(decision.delay)
        times = decision.restart_times
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]


@pytest.mark.parametrize(
    ("condition", "exit_code", "oom", "action", "reason"),
    [
        ("on-failure", 0, False, "complete", "completed: exited with code 0"),
        ("on-failure", 1, False, "restart", "exited with code 1; restart 1/3 in 1s"),
        ("on-failure", 0, True, "restart", "killed: out of memory; restart 1/3 in 1s"),
        ("always", 0, False, "restart", "exited with code 0; restart 1/3 in 1s"),
        ("no", 0, False, "complete", "completed: exited with code 0"),
        ("no", 2, False, "fail", "exited with code 2 (restart policy: no)"),
    ],
)
def test_conditions(condition: str, exit_code: int, oom: bool, action: str, reason: str) -> None:
    decision = RestartPolicy(condition=condition).decide(exit_code, oom, [], NOW)
    assert (decision.action, decision.reason) == (action, reason)


def test_zero_attempts_never_restarts() -> None:
    decision = RestartPolicy(max_attempts=0).decide(1, False, [], NOW)
    assert decision.action == "fail" and "gave up after 0 restart(s)" in decision.reason
    # In delay mode too: with nothing to wait for, waiting would never end.
    assert RestartPolicy(max_attempts=0, mode="delay").decide(1, False, [], NOW).action == "fail"


def test_a_task_spec_overrides_the_node_default_field_by_field() -> None:
    node = RestartPolicy(max_attempts=3, interval=300.0, base=1.0, cap=30.0, mode="fail")
    assert node.for_task(None) is node
    mine = node.for_task(RestartSpec(policy="always", attempts=5, delay=60.0, mode="delay"))
    assert (mine.condition, mine.max_attempts, mine.interval, mine.base, mine.mode) == (
        "always",
        5,
        300.0,
        60.0,
        "delay",
    )
    assert mine.cap == 60.0  # a longer first delay than the node's cap is kept, not cut
    assert mine.describe() == "always: 5 restart(s) in 5m, from 1m doubling, then delay"
    assert node.for_task(RestartSpec(policy="no")).describe() == "no"


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="restart policy must be one of"):
        RestartPolicy(condition="sometimes")
    with pytest.raises(ValueError, match="restart mode must be one of"):
        RestartPolicy(mode="retry")
    with pytest.raises(ValueError, match=">= 0"):
        RestartPolicy(max_attempts=-1)
    with pytest.raises(ValueError, match="interval > 0"):
        RestartPolicy(interval=0.0)


def test_a_container_removed_behind_orions_back_counts_as_a_failure() -> None:
    removed = "container removed outside Orion"
    decision = RestartPolicy().decide(None, False, [], NOW, cause=removed)
    assert (decision.action, decision.reason) == ("restart", f"{removed}; restart 1/3 in 1s")
    refused = RestartPolicy(condition="no").decide(None, False, [], NOW, cause=removed)
    assert (refused.action, refused.reason) == ("fail", f"{removed} (restart policy: no)")
