"""A linearizability checker for reads of the simulator's replicated KV store.

Writes are totally ordered by their log index, so the checker does not search for a write
order: it checks each read against the history of writes and of earlier reads. A read of key
``k`` observes the state of the store after applying the log up to some index ``A`` (the FSM's
applied index when the read was served) and returns ``k``'s value there. It is linearizable
with respect to the writes and the other reads only if:

1. it observes every write acknowledged before it was invoked: ``A`` >= the index of every
   write that was known committed (applied anywhere) when the read was invoked;
2. it does not go back in time: ``A`` >= the index observed by every read that completed
   before it was invoked;
3. the value it returned is the value of the last write to ``k`` at or below ``A`` in the
   committed log (or absent if there is none): it observed a real state of the log, not a
   write that was never committed or a state assembled from another history.

Every call is one event; the checker stamps events with its own logical clock, so "before"
means "recorded earlier" (finer than a simulator tick, which contains many events). A
violation raises ``LinearizabilityViolation`` naming the seed, the read, its ticks and the
write it missed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


class LinearizabilityViolation(AssertionError):
    pass


@dataclass(frozen=True)
class PendingRead:
    key: bytes
    invoked_at: int  # logical time
    invoked_tick: int
    must_reach: int  # highest acknowledged write index at invocation
    acked_tick: int  # when that write was acknowledged
    floor: int  # highest index observed by a read that completed before this one was invoked


@dataclass(frozen=True)
class CompletedRead:
    read_id: bytes
    key: bytes
    value: bytes | None
    index: int
    invoked_tick: int
    completed_tick: int


class LinearizabilityChecker:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._time = 0
        self._writes: dict[bytes, tuple[list[int], list[bytes]]] = {}  # key -> (indexes, values)
        self._write_ticks: dict[int, int] = {}  # index -> tick it was acknowledged
        self._committed_upto = 0  # highest index reported committed
        self._max_acked = 0  # highest index of an acknowledged write
        self._max_read = 0  # highest index observed by a completed read
        self._pending: dict[bytes, PendingRead] = {}
        self.completed: list[CompletedRead] = []
        self.failed = 0  # reads refused (leadership lost): no answer, nothing to check

    def _now(self) -> int:
        self._time += 1
        return self._time

    def fail(self, what: str) -> None:
        raise LinearizabilityViolation(f"seed={self.seed}: {what}")

    # -------------------------------------------------------------- writes
    def on_commit(self, index: int, key: bytes | None, value: bytes, tick: int) -> None:
        """The entry at ``index`` is known committed (first applied anywhere): the write is
        acknowledged. ``key`` is None for entries that write nothing (no-ops, configuration).
        Entries must be reported in index order; repeats are ignored."""
        self._now()
        if index <= self._committed_upto:
            return
        if index != self._committed_upto + 1:
            raise ValueError(f"on_commit: index {index} reported after {self._committed_upto}")
        self._committed_upto = index
        if key is None:
            return
        indexes, values = self._writes.setdefault(key, ([], []))
        indexes.append(index)
        values.append(value)
        self._write_ticks[index] = tick
        self._max_acked = index

    def value_at(self, key: bytes, index: int) -> bytes | None:
        """The value of ``key`` after applying the committed log up to ``index``."""
        writes = self._writes.get(key)
        if writes is None:
            return None
        indexes, values = writes
        pos = bisect.bisect_right(indexes, index)
        return values[pos - 1] if pos else None

    # -------------------------------------------------------------- reads
    def on_read_invoked(self, read_id: bytes, key: bytes, tick: int) -> None:
        if read_id in self._pending:
            raise ValueError(f"read id {read_id!r} is already pending")
        must_reach = self._max_acked
        self._pending[read_id] = PendingRead(
            key, self._now(), tick, must_reach, self._write_ticks.get(must_reach, 0), self._max_read
        )

    def on_read_failed(self, read_id: bytes) -> None:
        """The read was refused (the leader lost leadership): the client got no value."""
        self._now()
        if self._pending.pop(read_id, None) is not None:
            self.failed += 1

    def on_read_lost(self, read_id: bytes) -> None:
        """The node serving the read crashed: the client never got an answer."""
        self._now()
        self._pending.pop(read_id, None)

    def on_read_completed(self, read_id: bytes, value: bytes | None, index: int, tick: int) -> None:
        """The read was served: it returned ``value`` from the state at applied index ``index``."""
        self._now()
        read = self._pending.pop(read_id, None)
        if read is None:
            raise ValueError(f"read id {read_id!r} was never invoked (or already completed)")
        where = (
            f"read {read_id!r} of {read.key!r} (invoked at tick {read.invoked_tick}, served at tick {tick})"
        )
        if index > self._committed_upto:
            self.fail(f"{where} observed index {index}, beyond the committed log ({self._committed_upto})")
        if index < read.must_reach:
            self.fail(
                f"stale read: {where} observed index {index} but the write at index {read.must_reach} "
                f"was acknowledged at tick {read.acked_tick}, before the read was invoked"
            )
        if index < read.floor:
            self.fail(
                f"read went back in time: {where} observed index {index}, but a read that completed "
                f"before it was invoked observed index {read.floor}"
            )
        expected = self.value_at(read.key, index)
        if value != expected:
            self.fail(
                f"{where} returned {value!r}, but the committed log up to index {index} gives {expected!r}"
            )
        if index > self._max_read:
            self._max_read = index
        self.completed.append(CompletedRead(read_id, read.key, value, index, read.invoked_tick, tick))

    @property
    def pending(self) -> int:
        return len(self._pending)
