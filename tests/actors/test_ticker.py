"""The ticker sleeps until the earliest target is due and ticks every target due by then."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from orion.actors.messages import Tick
from orion.actors.ticker import IDLE_WAIT_S, Ticker


class Recorder(pykka.ThreadingActor):
    """Keeps the ``now`` of every tick; releases the gate only when told (a busy actor)."""

    def __init__(self, release: bool = True) -> None:
        super().__init__()
        self.ticks: list[float] = []
        self.release = release
        self.got_tick = threading.Event()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Tick):
            self.ticks.append(message.now)
            if self.release and message.gate is not None:
                message.gate.release()
            self.got_tick.set()
            return None
        if message == "ticks":
            return list(self.ticks)
        return None


@pytest.fixture
def actors() -> Iterator[list[pykka.ActorRef]]:
    refs: list[pykka.ActorRef] = []
    yield refs
    for ref in refs:
        ref.stop()


def ticks_of(ref: pykka.ActorRef) -> list[float]:
    return ref.ask("ticks")


def test_ticks_what_is_due_and_answers_when_the_next_target_is_due(actors: list[pykka.ActorRef]) -> None:
    fast, slow = Recorder.start(), Recorder.start()
    actors += [fast, slow]
    ticker = Ticker(resolution=0.002)
    ticker.add(fast, 0.05)
    ticker.add(slow, 0.2)
    # Each tick is handled (its gate released) before the next call: ask() waits for it.
    assert ticker._tick_due(100.0) == pytest.approx(100.05)  # both were due at once
    assert ticks_of(fast) == [100.0] and ticks_of(slow) == [100.0]
    assert ticker._tick_due(100.03) == pytest.approx(100.05)  # nothing due yet
    assert ticker._tick_due(100.049) == pytest.approx(100.099)  # within the resolution: the fast one
    assert ticks_of(fast) == [100.0, 100.049] and ticks_of(slow) == [100.0]
    assert ticker._tick_due(100.2) == pytest.approx(100.25)
    assert ticks_of(fast) == [100.0, 100.049, 100.2]
    assert ticks_of(slow) == [100.0, 100.2]


def test_a_busy_target_is_not_sent_a_second_tick(actors: list[pykka.ActorRef]) -> None:
    busy = Recorder.start(release=False)
    actors.append(busy)
    ticker = Ticker()
    ticker.add(busy, 0.05)
    ticker._tick_due(10.0)
    assert ticker._tick_due(10.1) == pytest.approx(10.15)  # its interval counts on regardless
    assert ticks_of(busy) == [10.0]


def test_no_targets_sleeps_the_idle_wait_and_refuses_bad_intervals() -> None:
    ticker = Ticker()
    assert ticker._tick_due(5.0) == pytest.approx(5.0 + IDLE_WAIT_S)
    with pytest.raises(ValueError, match="interval"):
        ticker.add(None, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resolution"):
        Ticker(resolution=-1.0)


def test_a_target_added_to_a_running_ticker_is_ticked_at_once(actors: list[pykka.ActorRef]) -> None:
    ticker = Ticker()
    ticker.start()
    try:
        early = Recorder.start()
        actors.append(early)
        ticker.add(early, 30.0)  # the thread now sleeps about 30 s
        assert early.proxy().got_tick.get().wait(10.0)
        late = Recorder.start()
        actors.append(late)
        ticker.add(late, 30.0)  # must end that sleep, not wait for it
        assert late.proxy().got_tick.get().wait(10.0)
    finally:
        ticker.stop()


def test_a_wish_moves_the_next_tick_later_or_sooner(actors: list[pykka.ActorRef]) -> None:
    target = Recorder.start()
    actors.append(target)
    ticker = Ticker(resolution=0.002)
    ticker.add(target, 0.05)
    assert ticker._tick_due(100.0) == pytest.approx(100.05)
    gate = ticker._targets[0].gate
    gate.tick_at(100.4)  # nothing to do for a while: sleep past the interval
    assert ticker._tick_due(100.05) == pytest.approx(100.4)
    assert ticks_of(target) == [100.0]
    gate.tick_at(100.2)  # work came in: sooner than planned
    assert ticker._tick_due(100.1) == pytest.approx(100.2)
    assert ticker._tick_due(100.2) == pytest.approx(100.25)  # ticked; the interval applies again
    assert ticks_of(target) == [100.0, 100.2]
    assert ticker._tick_due(100.25) == pytest.approx(100.3)  # a wish already applied is not reused
    assert ticks_of(target) == [100.0, 100.2, 100.25]


def test_a_sooner_wish_ends_the_running_threads_sleep(actors: list[pykka.ActorRef]) -> None:
    ticker = Ticker()
    ticker.start()
    try:
        target = Recorder.start()
        actors.append(target)
        ticker.add(target, 30.0)
        got_tick = target.proxy().got_tick.get()
        assert got_tick.wait(10.0)  # the first tick; the thread now sleeps about 30 s
        got_tick.clear()
        ticker._targets[0].gate.tick_at(0.0)  # due already: must not wait for that sleep
        assert got_tick.wait(10.0)
    finally:
        ticker.stop()


def test_a_lenient_target_waits_up_to_the_slack_for_a_strict_wakeup(actors: list[pykka.ActorRef]) -> None:
    raft, other = Recorder.start(), Recorder.start()
    actors += [raft, other]
    ticker = Ticker(resolution=0.002, slack=0.05)
    ticker.add(raft, 0.05, strict=True)
    ticker.add(other, 10.0)
    assert ticker._tick_due(100.0) == pytest.approx(100.05)
    assert ticks_of(other) == [100.0]  # handled, its gate released
    other_gate = ticker._targets[1].gate
    other_gate.tick_at(100.02)  # 30 ms before the strict tick: shares its wakeup
    assert ticker._tick_due(100.01) == pytest.approx(100.05)
    assert ticker._tick_due(100.05) == pytest.approx(100.1)
    assert ticks_of(other) == [100.0, 100.05]  # 30 ms late, no wakeup of its own
    other_gate.tick_at(100.06)
    ticker._targets[0].next_at = 100.2  # the strict target is further than the slack away
    assert ticker._tick_due(100.055) == pytest.approx(100.11)  # a wakeup at the end of its slack
    with pytest.raises(ValueError, match="slack"):
        Ticker(slack=-1.0)


def test_lenient_targets_share_one_wakeup_and_fall_into_step(actors: list[pykka.ActorRef]) -> None:
    one, two = Recorder.start(), Recorder.start()
    actors += [one, two]
    ticker = Ticker(resolution=0.002, slack=0.05)
    ticker.add(one, 1.0)
    ticker.add(two, 2.0)
    ticker._targets[0].next_at = 100.0
    ticker._targets[1].next_at = 100.03  # 30 ms apart: one wakeup for both, 50 ms after the first
    assert ticker._tick_due(99.5) == pytest.approx(100.05)
    assert ticker._tick_due(100.05) == pytest.approx(101.1)
    assert ticks_of(one) == [100.05] and ticks_of(two) == [100.05]
    # The 1 s target alone; then the 2 s one's slack ends when the 1 s one falls due: both again.
    assert ticker._tick_due(101.1) == pytest.approx(102.1)
    assert ticks_of(one) == [100.05, 101.1]  # handled, its gate released
    assert ticker._tick_due(102.1) == pytest.approx(103.15)
    assert ticks_of(one) == [100.05, 101.1, 102.1] and ticks_of(two) == [100.05, 102.1]
