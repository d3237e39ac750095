"""What the leader knows about one follower's log, and how it paces sending to it."""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0  # one AppendEntries at a time until the follower's log position is found
    REPLICATE = 1  # pipelined: up to max_inflight AppendEntries outstanding
    SNAPSHOT = 2  # an InstallSnapshot is outstanding; nothing else is sent


class Progress:
    __slots__ = (
        "inflight",
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
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.paused = False
        self.inflight.clear()

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.snapshot_index = index
        self.snapshot_wait = 0
        self.inflight.clear()

    def update(self, index: int) -> bool:
        """The follower matches up to ``index``; False if that is old news."""
        if index <= self.match:
            return False
        self.match = index
        if self.next <= index:
            self.next = index + 1
        self.paused = False
        inflight = self.inflight
        while inflight and inflight[0] <= index:
            inflight.popleft()
        return True
