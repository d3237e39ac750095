"""The one clock of the node: a thread that drives every actor's ``Tick`` (Pykka has no timers).

The thread sleeps until the earliest target is due, not on a fixed beat: an idle node wakes
only when some actor's interval has passed (it polled every 25 ms before, 40 wakeups a second
that found nothing due most of the time). Targets that fall due within ``resolution`` of each
other are ticked in the same wakeup, so actors with related intervals (the Raft and gossip
ticks) share one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pykka

from orion.actors.messages import Tick, TickGate

IDLE_WAIT_S = 1.0  # the longest sleep with no target to tick


@dataclass(slots=True)
class _Target:
    ref: pykka.ActorRef
    interval: float
    next_at: float = 0.0
    gate: TickGate = field(default_factory=TickGate)


class Ticker:
    def __init__(self, resolution: float = 0.002) -> None:
        if resolution < 0:
            raise ValueError(f"resolution: must be seconds >= 0, got {resolution}")
        self._targets: list[_Target] = []
        self._resolution = resolution
        self._stopping = False
        self._wake = threading.Event()  # set by stop() and add(): the sleep ends early
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def add(self, ref: pykka.ActorRef, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"interval: must be seconds > 0, got {interval}")
        self._targets.append(_Target(ref, interval))
        self._wake.set()  # due at once: the running thread must not sleep past it

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before looking at the targets: a later add() ends the wait
            earliest = self._tick_due(time.monotonic())
            self._wake.wait(max(0.0, earliest - time.monotonic()))

    def _tick_due(self, now: float) -> float:
        """Tick every target due by ``now`` (plus the resolution); when the next one is due."""
        earliest = now + IDLE_WAIT_S
        horizon = now + self._resolution
        for target in list(self._targets):  # add() may append from another thread
            if target.next_at <= horizon:
                # A target whose last tick is still unhandled skips this one: the gate
                # coalesces ticks, and the interval counts from now either way.
                target.next_at = now + target.interval
                if target.gate.try_arm():
                    try:
                        target.ref.tell(Tick(now, target.gate))
                    except pykka.ActorDeadError:
                        target.gate.release()
            earliest = min(earliest, target.next_at)
        return earliest
