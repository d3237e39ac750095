"""The one clock of the node: a thread that drives every actor's ``Tick`` (Pykka has no timers).

The thread sleeps until the earliest target is due, not on a fixed beat: an idle node wakes
only when some actor's interval has passed (it polled every 25 ms before, 40 wakeups a second
that found nothing due most of the time). Targets that fall due within ``resolution`` of each
other are ticked in the same wakeup, so actors with related intervals (the Raft and gossip
ticks) share one.

An actor may ask for its next tick at a time of its choosing through the gate its ticks carry
(``TickGate.tick_at``): the gossip actor sleeps until its protocol's next deadline instead of
ticking every 50 ms. A wish sooner than the thread's sleep wakes the thread at once; a later one
is applied when it next wakes, which is never later than that target's current due time.

Wakeups cost more than the work they do on an idle node (a timed wait is ~35 us of CPU here,
each tick a wakeup of the ticker and one of the actor), so a target that is not ``strict`` is
ticked up to ``slack`` late: the ticker wakes at the end of its slack, and every target due by
then shares that wakeup. The Raft and gossip actors keep their own timers
(orion/actors/timed_inbox.py); what is left here are the other actors' ticks, a second or more
apart, which then fall into step instead of each waking the node on its own phase.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pykka

from orion.actors.messages import Tick, TickGate

IDLE_WAIT_S = 10.0  # the longest sleep (a backstop: add() and a sooner wish end any sleep)


@dataclass(slots=True)
class _Target:
    ref: pykka.ActorRef
    interval: float
    gate: TickGate
    strict: bool = False
    next_at: float = 0.0
    seen_wish: tuple[float] | None = None


class Ticker:
    def __init__(self, resolution: float = 0.002, slack: float = 0.0) -> None:
        """``slack``: how late a target that is not strict may be ticked to share a wakeup."""
        if resolution < 0:
            raise ValueError(f"resolution: must be seconds >= 0, got {resolution}")
        if slack < 0:
            raise ValueError(f"slack: must be seconds >= 0, got {slack}")
        self._slack = slack
        self._targets: list[_Target] = []
        self._resolution = resolution
        self._stopping = False
        self._wake = threading.Event()  # set by stop(), add() and a sooner wish: the sleep ends early
        self._sleep_until = float("inf")  # while the thread looks at the targets, any wish wakes it
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def add(self, ref: pykka.ActorRef, interval: float, strict: bool = False) -> None:
        """``strict``: always ticked on time; others may wait up to the slack for a strict one."""
        if not interval > 0:
            raise ValueError(f"interval: must be seconds > 0, got {interval}")
        slack = 0.0 if strict else self._slack
        gate = TickGate(lambda when: self._on_wish(when + slack))
        self._targets.append(_Target(ref, interval, gate, strict))
        self._wake.set()  # due at once: the running thread must not sleep past it

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _on_wish(self, latest: float) -> None:
        if latest < self._sleep_until:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before looking at the targets: a later add() ends the wait
            self._sleep_until = float("inf")
            earliest = self._tick_due(time.monotonic())
            self._sleep_until = earliest
            self._wake.wait(max(0.0, earliest - time.monotonic()))

    def _tick_due(self, now: float) -> float:
        """Tick every target due by ``now`` (plus the resolution); when to wake next."""
        horizon = now + self._resolution
        targets = list(self._targets)  # add() may append from another thread
        for target in targets:
            wish = target.gate.wish
            if wish is not target.seen_wish and wish is not None:
                target.seen_wish = wish
                target.next_at = wish[0]
            if target.next_at <= horizon:
                # A target whose last tick is still unhandled skips this one: the gate
                # coalesces ticks, and the interval counts from now either way.
                target.next_at = now + target.interval
                if target.gate.try_arm():
                    try:
                        target.ref.tell(Tick(now, target.gate))
                    except pykka.ActorDeadError:
                        target.gate.release()
        # A lenient target is woken for at the end of its slack: every other target due by
        # then (strict or not) is ticked in that one wakeup, and targets of related intervals
        # (1 s, 2 s, 5 s) fall into step after their first shared tick.
        slack = self._slack
        earliest = now + IDLE_WAIT_S
        for target in targets:
            due = target.next_at if target.strict else target.next_at + slack
            if due < earliest:
                earliest = due
        return earliest


class TickPlan:
    """An actor's side of ``TickGate.tick_at``: keeps the gate of its last tick and asks again
    only when the wanted time changed (each ask may wake the ticker's thread)."""

    __slots__ = ("_asked", "_gate")

    def __init__(self) -> None:
        self._gate: TickGate | None = None
        self._asked: float | None = None

    def ticked(self, gate: TickGate | None) -> None:
        """Call on every Tick: the ticker has planned the next one an interval away."""
        if gate is not None:
            self._gate = gate
            self._asked = None

    def ask(self, when: float) -> None:
        """The next tick at monotonic ``when`` (before the first tick: the interval applies)."""
        if self._gate is not None and when != self._asked:
            self._asked = when
            self._gate.tick_at(when)
