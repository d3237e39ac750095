"""A TimedInbox whose thread also runs a peer transport while it waits (the gossip and Raft actors).

An idle node's gossip is a few frames a second each way (probes, their acks, the peers' probes);
with a transport thread of its own each frame is two wakeups, the transport's and then the
actor's, and each send another of the transport's. Here the actor's own thread waits in the
transport's poll (``PeerTransport.serve``): a frame is read, handed to ``on_frame`` and handled
by the one thread that woke, and the actor's sends are written at once.

Messages from other threads cannot end a ZeroMQ poll through a ``queue.SimpleQueue``: they go
to a ``Mailbox``, whose pipe the poll watches (its first ``put`` after a drain writes the pipe,
later ones find the wakeup pending). The owning thread's own ``tell`` (a frame from
``on_frame``, a message to itself) goes straight to the queue. Before a Tick is queued the
transport is read once without waiting, so frames that arrived by the deadline are handled
before it, as they were when a transport thread queued them on arrival (unless the wait that
just ended was that poll, run up to the deadline with nothing readable); and while messages keep
the actor busy (a burst of writes), the transport is read without waiting at least every
``BUSY_TURN_S``, so frames are never left unread behind a long queue (a transport thread read
them as they came, between the actor's turns of the interpreter lock).

A frame read without waiting (those reads) may have come at any time since the sockets were
last read: the thread may have been held meanwhile (a long DuckDB commit behind a snapshot's).
``frame_time`` then gives that earlier time, not the time of the read, as a transport thread's
stamp would have been: the Raft actor pays its core the ticks owed up to a frame's time before
the core sees it, so a read stamped after a 450-ms hold paid a follower's election timeout
before the leader's heartbeats that had waited in the socket meanwhile (a PreVote for nothing).

Until ``host`` is called it is a plain TimedInbox (a transport started with a thread of its own).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from pykka._envelope import Envelope

from orion.actors.timed_inbox import EARLY_S, NEVER, TimedInbox
from orion.transport.mailbox import Mailbox
from orion.transport.peer import PeerTransport

BUSY_TURN_S = 0.002  # the longest a busy host leaves its transport unread between messages


class HostedInbox(TimedInbox):
    def __init__(self, make_tick: Callable[[float], Any]) -> None:
        super().__init__(make_tick)
        self._transport: PeerTransport | None = None
        self._others: Mailbox[Any] = Mailbox()  # puts from other threads; its pipe ends the poll
        self._owner: int | None = None
        self._last_turn = 0.0  # monotonic time of the transport's last turn on this thread
        self._reading_since: float | None = None  # during a read without waiting: _last_turn
        self._looked = False  # ``empty`` read the sockets since ``get`` last handed out a message

    def host(self, transport: PeerTransport) -> None:
        """Run ``transport`` (bound with ``bind``) on this inbox's thread; before the actor starts."""
        if not transport.hosted:
            raise ValueError(f"transport {transport.name}: bind() it, not start(), to host it")
        self._transport = transport

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if self._transport is None or threading.get_ident() == self._owner:
            self._queue.put(item)
        elif not self._others.put(item):
            # Closed (the actor has stopped) or full: Pykka's own queue would have taken it.
            self._queue.put(item)

    def empty(self) -> bool:
        if not self._queue.empty() or len(self._others):
            return False
        transport = self._transport
        if transport is not None and threading.get_ident() == self._owner:
            # Frames waiting in the sockets count as queued, as a transport thread would have
            # queued them: the Raft actor batches the Ready of messages queued together into
            # one write (group commit), and drains at once only when nothing else waits.
            # Once per message: what comes after that read is read before this thread waits
            # (``get`` polls before it blocks), so asking again only costs a poll.
            if not self._looked:
                self._looked = True
                self._read_waiting(transport)
            return self._queue.empty()
        return True

    def qsize(self) -> int:
        return self._queue.qsize() + len(self._others)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        transport = self._transport
        if transport is None:
            return super().get(block, timeout)
        self._owner = threading.get_ident()
        queued = self._queue
        deadline = NEVER if timeout is None or not block else time.monotonic() + timeout
        timed_out = False  # the wait that just ended polled up to its end and found nothing
        while True:
            self._take_others()
            now = time.monotonic()
            if self._tick_at <= now + EARLY_S:
                if not timed_out:  # else that poll already looked, up to the deadline
                    self._read_waiting(transport)  # frames that came by the deadline go before its Tick
                    self._take_others()
                self._tick_at = NEVER
                self.ticks += 1
                queued.put(Envelope(self._make_tick(now)))
            if not queued.empty():
                if now - self._last_turn >= BUSY_TURN_S:
                    self._read_waiting(transport)  # frames waiting in the sockets queue behind these
                self._looked = False
                return queued.get_nowait()
            if not block:
                self._looked = False
                return queued.get_nowait()  # raises queue.Empty
            if self.before_wait is not None:
                self.before_wait()
            wake = min(self._tick_at, deadline)
            timed_out = not transport.serve(60.0 if wake == NEVER else wake - now, self._others.fileno())
            self._last_turn = time.monotonic()
            if queued.empty() and not len(self._others) and deadline <= time.monotonic():
                raise queue.Empty

    def frame_time(self) -> float:
        """The time to stamp a frame being handed over now with (monotonic seconds): when the
        sockets were last read if this is a read without waiting, else now (a wait ends as
        soon as a frame is readable)."""
        since = self._reading_since
        return time.monotonic() if since is None else since

    def _read_waiting(self, transport: PeerTransport) -> None:
        """Read what waits in the sockets without waiting for more; see ``frame_time``."""
        self._reading_since = self._last_turn
        try:
            transport.serve(0.0)
        finally:
            self._reading_since = None
            self._last_turn = time.monotonic()

    def _take_others(self) -> None:
        if len(self._others):
            for item in self._others.drain():
                self._queue.put(item)

    def close(self) -> None:
        """On the owner's thread, as the actor stops: what other threads sent meanwhile is kept
        (Pykka answers what is left with ActorDeadError); later puts go to the queue."""
        self._take_others()
        self._others.close()
