"""Restart policy: capped exponential backoff, then give up."""

from __future__ import annotations

import pytest

from orion.worker import RestartPolicy, backoff_delay


def test_default_policy_waits_1_2_4_seconds_then_gives_up() -> None:
    assert [backoff_delay(attempt) for attempt in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, None, None]


def test_delay_is_capped() -> None:
    policy = RestartPolicy(max_attempts=10, base=1.0, cap=30.0)
    assert [policy.delay(attempt) for attempt in range(1, 11)] == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert policy.delay(11) is None


def test_zero_attempts_never_restarts() -> None:
    assert RestartPolicy(max_attempts=0).delay(1) is None


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        RestartPolicy().delay(0)
    with pytest.raises(ValueError, match=">= 0"):
        RestartPolicy(max_attempts=-1)
