"""tools/stats.py: the one percentile rule every benchmark and the load generator report."""

from __future__ import annotations

import pytest

from tools import stats


def test_percentile_is_nearest_rank() -> None:
    ordered = [float(x) for x in range(1, 101)]
    assert stats.percentile(ordered, 50) == 50.0
    assert stats.percentile(ordered, 99) == 99.0
    assert stats.percentile(ordered, 100) == 100.0
    assert stats.percentile(ordered, 0) == 1.0


def test_percentile_takes_samples_in_any_order() -> None:
    shuffled = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert stats.p50(shuffled) == 3.0
    assert stats.p99(shuffled) == 5.0
    assert shuffled == [5.0, 1.0, 4.0, 2.0, 3.0]  # the caller's list is not sorted in place


def test_a_percentile_is_always_a_measured_sample() -> None:
    assert stats.p50([1.0, 10.0]) == 1.0
    assert stats.p99([1.0, 10.0]) == 10.0


def test_no_samples_give_zeros() -> None:
    assert stats.percentile([], 50) == 0.0
    assert stats.mean([]) == 0.0
    assert stats.summary([]) == {"n": 0}


def test_percentile_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError, match="q must be between 0 and 100"):
        stats.percentile([1.0], 101)


def test_summary_scales_and_rounds() -> None:
    seconds = [0.001, 0.002, 0.003, 0.004]
    assert stats.summary(seconds, scale=1e3, digits=1) == {
        "n": 4,
        "p50": 2.0,
        "p90": 4.0,
        "p99": 4.0,
        "min": 1.0,
        "max": 4.0,
        "mean": 2.5,
    }
