"""An actor inbox that also keeps the actor's own timer: the Raft actor's ``Tick`` without a ticker.

A ``Tick`` from the node's ticker costs two wakeups (the ticker's thread, then the actor's) and
a hand-over of the interpreter lock between them; on an idle leader that is its heartbeat, ten
times a second. This inbox is the actor's Pykka mailbox (a ``queue.Queue`` with a deadline):
the actor's own thread waits for a message *or* its deadline in one timed wait, and when the
deadline passes a ``Tick`` is queued behind whatever is already waiting, in the order a ticker's
``Tick`` sent then would have had (answers that arrived before a heartbeat's deadline are still
seen before it: a CheckQuorum round counts them). One ``Tick`` at a time: a new one is queued
only once the owner has asked for the next deadline (``tick_at``), so a busy actor never finds
a storm of them, as the ticker's ``TickGate`` ensured.

The owner may also leave work for the moment its thread is about to block (``before_wait``):
the Raft actor hands its held frames to the transport then, so the transport's thread wakes
while this one sleeps instead of waiting for the interpreter lock this one still holds.

Only the owning actor's thread calls ``tick_at`` (while handling a message); ``put`` may come
from any thread.
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


class TimedInbox(queue.Queue[Any]):
    def __init__(self, make_tick: Callable[[float], Any]) -> None:
        """``make_tick(now)``: the message queued when the deadline passes (``now``: monotonic s)."""
        super().__init__()
        self._make_tick = make_tick
        self.before_wait: Callable[[], None] | None = None  # the owner's, called on its thread
        self._tick_at = NEVER
        self.ticks = 0  # Ticks queued so far (tests count them)

    def tick_at(self, when: float) -> None:
        """Queue a Tick at monotonic ``when`` (replacing any earlier wish); ``NEVER``: none."""
        self._tick_at = when

    @property
    def next_tick(self) -> float:
        return self._tick_at

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self.not_empty:
            deadline = NEVER if timeout is None or not block else time.monotonic() + timeout
            while True:
                now = time.monotonic()
                if self._tick_at <= now + EARLY_S:
                    self._tick_at = NEVER
                    self.ticks += 1
                    self._put(Envelope(self._make_tick(now)))
                if self._qsize():
                    item = self._get()
                    self.not_full.notify()
                    return item
                if not block or deadline <= now:
                    raise queue.Empty
                if self.before_wait is not None:
                    self.mutex.release()  # senders may queue meanwhile: looked at again below
                    try:
                        self.before_wait()
                    finally:
                        self.mutex.acquire()
                    if self._qsize() or self._tick_at <= time.monotonic() + EARLY_S:
                        continue
                wake = min(self._tick_at, deadline)
                self.not_empty.wait(None if wake == NEVER else wake - now)
