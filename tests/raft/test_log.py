"""RaftLog on its own: positions around the offset (trailing entries behind a snapshot),
compaction and reset, the term scans used to back up probes, and byte limits with their cache."""

from __future__ import annotations

from orion.raft.log import ENTRY_OVERHEAD_BYTES, RaftLog
from orion.raft.types import Entry


def _entries(terms: list[int], start: int = 1, size: int = 10) -> list[Entry]:
    return [Entry(i, t, data=b"x" * size) for i, t in enumerate(terms, start=start)]


def _log(terms: list[int]) -> RaftLog:
    log = RaftLog(0, 0, [])
    entries = _entries(terms)
    log.append(entries, [e.data for e in entries])
    return log


def test_terms_and_entries_around_the_offset() -> None:
    log = RaftLog(10, 3, _entries([2, 3, 3, 4], start=7), offset=6, offset_term=2)
    assert (log.first_index, log.last_index, log.last_term) == (7, 10, 4)
    assert [log.term(i) for i in range(5, 12)] == [None, 2, 2, 3, 3, 4, None]
    assert [log.entry(i).index for i in range(7, 11)] == [7, 8, 9, 10]
    assert [e.index for e in log.slice(8, 9)] == [8, 9]
    empty = RaftLog(10, 3, [])
    assert (empty.first_index, empty.last_index, empty.last_term, empty.term(10)) == (11, 10, 3, 3)


def test_compaction_keeps_trailing_entries_and_their_anchor_term() -> None:
    log = _log([1, 1, 2, 2, 3, 3, 3, 4])
    assert log.compact(6, trailing=2) == 3
    assert (log.snapshot_index, log.snapshot_term, log.first_index, log.last_index) == (6, 3, 5, 8)
    assert log.term(4) == 2 and log.term(3) is None  # the anchor keeps the dropped entry's term
    assert log.compact(7, trailing=10) == 3  # nothing more to drop: the anchor stays as it was
    assert (log.first_index, log.term(4), log.snapshot_term) == (5, 2, 3)


def test_compaction_that_drops_nothing_keeps_the_anchor() -> None:
    log = _log([1, 2, 2, 5])
    log.compact(3, trailing=3)  # index 3 - 3 = offset 0: nothing behind it is dropped
    assert (log.first_index, log.term(0), log.term(1)) == (1, 0, 1)


def test_reset_empties_the_log_and_forgets_sizes() -> None:
    log = _log([1, 1, 1])
    assert log.limit_bytes(1, 3, 10**6) == (3, 3 * (10 + ENTRY_OVERHEAD_BYTES))
    log.reset(20, 5)
    assert (log.snapshot_index, log.snapshot_term, log.first_index, log.last_index, log.term(20)) == (
        20,
        5,
        21,
        20,
        5,
    )
    fresh = _entries([5, 5], start=21, size=100)
    log.append(fresh, [e.data for e in fresh])
    assert log.limit_bytes(21, 22, 10**6) == (22, 2 * (100 + ENTRY_OVERHEAD_BYTES))


def test_truncation_forgets_a_cached_cut() -> None:
    log = _log([1, 1, 1, 1])
    small = 2 * (10 + ENTRY_OVERHEAD_BYTES)
    assert log.limit_bytes(2, 4, small) == (3, small)
    log.truncate_from(3)
    big = _entries([2, 2], start=3, size=500)
    log.append(big, [e.data for e in big])
    assert log.limit_bytes(2, 4, small) == (2, 10 + ENTRY_OVERHEAD_BYTES)


def test_byte_limits_cut_after_the_last_entry_that_fits_but_send_at_least_one() -> None:
    log = RaftLog(0, 0, [])
    sized = [Entry(i, 1, data=b"x" * n) for i, n in enumerate([10, 20, 30, 40], start=1)]
    log.append(sized)  # without sizes: they are measured when first needed
    each = [n + ENTRY_OVERHEAD_BYTES for n in (10, 20, 30, 40)]
    assert log.limit_bytes(1, 4, sum(each)) == (4, sum(each))
    assert log.limit_bytes(1, 4, sum(each) - 1) == (3, sum(each[:3]))
    assert log.limit_bytes(2, 4, each[1] + each[2]) == (3, each[1] + each[2])
    assert log.limit_bytes(3, 4, 1) == (3, each[2])  # one oversize entry still goes alone


def test_first_index_of_term_stops_at_the_term_start_or_the_log_start() -> None:
    log = _log([1, 1, 2, 2, 2, 3])
    assert [log.first_index_of_term(i) for i in range(1, 7)] == [1, 1, 3, 3, 3, 6]
    log.compact(4, trailing=0)
    assert log.first_index_of_term(5) == 5  # index 4 (term 2) is only the anchor now


def test_last_index_of_term_at_most_scans_back_from_upto() -> None:
    log = _log([1, 1, 2, 2, 4, 4])
    assert log.last_index_of_term_at_most(3, 6) == (4, 2)
    assert log.last_index_of_term_at_most(4, 6) == (6, 4)
    assert log.last_index_of_term_at_most(2, 3) == (3, 2)
    assert log.last_index_of_term_at_most(1, 100) == (2, 1)
    assert log.last_index_of_term_at_most(0, 6) == (0, 0)  # nothing that old: the offset
