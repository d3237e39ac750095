"""The in-memory Raft log: entries after the last snapshot, plus the snapshot's index/term.

Entry ``i`` lives at ``entries[i - snapshot_index - 1]``. The core keeps the unsnapshotted
log in memory (compaction bounds it); the store only ever receives writes.
"""

from __future__ import annotations

from orion.raft.types import Entry


class RaftLog:
    __slots__ = ("entries", "snapshot_index", "snapshot_term")

    def __init__(self, snapshot_index: int, snapshot_term: int, entries: list[Entry]) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.entries = entries

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term(self, index: int) -> int | None:
        """Term of the entry at ``index``; None if compacted away or beyond the end."""
        offset = index - self.snapshot_index
        if offset == 0:
            return self.snapshot_term
        if offset < 0 or offset > len(self.entries):
            return None
        return self.entries[offset - 1].term

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.snapshot_index - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index <= hi (both inside the log)."""
        base = self.snapshot_index + 1
        return self.entries[lo - base : hi - base + 1]

    def append(self, entries: list[Entry]) -> None:
        self.entries.extend(entries)

    def truncate_from(self, index: int) -> None:
        """Drop entries with index >= ``index`` (a conflicting suffix)."""
        del self.entries[index - self.snapshot_index - 1 :]

    def compact(self, index: int) -> int:
        """Drop entries <= index; returns the term of ``index``."""
        term = self.term(index)
        assert term is not None, f"compact({index}) outside the log"
        del self.entries[: index - self.snapshot_index]
        self.snapshot_index = index
        self.snapshot_term = term
        return term

    def reset(self, snapshot_index: int, snapshot_term: int) -> None:
        """Replace the whole log by a snapshot (installed from the leader)."""
        self.entries = []
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term

    def first_index_of_term(self, index: int) -> int:
        """Smallest index in the log (after the snapshot) with the same term as ``index``."""
        term = self.term(index)
        while index - 1 > self.snapshot_index and self.term(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term_at_most(self, term: int, upto: int) -> tuple[int, int]:
        """Scanning back from ``upto``: the first index whose term is <= ``term``, with its
        term (used by the leader to skip a follower's conflicting term in one step)."""
        index = min(upto, self.last_index)
        while index > self.snapshot_index:
            t = self.entries[index - self.snapshot_index - 1].term
            if t <= term:
                return index, t
            index -= 1
        return self.snapshot_index, self.snapshot_term
