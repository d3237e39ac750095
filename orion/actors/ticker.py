"""The one clock of the node: a thread that drives every actor's ``Tick`` (Pykka has no timers)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pykka

from orion.actors.messages import Tick, TickGate


@dataclass(slots=True)
class _Target:
    ref: pykka.ActorRef
    interval: float
    next_at: float = 0.0
    gate: TickGate = field(default_factory=TickGate)


class Ticker:
    def __init__(self, resolution: float = 0.025) -> None:
        self._targets: list[_Target] = []
        self._resolution = resolution
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def add(self, ref: pykka.ActorRef, interval: float) -> None:
        self._targets.append(_Target(ref, interval))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(self._resolution):
            now = time.monotonic()
            for target in self._targets:
                if now < target.next_at:
                    continue
                target.next_at = now + target.interval
                if target.gate.try_arm():
                    try:
                        target.ref.tell(Tick(now, target.gate))
                    except pykka.ActorDeadError:
                        target.gate.release()
