"""The Pacer a background snapshot writer and encoder use, and where they call it."""

from __future__ import annotations

import time

import pytest

from orion.fsm.snapshot import encode_snapshot
from orion.raft.pacing import Pacer
from tests.fsm.test_snapshot_pieces import state_with


def work_for(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_pacer_sleeps_only_once_a_step_of_work_is_done() -> None:
    pacer = Pacer(step=0.005, idle_ratio=1.0)
    pacer()  # right after it was made: nothing worked yet
    assert pacer.slept == 0.0
    work_for(0.006)
    pacer()
    assert pacer.slept >= 0.006  # at least as long as it worked
    slept = pacer.slept
    pacer()  # the count restarted after the sleep
    assert pacer.slept == slept


def test_a_pacer_with_no_idle_ratio_never_sleeps() -> None:
    pacer = Pacer(step=0.001, idle_ratio=0.0)
    work_for(0.002)
    pacer()
    assert pacer.slept == 0.0


@pytest.mark.parametrize(("step", "idle_ratio"), [(0.0, 1.0), (-1.0, 1.0), (0.002, -0.5)])
def test_a_pacer_refuses_bad_settings(step: float, idle_ratio: float) -> None:
    with pytest.raises(ValueError, match="step must be > 0 and idle_ratio >= 0"):
        Pacer(step=step, idle_ratio=idle_ratio)


def test_encoding_calls_pace_once_per_task_and_gives_the_same_bytes() -> None:
    source = state_with(120).snapshot_source()
    calls: list[None] = []
    paced = encode_snapshot(source, pace=lambda: calls.append(None))
    assert len(calls) == 120
    assert paced == encode_snapshot(source)
