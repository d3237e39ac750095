"""An in-memory LogStore for the simulator and tests: every write is "durable" at once, and
a crash loses only what the shell had not handed to it yet."""

from __future__ import annotations

from collections.abc import Sequence

from orion.raft.types import Entry, HardState, Snapshot, StoredState


class MemoryStore:
    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []  # contiguous, starting right after the snapshot
        self.saves = 0  # number of save() calls: one per persistence batch

    def _first_index(self) -> int:
        return self.snapshot.meta.index + 1 if self.snapshot is not None else 1

    def load(self) -> StoredState:
        return StoredState(hard_state=self.hard_state, snapshot=self.snapshot, entries=list(self.entries))

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        self.saves += 1
        if entries:
            offset = entries[0].index - self._first_index()
            if offset < 0:
                raise ValueError(f"entry {entries[0].index} is inside the snapshot")
            if offset > len(self.entries):
                raise ValueError(
                    f"gap: entry {entries[0].index} after {self._first_index() + len(self.entries) - 1}"
                )
            del self.entries[offset:]
            self.entries.extend(entries)
        if hard_state is not None:
            self.hard_state = hard_state

    def save_snapshot(self, snapshot: Snapshot) -> None:
        index = snapshot.meta.index
        offset = index - self._first_index()  # position of the entry at `index`
        if 0 <= offset < len(self.entries) and self.entries[offset].term == snapshot.meta.term:
            self.entries = self.entries[offset + 1 :]
        elif offset < 0 and self.snapshot is not None and index <= self.snapshot.meta.index:
            return  # older than what we hold
        else:
            self.entries = []
        self.snapshot = snapshot

    def close(self) -> None:
        pass
