"""``wait_for``, the one polling helper of the real-cluster tests (orion/testing/localcluster.py).

An ``assert`` inside a condition is the test's verdict. It used to be caught
like any other exception, so a failed check was polled on until the deadline and surfaced as a
TimeoutError (or passed, if a later call went the other way).
"""

from __future__ import annotations

import pytest

from orion.testing.localcluster import wait_for


def test_an_assertion_inside_the_condition_fails_at_once_and_is_not_retried() -> None:
    calls: list[int] = []

    def condition() -> bool:
        calls.append(1)
        assert len(calls) > 1, "the first answer was wrong"
        return True  # what a retry would have returned: the failed check must not be hidden

    with pytest.raises(AssertionError, match="the first answer was wrong"):
        wait_for(condition, timeout=30, interval=0.01, what="a checked answer")
    assert len(calls) == 1


def test_other_errors_are_retried_until_the_condition_holds() -> None:
    calls: list[int] = []

    def condition() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("node restarting")
        return "up"

    assert wait_for(condition, timeout=30, interval=0.01) == "up"
    assert len(calls) == 3


def test_a_timeout_names_what_was_awaited_and_the_last_error() -> None:
    def condition() -> bool:
        raise ConnectionError("no leader")

    with pytest.raises(TimeoutError, match=r"waiting for the leader \(last error: ConnectionError"):
        wait_for(condition, timeout=0.05, interval=0.01, what="the leader")
