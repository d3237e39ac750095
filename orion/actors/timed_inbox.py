"""An actor inbox that also keeps the actor's own timer: the Raft actor's ``Tick`` without a ticker.

A ``Tick`` from the node's ticker costs two wakeups (the ticker's thread, then the actor's) and
a hand-over of the interpreter lock between them; on an idle leader that is its heartbeat, ten
times a second. This inbox is the actor's Pykka mailbox with a deadline: the actor's own
thread waits for a message *or* its deadline in one timed wait, and when the
deadline passes a ``Tick`` is queued behind whatever is already waiting, in the order a ticker's
``Tick`` sent then would have had (answers that arrived before a heartbeat's deadline are still
seen before it: a CheckQuorum round counts them). One ``Tick`` at a time: a new one is queued
only once the owner has asked for the next deadline (``tick_at``), so a busy actor never finds
a storm of them, as the ticker's ``TickGate`` ensured.

The owner may also leave work for the moment its thread is about to block (``before_wait``):
the Raft actor hands its held frames to the transport then, so the transport's thread wakes
while this one sleeps instead of waiting for the interpreter lock this one still holds.

The queue is a ``queue.SimpleQueue`` (its wait is one lock acquire in C): a wakeup through
``queue.Queue``'s Python ``Condition`` cost about twice the CPU here (~105 against ~63 us of a
timed wait on this VM, where the wakeups of an idle node are most of its CPU).

Only the owning actor's thread calls ``get`` and ``tick_at`` (while handling a message); ``put``
may come from any thread.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

from pykka._envelope import Envelope

NEVER = float("inf")
# A deadline this close counts as passed: a timed wait may return a hair early, and waiting
# again for the rest would be a wakeup for nothing (the Raft actor pays ticks 5 ms early too).
EARLY_S = 0.001


class TimedInbox:
    """What Pykka uses of an inbox (``put``, ``get``, ``empty``) over a ``queue.SimpleQueue``."""

    def __init__(self, make_tick: Callable[[float], Any]) -> None:
        """``make_tick(now)``: the message queued when the deadline passes (``now``: monotonic s)."""
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._make_tick = make_tick
        self._tick_at = NEVER
        self.before_wait: Callable[[], None] | None = None  # the owner's, called on its thread
        self.ticks = 0  # Ticks queued so far (tests count them)

    def tick_at(self, when: float) -> None:
        """Queue a Tick at monotonic ``when`` (replacing any earlier wish); ``NEVER``: none."""
        self._tick_at = when

    @property
    def next_tick(self) -> float:
        return self._tick_at

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._queue.put(item)

    def empty(self) -> bool:
        return self._queue.empty()

    def qsize(self) -> int:
        return self._queue.qsize()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The next message, a Tick queued behind those waiting once the deadline has passed."""
        queued = self._queue
        deadline = NEVER if timeout is None or not block else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if self._tick_at <= now + EARLY_S:
                self._tick_at = NEVER
                self.ticks += 1
                queued.put(Envelope(self._make_tick(now)))
            if not queued.empty() or not block:
                return queued.get_nowait()  # raises queue.Empty when not blocking and empty
            if self.before_wait is not None:
                self.before_wait()  # what arrives meanwhile ends the wait below at once
            wake = min(self._tick_at, deadline)
            try:
                return queued.get(timeout=None if wake == NEVER else max(0.0, wake - now))
            except queue.Empty:
                if deadline <= time.monotonic():
                    raise
