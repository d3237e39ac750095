"""Lifeguard's suspicion timer when exactly one independent confirmation is wanted (k = 1): the
timer starts at the maximum and the one confirmation takes it straight to the minimum."""

from __future__ import annotations

from orion.gossip.suspicion import Suspicion, remaining_suspicion_time


def test_with_one_wanted_confirmation_the_timer_starts_at_the_maximum() -> None:
    assert remaining_suspicion_time(0, 1, 0.0, 4.0, 24.0) == 24.0
    assert remaining_suspicion_time(0, 1, 5.0, 4.0, 24.0) == 19.0
    suspicion = Suspicion("n1", 0, 1, 4.0, 24.0, 100.0)
    assert suspicion.deadline == 124.0


def test_the_one_wanted_confirmation_brings_the_minimum() -> None:
    assert remaining_suspicion_time(1, 1, 0.0, 4.0, 24.0) == 4.0
    suspicion = Suspicion("n1", 0, 1, 4.0, 24.0, 100.0)
    assert not suspicion.confirm("n1")  # the accuser itself
    assert suspicion.confirm("n2")
    assert suspicion.deadline == 104.0
    assert not suspicion.confirm("n3")  # k reached: nothing more to count
    assert suspicion.deadline == 104.0


def test_without_wanted_confirmations_the_minimum_holds_from_the_start() -> None:
    suspicion = Suspicion("n1", 0, 0, 4.0, 24.0, 100.0)
    assert suspicion.deadline == 104.0
    assert not suspicion.confirm("n2")
