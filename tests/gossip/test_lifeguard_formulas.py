"""Each Lifeguard formula against tables (the figures of memberlist's awareness/suspicion/util tests)."""

from __future__ import annotations

import pytest

from orion.gossip.awareness import Awareness
from orion.gossip.suspicion import Suspicion, remaining_suspicion_time
from orion.gossip.timing import push_pull_scale, retransmit_limit, suspicion_timeout


def test_awareness_clamps_and_scales() -> None:
    # (delta applied, expected score, expected scaled 1 s timeout), applied in sequence.
    steps = [
        (0, 0, 1.0),
        (-1, 0, 1.0),
        (-10, 0, 1.0),
        (1, 1, 2.0),
        (-1, 0, 1.0),
        (10, 7, 8.0),
        (-1, 6, 7.0),
        (-1, 5, 6.0),
        (-1, 4, 5.0),
        (-1, 3, 4.0),
        (-1, 2, 3.0),
        (-1, 1, 2.0),
        (-1, 0, 1.0),
        (-1, 0, 1.0),
    ]
    awareness = Awareness(8)
    for delta, score, timeout in steps:
        awareness.apply_delta(delta)
        assert awareness.score == score
        assert awareness.scale(1.0) == pytest.approx(timeout)


@pytest.mark.parametrize(
    ("n", "k", "elapsed", "expected"),
    [
        (0, 3, 0.0, 30.0),
        (1, 3, 2.0, 14.0),
        (2, 3, 3.0, 4.81),
        (3, 3, 4.0, -2.0),
        (4, 3, 5.0, -3.0),
        (5, 3, 10.0, -8.0),
    ],
)
def test_remaining_suspicion_time(n: int, k: int, elapsed: float, expected: float) -> None:
    assert remaining_suspicion_time(n, k, elapsed, 2.0, 30.0) == pytest.approx(expected)


def test_remaining_suspicion_time_without_wanted_confirmations_is_min() -> None:
    assert remaining_suspicion_time(0, 0, 1.0, 2.0, 30.0) == pytest.approx(1.0)


def test_suspicion_timer_shrinks_with_distinct_confirmations_only() -> None:
    suspicion = Suspicion("accuser", incarnation=7, k=3, min_timeout=2.0, max_timeout=30.0, now=100.0)
    assert suspicion.deadline == pytest.approx(130.0)
    assert not suspicion.confirm("accuser")  # the accuser is not an independent confirmation
    assert suspicion.confirm("b")
    assert suspicion.deadline == pytest.approx(116.0)
    assert not suspicion.confirm("b")  # duplicates do not count
    assert suspicion.deadline == pytest.approx(116.0)
    assert suspicion.confirm("c")
    assert suspicion.deadline == pytest.approx(107.81)
    assert suspicion.confirm("d")
    assert suspicion.deadline == pytest.approx(102.0)
    assert not suspicion.confirm("e")  # k reached: nothing more to gain
    assert suspicion.n == 3


def test_suspicion_with_k_zero_is_fixed_at_min() -> None:
    suspicion = Suspicion("a", incarnation=0, k=0, min_timeout=5.0, max_timeout=30.0, now=0.0)
    assert suspicion.deadline == pytest.approx(5.0)
    assert not suspicion.confirm("b")
    assert suspicion.deadline == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(5, 1.0), (10, 1.0), (50, 1.698), (100, 2.0), (500, 2.698), (1000, 3.0)],
)
def test_suspicion_timeout_scales_with_log10_of_cluster_size(n: int, expected: float) -> None:
    assert suspicion_timeout(3, n, 1.0) / 3 == pytest.approx(expected)


@pytest.mark.parametrize(("n", "expected"), [(0, 0), (1, 3), (99, 6)])
def test_retransmit_limit(n: int, expected: int) -> None:
    assert retransmit_limit(3, n) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, 1.0), (32, 1.0), (33, 2.0), (64, 2.0), (65, 3.0), (128, 3.0), (129, 4.0), (512, 5.0)],
)
def test_push_pull_scale(n: int, expected: float) -> None:
    assert push_pull_scale(1.0, n) == pytest.approx(expected)
