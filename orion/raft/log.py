"""The in-memory Raft log: the entries held after ``offset``, the snapshot's index and term, and
the byte sizes the leader needs to pace replication.

Entry ``i`` lives at ``entries[i - offset - 1]``; the term of entry ``offset`` is kept in
``offset_term`` so an append right after it carries a checkable ``prev_term``. After a local
compaction the log keeps up to ``trailing`` entries behind the snapshot (``offset`` <=
``snapshot_index``), so a follower slightly behind gets entries rather than a snapshot.

``_sizes[k]`` is the data size of ``entries[k]`` (each entry also counts
``ENTRY_OVERHEAD_BYTES``). The leader records sizes as it proposes, from the raw payloads
(``map(len, data)``: no attribute access, and no new int for a payload under 257 bytes);
entries appended otherwise (a follower's, a configuration) are measured lazily at the next
send. Sizing a message is then a C-level ``sum`` over a slice of small ints, remembered for
the next follower, which in steady state is sent the same range.
"""

from __future__ import annotations

from collections.abc import Sequence

from orion.raft.types import Entry

# Framing an entry adds on the wire besides its data (MessagePack array header, index, term,
# kind, bin header): counted so many tiny entries cannot slip past a byte limit.
ENTRY_OVERHEAD_BYTES = 24


class RaftLog:
    __slots__ = ("_last_cut", "_sizes", "entries", "offset", "offset_term", "snapshot_index", "snapshot_term")

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
        self._sizes: list[int] = []
        # The last limit_bytes answer, (lo, hi, max_bytes, end, nbytes); reset when entries at
        # already-sized indices change (truncation, reset), never by appends or compaction.
        self._last_cut: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

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
        """Append ``entries``; ``data`` (their payloads, in order) lets the byte sizes keep up
        without touching each entry."""
        if data is not None and len(self._sizes) == len(self.entries):
            self._sizes.extend(map(len, data))
        self.entries.extend(entries)

    def truncate_from(self, index: int) -> None:
        """Drop entries with index >= ``index`` (a conflicting suffix)."""
        pos = index - self.offset - 1
        del self.entries[pos:]
        del self._sizes[pos:]
        self._last_cut = (0, 0, 0, 0, 0)

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
            del self._sizes[:drop]
            self.offset = new_offset
        return term

    def reset(self, snapshot_index: int, snapshot_term: int) -> None:
        """Replace the whole log by a snapshot (installed from the leader)."""
        self.entries = []
        self._sizes = []
        self._last_cut = (0, 0, 0, 0, 0)
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

    def limit_bytes(self, lo: int, hi: int, max_bytes: int) -> tuple[int, int]:
        """The largest ``end`` in [lo, hi] such that entries lo..end fit in ``max_bytes``
        (data plus ENTRY_OVERHEAD_BYTES each), but at least ``lo`` itself (one oversize entry
        still goes alone, so progress is possible); returns (end, bytes of entries lo..end)."""
        cut = self._last_cut
        if cut[0] == lo and cut[1] == hi and cut[2] == max_bytes:
            return cut[3], cut[4]  # the same range for the next follower: already sized
        end, nbytes = self._limit_bytes(lo, hi, max_bytes)
        self._last_cut = (lo, hi, max_bytes, end, nbytes)
        return end, nbytes

    def _limit_bytes(self, lo: int, hi: int, max_bytes: int) -> tuple[int, int]:
        sizes = self._sizes
        done = len(sizes)
        if done < len(self.entries):
            sizes.extend([len(e.data) for e in self.entries[done:]])
        chunk = sizes[lo - self.offset - 1 : hi - self.offset]
        nbytes = sum(chunk) + ENTRY_OVERHEAD_BYTES * len(chunk)
        if nbytes <= max_bytes:
            return hi, nbytes
        # Cut the message: a loop over what is sent, and only for messages that need cutting.
        nbytes = chunk[0] + ENTRY_OVERHEAD_BYTES  # the first entry goes, however large
        for k in range(1, len(chunk)):
            size = chunk[k] + ENTRY_OVERHEAD_BYTES
            if nbytes + size > max_bytes:
                return lo + k - 1, nbytes
            nbytes += size
        return hi, nbytes  # only a lone oversize entry gets here
