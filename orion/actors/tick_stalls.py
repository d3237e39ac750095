"""Late ticks of the Raft actor: something held its thread (or the interpreter) long enough to
delay a heartbeat by more than a tick. Said at most once a second, with the count and the
worst gap; the catch-up benchmark (tools/bench) reads these lines."""

from __future__ import annotations

from loguru import logger

STALL_TICKS = 2  # ticks this far apart delayed a heartbeat by more than one tick


class TickStalls:
    def __init__(self, tick: float) -> None:
        self.tick = tick  # the expected seconds between ticks
        self._last: float | None = None
        self._late = 0  # late ticks since the last report
        self._worst = 0.0  # the longest gap among them (s)
        self._reported = 0.0

    def on_tick(self, now: float, previous: float | None = None) -> None:
        """``previous``: when the tick before this one was due, for a host that sleeps through
        ticks with nothing due (the Raft actor); by default the last call's time."""
        last, self._last = self._last, now
        if previous is not None:
            last = previous
        if last is not None and now - last > STALL_TICKS * self.tick:
            self._late += 1
            self._worst = max(self._worst, now - last)
        if self._late and now - self._reported >= 1.0:
            logger.warning(
                "raft: {} late tick(s), worst {:.0f} ms between ticks", self._late, self._worst * 1000
            )
            self._late, self._worst = 0, 0.0
            self._reported = now
