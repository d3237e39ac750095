"""A seeded, virtual-time network for the Raft simulator: drops, delays, duplicates, reorders
and partitions messages. Time is counted in core ticks; delivery order is a pure function of
the seed."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from orion.raft.messages import (
    AppendEntries,
    Heartbeat,
    InstallSnapshot,
    Message,
    RequestVote,
    TimeoutNow,
    decode_message,
    encode_message,
)

_REQUESTS = (AppendEntries, Heartbeat, RequestVote, InstallSnapshot, TimeoutNow)


class SimNetwork:
    def __init__(
        self,
        rng: random.Random,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        max_delay: int = 0,
        long_delay: float = 0.0,
        long_delay_ticks: int = 20,
        wire: bool = False,
        max_frame: int = 0,
    ) -> None:
        self.rng = rng
        self.drop = drop  # probability a message is lost
        self.duplicate = duplicate  # probability a message is delivered twice
        self.max_delay = max_delay  # delay in ticks, uniform in [0, max_delay]: reorders
        self.long_delay = long_delay  # probability of a long delay (MIT's "long reordering")
        self.long_delay_ticks = long_delay_ticks
        self.wire = wire  # encode and decode every message (exercises the codec, counts bytes)
        # The transport's frame limit (0 = none): a bigger frame is dropped, as the real
        # transport drops it, and counted: a sender that respects its limits causes none.
        self.max_frame = max_frame
        self.oversize: dict[str, int] = {}  # message type -> frames dropped for their size
        self._cut: set[tuple[str, str]] = set()  # directed links that lose everything
        self._queue: list[tuple[int, int, Message]] = []
        self._seq = 0
        self.sent = 0
        self.requests = 0  # RPC requests only (what MIT's lab counts as RPCs)
        self.by_type: dict[type, int] = {}
        self.bytes_sent = 0
        # An adversary's hand on the wire (targeted schedules): messages it matches are held
        # back, not delivered, until ``release`` lets chosen ones through, in any order.
        self.hold: Callable[[Message], bool] | None = None
        self.held: list[Message] = []

    # -------------------------------------------------------------- faults
    def disconnect(self, node: str, others: list[str]) -> None:
        for other in others:
            if other != node:
                self._cut.add((node, other))
                self._cut.add((other, node))

    def connect(self, node: str, others: list[str]) -> None:
        for other in others:
            self._cut.discard((node, other))
            self._cut.discard((other, node))

    def partition(self, *groups: list[str]) -> None:
        """Only nodes in the same group can talk (previous cuts are replaced)."""
        self._cut.clear()
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                for x in a:
                    for y in b:
                        self._cut.add((x, y))
                        self._cut.add((y, x))

    def heal(self) -> None:
        self._cut.clear()

    def connected(self, a: str, b: str) -> bool:
        return (a, b) not in self._cut

    # -------------------------------------------------------------- traffic
    def send(self, msg: Message, now: int) -> None:
        self.sent += 1
        kind = type(msg)
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        if kind in _REQUESTS:
            self.requests += 1
        if self.wire or self.max_frame:
            buf = encode_message(msg)
            self.bytes_sent += len(buf)
            if self.max_frame and len(buf) > self.max_frame:
                name = kind.__name__
                self.oversize[name] = self.oversize.get(name, 0) + 1
                return
            if self.wire:
                msg = decode_message(buf)
        if self.hold is not None and self.hold(msg):
            self.held.append(msg)
            return
        if (msg.src, msg.dst) in self._cut:
            return
        rng = self.rng
        if self.drop and rng.random() < self.drop:
            return
        self._enqueue(msg, now)
        if self.duplicate and rng.random() < self.duplicate:
            self._enqueue(msg, now)

    def _enqueue(self, msg: Message, now: int) -> None:
        delay = 0
        if self.max_delay:
            delay = self.rng.randint(0, self.max_delay)
        if self.long_delay and self.rng.random() < self.long_delay:
            delay += self.rng.randint(1, self.long_delay_ticks)
        self._seq += 1
        heapq.heappush(self._queue, (now + delay, self._seq, msg))

    def release(self, now: int, match: Callable[[Message], bool] = lambda _msg: True) -> int:
        """Deliver (at ``now``, in the order sent) the held messages that ``match``; returns how
        many. Cut links still lose them."""
        keep: list[Message] = []
        released = 0
        for msg in self.held:
            if match(msg):
                released += 1
                if (msg.src, msg.dst) not in self._cut:
                    self._seq += 1
                    heapq.heappush(self._queue, (now, self._seq, msg))
            else:
                keep.append(msg)
        self.held = keep
        return released

    def due(self, now: int) -> list[Message]:
        """Messages to deliver now, in delivery order; cut links lose messages in flight."""
        out: list[Message] = []
        queue = self._queue
        cut = self._cut
        while queue and queue[0][0] <= now:
            msg = heapq.heappop(queue)[2]
            if not cut or (msg.src, msg.dst) not in cut:
                out.append(msg)
        return out

    def pending(self) -> int:
        return len(self._queue)
