"""An in-memory LogStore for the simulator and tests: every write is "durable" at once, and
a crash loses only what the shell had not handed to it yet. Same semantics as the DuckDB
store, checks included (a write it would refuse, this one refuses too)."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from orion.raft.types import Entry, HardState, Snapshot, StoredState

_INCARNATION = re.compile(r"[0-9a-f]{1,64}")


class MemoryStore:
    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        # Contiguous; starts at or before the snapshot index + 1 (trailing entries), or empty.
        self.entries: list[Entry] = []
        self.incarnation: str | None = None
        self.saves = 0  # number of save() calls: one per persistence batch
        # write_snapshot may run on another thread (as with the DuckDB store).
        self._lock = threading.Lock()

    def _snapshot_index(self) -> int:
        return self.snapshot.meta.index if self.snapshot is not None else 0

    def _last_index(self) -> int:
        last = self.entries[-1].index if self.entries else 0
        return max(last, self._snapshot_index())

    def _position(self, index: int) -> int:
        """Position in ``entries`` of the entry at ``index`` (may be out of range)."""
        first = self.entries[0].index if self.entries else self._snapshot_index() + 1
        return index - first

    def load(self) -> StoredState:
        with self._lock:
            return StoredState(hard_state=self.hard_state, snapshot=self.snapshot, entries=list(self.entries))

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        with self._lock:
            self.saves += 1
            if entries:
                first = entries[0].index
                if first <= self._snapshot_index():
                    raise ValueError(
                        f"entry {first} is at or below the snapshot index {self._snapshot_index()}"
                    )
                if first > self._last_index() + 1:
                    raise ValueError(
                        f"entry {first} would leave a gap after the last index {self._last_index()}"
                    )
                for offset, entry in enumerate(entries):
                    if entry.index != first + offset:
                        raise ValueError(f"entries are not contiguous at {entry.index}")
                del self.entries[max(0, self._position(first)) :]
                self.entries.extend(entries)
            if hard_state is not None:
                self.hard_state = hard_state

    def read_entries(self, lo: int, hi: int) -> list[Entry]:
        with self._lock:
            start = self._position(lo)
            entries = self.entries[max(0, start) : max(0, self._position(hi) + 1)]
            if start < 0 or len(entries) != hi - lo + 1:
                raise ValueError(f"entries {lo}..{hi} are not all stored")
            return entries

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot from the leader: drop every entry it covers or that does not
        match it."""
        with self._lock:
            index, term = snapshot.meta.index, snapshot.meta.term
            if index < self._snapshot_index():
                raise ValueError(
                    f"snapshot at {index} is older than the stored one at {self._snapshot_index()}"
                )
            at = self._position(index)
            if self.snapshot is not None and index == self._snapshot_index():
                matches = term == self.snapshot.meta.term
            else:
                matches = 0 <= at < len(self.entries) and self.entries[at].term == term
            self.entries = self.entries[at + 1 :] if matches else []
            self.snapshot = snapshot

    def write_snapshot(self, snapshot: Snapshot) -> None:
        """Store a locally taken snapshot without touching the log; nothing when the store
        already holds one at this index or later."""
        with self._lock:
            index = snapshot.meta.index
            if index <= self._snapshot_index():
                return
            if index > self._last_index():
                raise ValueError(
                    f"snapshot at {index} is beyond the last stored log entry {self._last_index()}"
                )
            self.snapshot = snapshot

    def stored_snapshot(self) -> Snapshot | None:
        """The stored snapshot, for the shell to stream to a lagging follower."""
        with self._lock:
            return self.snapshot

    def compact_log(self, upto_index: int) -> None:
        with self._lock:
            if upto_index > self._snapshot_index():
                raise ValueError(
                    f"cannot drop log entries up to {upto_index}: the stored snapshot covers only "
                    f"up to {self._snapshot_index()}"
                )
            del self.entries[: max(0, self._position(upto_index + 1))]

    def load_identity(self) -> str | None:
        return self.incarnation

    def save_identity(self, incarnation: str) -> None:
        if not isinstance(incarnation, str) or not _INCARNATION.fullmatch(incarnation):
            raise ValueError(
                f"incarnation must be a lowercase hex string such as uuid4().hex, not {incarnation!r}"
            )
        self.incarnation = incarnation

    def checkpoint(self) -> None:
        pass  # nothing sits in a write-ahead log here

    def close(self) -> None:
        pass
