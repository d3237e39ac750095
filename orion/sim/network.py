"""A seeded, virtual-time network for the Raft simulator: drops, delays, duplicates, reorders
and partitions frames. Time is counted in core ticks; delivery order is a pure function of
the seed.

It carries what the shells send: encoded ``Envelope`` frames (identity plus a Raft message or a
snapshot chunk or ack). A frame is decoded once, on the way in, and delivered as an envelope.
The transport's frame limit is modelled: a frame over ``max_frame`` bytes is dropped and
counted, as the real transport drops it.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from orion.raft.envelope import Body, Envelope, decode_envelope, encode_envelope
from orion.raft.messages import AppendEntries, Heartbeat, Message, RequestVote, TimeoutNow
from orion.raft.snapshot_stream import SnapshotChunk

_REQUESTS = (AppendEntries, Heartbeat, RequestVote, SnapshotChunk, TimeoutNow)


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
        max_frame: int = 0,
    ) -> None:
        self.rng = rng
        self.drop = drop  # probability a frame is lost
        self.duplicate = duplicate  # probability a frame is delivered twice
        self.max_delay = max_delay  # delay in ticks, uniform in [0, max_delay]: reorders
        self.long_delay = long_delay  # probability of a long delay (MIT's "long reordering")
        self.long_delay_ticks = long_delay_ticks
        # The transport's frame limit (0 = none): a bigger frame is dropped and counted; a
        # sender that respects its limits (bytes per append, chunked snapshots) causes none.
        self.max_frame = max_frame
        self.oversize: dict[str, int] = {}  # body type -> frames dropped for their size
        self.largest_frame = 0
        self._cut: set[tuple[str, str]] = set()  # directed links that lose everything
        self._queue: list[tuple[int, int, Envelope]] = []
        self._seq = 0
        self.sent = 0
        self.requests = 0  # RPC requests only (what MIT's lab counts as RPCs)
        self.by_type: dict[type, int] = {}
        self.bytes_sent = 0
        # Frames a test injects as bare messages get the identity their sender's shell would
        # give them (set by the cluster).
        self.stamp: Callable[[Message], Envelope] | None = None
        # Watchers of every message sent (before any loss), for tests.
        self.observers: list[Callable[[Body], None]] = []
        # An adversary's hand on the wire (targeted schedules): messages it matches are held
        # back, not delivered, until ``release`` lets chosen ones through, in any order.
        self.hold: Callable[[Body], bool] | None = None
        self.held: list[Envelope] = []

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
    def send_frame(self, frame: bytes, now: int) -> None:
        """One encoded envelope from a shell."""
        self._send(decode_envelope(frame), len(frame), now)

    def send(self, msg: Message, now: int) -> None:
        """A bare message (a test driving a core by hand), framed as its sender would."""
        envelope = self.stamp(msg) if self.stamp is not None else Envelope("", "", "", msg)
        self._send(envelope, len(encode_envelope(envelope)), now)

    def _send(self, envelope: Envelope, size: int, now: int) -> None:
        body = envelope.body
        self.sent += 1
        kind = type(body)
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        if kind in _REQUESTS:
            self.requests += 1
        self.bytes_sent += size
        self.largest_frame = max(self.largest_frame, size)
        for observer in self.observers:
            observer(body)
        if self.max_frame and size > self.max_frame:
            self.oversize[kind.__name__] = self.oversize.get(kind.__name__, 0) + 1
            return
        if self.hold is not None and self.hold(body):
            self.held.append(envelope)
            return
        if (body.src, body.dst) in self._cut:
            return
        rng = self.rng
        if self.drop and rng.random() < self.drop:
            return
        self._enqueue(envelope, now)
        if self.duplicate and rng.random() < self.duplicate:
            self._enqueue(envelope, now)

    def _enqueue(self, envelope: Envelope, now: int) -> None:
        delay = 0
        if self.max_delay:
            delay = self.rng.randint(0, self.max_delay)
        if self.long_delay and self.rng.random() < self.long_delay:
            delay += self.rng.randint(1, self.long_delay_ticks)
        self._seq += 1
        heapq.heappush(self._queue, (now + delay, self._seq, envelope))

    def release(self, now: int, match: Callable[[Body], bool] = lambda _body: True) -> int:
        """Deliver (at ``now``, in the order sent) the held frames whose body ``match``es;
        returns how many. Cut links still lose them."""
        keep: list[Envelope] = []
        released = 0
        for envelope in self.held:
            body = envelope.body
            if match(body):
                released += 1
                if (body.src, body.dst) not in self._cut:
                    self._seq += 1
                    heapq.heappush(self._queue, (now, self._seq, envelope))
            else:
                keep.append(envelope)
        self.held = keep
        return released

    def due(self, now: int) -> list[Envelope]:
        """Frames to deliver now, in delivery order; cut links lose frames in flight."""
        out: list[Envelope] = []
        queue = self._queue
        cut = self._cut
        while queue and queue[0][0] <= now:
            envelope = heapq.heappop(queue)[2]
            body = envelope.body
            if not cut or (body.src, body.dst) not in cut:
                out.append(envelope)
        return out

    def pending(self) -> int:
        return len(self._queue)
