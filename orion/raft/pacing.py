"""Pacing for work a background thread does beside the Raft thread in one interpreter.

Python threads share one lock. A thread that wants it waits until the holder lets go, at the
latest one switch interval (5 ms) after asking, and only while the holder runs: on a busy
machine the holder is often preempted with the lock held, and then the Raft thread waits for
it to be scheduled again (waits of 30-80 ms were measured while a 100k-task snapshot was
written at load average 6 on two cores). A ``Pacer`` makes the background thread sleep, lock
released, as long as it worked, so it holds the lock about half the time and gives it up on
its own every few milliseconds; when the machine is busy its steps take longer and so do its
sleeps. The work takes about twice as long; nothing waits for it.
"""

from __future__ import annotations

import time

STEP_S = 0.002  # work between sleeps: well under the switch interval


class Pacer:
    """Call it between small units of work; it sleeps once ``step`` seconds of work are done,
    for ``idle_ratio`` times the time worked. One thread only."""

    def __init__(self, step: float = STEP_S, idle_ratio: float = 1.0) -> None:
        if step <= 0 or idle_ratio < 0:
            raise ValueError(f"pacer: step must be > 0 and idle_ratio >= 0, got {step}, {idle_ratio}")
        self._step = step
        self._idle_ratio = idle_ratio
        self._since = time.perf_counter()
        self.slept = 0.0  # seconds, for reports

    def __call__(self) -> None:
        worked = time.perf_counter() - self._since
        if worked >= self._step:
            pause = worked * self._idle_ratio
            time.sleep(pause)
            self.slept += pause
            self._since = time.perf_counter()
