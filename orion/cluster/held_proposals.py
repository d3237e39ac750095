"""Writes a busy leader holds back until its entries in flight commit: one round trip, one batch.

A leader that proposed each write as it came sent an AppendEntries, and made a DuckDB commit,
for every burst of writes that found its thread idle, however few; then a second AppendEntries
to each follower when those entries committed, only to carry the new commit index, and every
one of those frames was answered. On two cores shared by three members each of those rounds
costs more CPU than the writes it carries (issue 16, session 7: ~5 ms of CPU summed over the
members per leader commit, 5.6 writes per commit at 16 concurrent clients).

So while the leader has entries that are not yet committed, new writes wait here; when those
entries commit (the answer that commits them is what releases the held writes, so the next
AppendEntries carries the new commit index and the new entries together) or after
``HOLD_MAX_S`` (a quorum that is slow or gone: the writes are then proposed as they would have
been), they are proposed together, in the order they came. A leader with nothing in flight (a
lone client, an idle cluster) proposes at once, so a single write waits for nothing.

Only the timing changes: each write is proposed on the leader's own Raft thread exactly as
before (quorum check, placement, one entry each), in arrival order, and answered when applied.
Pure: no threads or clocks; time comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from orion.cluster.outcome import Callback, Outcome
from orion.raft.core import LEADER, RaftCore

# The longest a write waits for the entries ahead of it to commit. A quorum round trip is 2-5 ms
# on a quiet machine (a follower's DuckDB commit and two loopback hops); under load it is longer,
# and holding on then is what keeps the batches large.
HOLD_MAX_S = 0.02


@dataclass(frozen=True, slots=True)
class HeldWrite:
    data: bytes
    callback: Callback | None
    deadline: float  # the write's own timeout, counted from its arrival


class HeldProposals:
    def __init__(self, hold_max: float = HOLD_MAX_S) -> None:
        self.hold_max = hold_max
        self._writes: list[HeldWrite] = []
        self._since = 0.0  # arrival of the oldest write held
        self._until = 0  # the leader's last index then: the held writes go once it commits

    def __len__(self) -> int:
        return len(self._writes)

    def holds(self, core: RaftCore) -> bool:
        """Whether a write arriving now waits: the leader has entries in flight, or writes that
        came earlier still wait (they keep their order)."""
        return bool(self._writes) or (core.role == LEADER and core.last_index > core.commit_index)

    def add(self, write: HeldWrite, core: RaftCore, now: float) -> None:
        if not self._writes:
            self._since = now
            self._until = core.last_index
        self._writes.append(write)

    def due(self, core: RaftCore, now: float) -> bool:
        """Whether the held writes go now: what was in flight when the first of them came has
        committed (after a wait that ran out, newer entries may be in flight too: they do not hold
        these back), the wait ran out, or this node no longer leads (the request path forwards or
        parks them)."""
        if not self._writes:
            return False
        return core.role != LEADER or core.commit_index >= self._until or now >= self._since + self.hold_max

    def take(self) -> list[HeldWrite]:
        writes, self._writes = self._writes, []
        return writes

    def next_deadline(self) -> float | None:
        """When the held writes go at the latest (None: none held)."""
        return self._since + self.hold_max if self._writes else None

    def fail_all(self, outcome: Outcome) -> None:
        """The node stops: every held write's caller hears ``outcome``."""
        for write in self.take():
            if write.callback is not None:
                write.callback(outcome)
