"""What the leader knows about one follower's log, and how it paces sending to it."""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0  # one AppendEntries at a time until the follower's log position is found
    REPLICATE = 1  # pipelined: up to max_inflight AppendEntries (and max_inflight_bytes) outstanding
    SNAPSHOT = 2  # an InstallSnapshot is outstanding; nothing else is sent


class Progress:
    __slots__ = (
        "inflight",
        "inflight_bytes",
        "inflight_sizes",
        "last_heard",
        "match",
        "next",
        "paused",
        "read_ack",
        "recent_active",
        "snapshot_index",
        "snapshot_wait",
        "state",
    )

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.paused = False  # PROBE: one append outstanding, wait for an answer or a heartbeat
        self.inflight: deque[int] = deque()  # REPLICATE: last index of each outstanding append
        self.inflight_sizes: deque[int] = deque()  # entry bytes of each, in the same order
        self.inflight_bytes = 0  # their sum
        self.recent_active = False  # heard from it since the last CheckQuorum round
        self.read_ack = 0  # highest ReadIndex sequence it confirmed in this term
        self.snapshot_index = 0  # SNAPSHOT: index of the snapshot sent
        self.snapshot_wait = 0  # SNAPSHOT: heartbeat rounds without an answer
        self.last_heard = 0  # leader tick count when it last answered

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.snapshot_index + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.paused = False
        self.clear_inflight()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.paused = False
        self.clear_inflight()

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.snapshot_index = index
        self.snapshot_wait = 0
        self.clear_inflight()

    def clear_inflight(self) -> None:
        self.inflight.clear()
        self.inflight_sizes.clear()
        self.inflight_bytes = 0

    def sent(self, last_index: int, nbytes: int) -> None:
        """An append ending at ``last_index`` carrying ``nbytes`` of entries is outstanding."""
        self.inflight.append(last_index)
        self.inflight_sizes.append(nbytes)
        self.inflight_bytes += nbytes

    def inflight_full(self, max_count: int, max_bytes: int) -> bool:
        """No more appends until some are acknowledged (``max_bytes`` 0: no byte limit).
        The byte limit may be overshot by one message, as in etcd: a message is sent whenever
        the window is not yet full, so one oversize entry can always go."""
        return len(self.inflight) >= max_count or (max_bytes > 0 and self.inflight_bytes >= max_bytes)

    def free_first(self) -> None:
        """Release the oldest outstanding append (its answer was probably lost: a heartbeat
        answer shows the follower is alive, so let one more through)."""
        if self.inflight:
            self.inflight.popleft()
            self.inflight_bytes -= self.inflight_sizes.popleft()

    def update(self, index: int) -> bool:
        """The follower matches up to ``index``; False if that is old news."""
        if index <= self.match:
            return False
        self.match = index
        if self.next <= index:
            self.next = index + 1
        self.paused = False
        inflight = self.inflight
        if inflight and inflight[0] <= index:
            sizes = self.inflight_sizes
            freed = 0
            while inflight and inflight[0] <= index:
                inflight.popleft()
                freed += sizes.popleft()
            self.inflight_bytes -= freed
        return True
