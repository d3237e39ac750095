"""The Raft log as the core sees it: the entries after ``offset``, the snapshot's index and term,
and the byte sizes the leader needs to pace replication.

Entries after ``hot_offset`` are held in memory: entry ``i`` at ``entries[i - hot_offset - 1]``.
Entries from ``offset + 1`` to ``hot_offset`` ("cold": durable, applied, and older than the
window the core keeps) are in the store only; the log keeps their terms and data sizes in two
int64 arrays (16 bytes an entry instead of the entry and its payload) and reads them back with
the ``reader`` it was given (``LogStore.read_entries``), as etcd-io/raft's raftLog reads
``Storage.Entries`` and hashicorp/raft its LogStore behind a LogCache. Without a reader nothing
is ever cold (``hot_offset == offset``). The term of entry ``offset`` is kept in
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

from array import array
from collections.abc import Callable, Sequence

from orion.raft.types import Entry

# Framing an entry adds on the wire besides its data (MessagePack array header, index, term,
# kind, bin header): counted so many tiny entries cannot slip past a byte limit.
ENTRY_OVERHEAD_BYTES = 24

# Reads entries lo..hi (both inclusive) back from the store: exactly those, in order.
EntryReader = Callable[[int, int], list[Entry]]


class RaftLog:
    __slots__ = (
        "_cold_sizes",
        "_cold_terms",
        "_last_cut",
        "_reader",
        "_sizes",
        "entries",
        "hot_offset",
        "offset",
        "offset_term",
        "snapshot_index",
        "snapshot_term",
    )

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
        self.hot_offset = self.offset
        self.entries = entries
        self._sizes: list[int] = []
        self._cold_terms = array("q")
        self._cold_sizes = array("q")
        self._reader: EntryReader | None = None
        # The last limit_bytes answer, (lo, hi, max_bytes, end, nbytes); reset when entries at
        # already-sized indices change (truncation, reset), never by appends or compaction.
        self._last_cut: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    def read_from(self, reader: EntryReader) -> None:
        """Entries made cold from now on are read back with ``reader``."""
        self._reader = reader

    @property
    def first_index(self) -> int:
        return self.offset + 1

    @property
    def last_index(self) -> int:
        return self.hot_offset + len(self.entries)

    @property
    def last_term(self) -> int:
        if self.entries:
            return self.entries[-1].term
        return self._cold_terms[-1] if self._cold_terms else self.offset_term

    @property
    def held_in_memory(self) -> int:
        """How many entries the log holds as objects (the rest is in the store)."""
        return len(self.entries)

    def term(self, index: int) -> int | None:
        """Term of the entry at ``index``; None if compacted away or beyond the end."""
        pos = index - self.hot_offset
        if pos > 0:
            return self.entries[pos - 1].term if pos <= len(self.entries) else None
        pos = index - self.offset
        if pos > 0:
            return self._cold_terms[pos - 1]
        return self.offset_term if pos == 0 else None

    def entry(self, index: int) -> Entry:
        if index > self.hot_offset:
            return self.entries[index - self.hot_offset - 1]
        return self._read(index, index)[0]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index <= hi (both inside the log)."""
        base = self.hot_offset + 1
        if lo >= base:
            return self.entries[lo - base : hi - base + 1]
        cold = self._read(lo, min(hi, base - 1))
        return cold + self.entries[: hi - base + 1] if hi >= base else cold

    def _read(self, lo: int, hi: int) -> list[Entry]:
        assert self._reader is not None and self.offset < lo <= hi <= self.hot_offset
        entries = self._reader(lo, hi)
        if len(entries) != hi - lo + 1 or entries[0].index != lo or entries[-1].index != hi:
            raise RuntimeError(f"the store gave back {len(entries)} entries for {lo}..{hi}")
        return entries

    def append(self, entries: list[Entry], data: Sequence[bytes] | None = None) -> None:
        """Append ``entries``; ``data`` (their payloads, in order) lets the byte sizes keep up
        without touching each entry."""
        if data is not None and len(self._sizes) == len(self.entries):
            self._sizes.extend(map(len, data))
        self.entries.extend(entries)

    def truncate_from(self, index: int) -> None:
        """Drop entries with index >= ``index`` (a conflicting suffix)."""
        pos = index - self.hot_offset - 1
        if pos < 0:  # into the cold entries (the core never truncates what it applied)
            del self._cold_terms[index - self.offset - 1 :]
            del self._cold_sizes[index - self.offset - 1 :]
            self.hot_offset = index - 1
            pos = 0
        del self.entries[pos:]
        del self._sizes[pos:]
        self._last_cut = (0, 0, 0, 0, 0)

    def make_cold(self, upto: int) -> None:
        """Keep entries up to ``upto`` in the store only (the caller knows them durable there);
        nothing without a reader."""
        count = upto - self.hot_offset
        if count <= 0 or self._reader is None:
            return
        count = min(count, len(self.entries))
        moved = self.entries[:count]
        self._cold_terms.extend([e.term for e in moved])
        self._cold_sizes.extend(self._sized(0, count))
        del self.entries[:count]
        del self._sizes[:count]
        self.hot_offset += count

    def compact(self, index: int, trailing: int) -> int:
        """Make ``index`` the snapshot point and drop entries more than ``trailing`` behind it;
        returns the term of ``index``."""
        term = self.term(index)
        assert term is not None, f"compact({index}) outside the log"
        self.snapshot_index = index
        self.snapshot_term = term
        new_offset = index - trailing
        if new_offset > self.offset:
            offset_term = self.term(new_offset)
            assert offset_term is not None
            cold = min(new_offset, self.hot_offset) - self.offset
            del self._cold_terms[:cold]
            del self._cold_sizes[:cold]
            drop = new_offset - self.hot_offset
            if drop > 0:
                del self.entries[:drop]
                del self._sizes[:drop]
                self.hot_offset = new_offset
            self.offset = new_offset
            self.offset_term = offset_term
        return term

    def reset(self, snapshot_index: int, snapshot_term: int) -> None:
        """Replace the whole log by a snapshot (installed from the leader)."""
        self.entries = []
        self._sizes = []
        self._cold_terms = array("q")
        self._cold_sizes = array("q")
        self._last_cut = (0, 0, 0, 0, 0)
        self.snapshot_index = self.offset = self.hot_offset = snapshot_index
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
            t = self.term(index)
            assert t is not None
            if t <= term:
                return index, t
            index -= 1
        return self.offset, self.offset_term

    def data_sizes(self, lo: int, hi: int) -> list[int]:
        """Data sizes of entries lo..hi (both inside the log), without reading cold ones."""
        if hi < lo:
            return []
        base = self.hot_offset + 1
        cold: list[int] = []
        if lo < base:
            cold = self._cold_sizes[lo - self.offset - 1 : min(hi, base - 1) - self.offset].tolist()
            lo = base
        if hi < lo:
            return cold
        return cold + self._sized(lo - base, hi - base + 1)

    def _sized(self, start: int, stop: int) -> list[int]:
        """Sizes of ``entries[start:stop]``, measuring those not measured yet."""
        sizes = self._sizes
        done = len(sizes)
        if done < stop:
            sizes.extend([len(e.data) for e in self.entries[done:]])
        return sizes[start:stop]

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
        chunk = self.data_sizes(lo, hi)
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
