"""The in-memory Raft log: the entries held after ``offset``, the snapshot's index and term, and
the byte sizes the leader needs to pace replication.

Entry ``i`` lives at ``entries[i - offset - 1]``; the term of entry ``offset`` is kept in
``offset_term`` so an append right after it carries a checkable ``prev_term``. After a local
compaction the log keeps up to ``trailing`` entries behind the snapshot (``offset`` <=
``snapshot_index``), so a follower slightly behind gets entries rather than a snapshot.

Byte sizes are kept as running totals of entry data (``_totals[k] - _totals[0]`` is the data
size of ``entries[:k]``; each entry also counts ``ENTRY_OVERHEAD_BYTES``). The leader extends
them as it proposes, from the raw data (``map(len, data)``: no attribute access per entry);
entries appended otherwise (a follower's, a configuration) are summed lazily on the next
send. The hot path costs a subtraction per message, and a bisect only when a message is cut.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from orion.raft.types import Entry

# Framing an entry adds on the wire besides its data (MessagePack array header, index, term,
# kind, bin header): counted so many tiny entries cannot slip past a byte limit.
ENTRY_OVERHEAD_BYTES = 24


class RaftLog:
    __slots__ = ("_totals", "entries", "offset", "offset_term", "snapshot_index", "snapshot_term")

    def __init__(
        self,
        snapshot_index: int,
        snapshot_term: int,
        entries: list[Entry],
        offset: int | None = None,
        offset_term: int | None = None,
    ) -> None:
        """``offset``/``offset_term`` default to the snapshot's: entries start right after it."""
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.offset = snapshot_index if offset is None else offset
        self.offset_term = snapshot_term if offset_term is None else offset_term
        self.entries = entries
        self._totals = [0]

    @property
    def first_index(self) -> int:
        return self.offset + 1

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, index: int) -> int | None:
        """Term of the entry at ``index``; None if compacted away or beyond the end."""
        pos = index - self.offset
        if pos == 0:
            return self.offset_term
        if pos < 0 or pos > len(self.entries):
            return None
        return self.entries[pos - 1].term

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.offset - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index <= hi (both inside the log)."""
        base = self.offset + 1
        return self.entries[lo - base : hi - base + 1]

    def append(self, entries: list[Entry], data: Sequence[bytes] | None = None) -> None:
        """Append ``entries``; ``data`` (their payloads, in order) lets the byte totals keep up
        without touching each entry."""
        totals = self._totals
        if data is not None and len(totals) > len(self.entries):
            # accumulate re-emits its initial value first, so it replaces the popped last total.
            totals.extend(accumulate(map(len, data), initial=totals.pop()))
        self.entries.extend(entries)

    def truncate_from(self, index: int) -> None:
        """Drop entries with index >= ``index`` (a conflicting suffix)."""
        pos = index - self.offset - 1
        del self.entries[pos:]
        del self._totals[pos + 1 :]

    def compact(self, index: int, trailing: int) -> int:
        """Make ``index`` the snapshot point and drop entries more than ``trailing`` behind it;
        returns the term of ``index``."""
        term = self.term(index)
        assert term is not None, f"compact({index}) outside the log"
        self.snapshot_index = index
        self.snapshot_term = term
        new_offset = index - trailing
        if new_offset > self.offset:
            drop = new_offset - self.offset
            self.offset_term = self.entries[drop - 1].term
            del self.entries[:drop]
            totals = self._totals
            if len(totals) > drop:
                del totals[:drop]
            else:
                self._totals = [0]
            self.offset = new_offset
        return term

    def reset(self, snapshot_index: int, snapshot_term: int) -> None:
        """Replace the whole log by a snapshot (installed from the leader)."""
        self.entries = []
        self._totals = [0]
        self.snapshot_index = self.offset = snapshot_index
        self.snapshot_term = self.offset_term = snapshot_term

    def first_index_of_term(self, index: int) -> int:
        """Smallest index held in the log with the same term as ``index``."""
        term = self.term(index)
        while index - 1 > self.offset and self.term(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term_at_most(self, term: int, upto: int) -> tuple[int, int]:
        """Scanning back from ``upto``: the first index whose term is <= ``term``, with its
        term (used by the leader to skip a follower's conflicting term in one step)."""
        index = min(upto, self.last_index)
        while index > self.offset:
            t = self.entries[index - self.offset - 1].term
            if t <= term:
                return index, t
            index -= 1
        return self.offset, self.offset_term

    def _complete_totals(self) -> list[int]:
        """The running totals, extended over entries appended without their data sizes."""
        totals = self._totals
        done = len(totals) - 1
        if done < len(self.entries):
            totals.extend(accumulate([len(e.data) for e in self.entries[done:]], initial=totals.pop()))
        return totals

    def limit_bytes(self, lo: int, hi: int, max_bytes: int) -> tuple[int, int]:
        """The largest ``end`` in [lo, hi] such that entries lo..end fit in ``max_bytes``
        (data plus ENTRY_OVERHEAD_BYTES each), but at least ``lo`` itself (one oversize entry
        still goes alone, so progress is possible); returns (end, bytes of entries lo..end)."""
        totals = self._totals
        if len(totals) <= len(self.entries):
            totals = self._complete_totals()
        a = lo - self.offset - 1
        b = hi - self.offset
        start = totals[a]
        nbytes = totals[b] - start + ENTRY_OVERHEAD_BYTES * (b - a)
        if nbytes <= max_bytes:
            return hi, nbytes
        # Cut the message: the last k with totals[k] + overhead * k within the budget.
        overhead = ENTRY_OVERHEAD_BYTES
        budget = start + overhead * a + max_bytes
        k = bisect_right(range(b + 1), budget, a + 1, b + 1, key=lambda j: totals[j] + overhead * j) - 1
        if k == a:
            k = a + 1
        return k + self.offset, totals[k] - start + overhead * (k - a)
