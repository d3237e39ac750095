"""RaftLog with a store reader: entries made cold (kept in the store only, their terms and sizes
in arrays) answer every question as the same log holding them all in memory would, and are
read back from the store only when asked for."""

from __future__ import annotations

import random

import pytest

from orion.raft.log import ENTRY_OVERHEAD_BYTES, RaftLog
from orion.raft.types import Entry


class _Store:
    """What the log made durable, by index; counts the reads."""

    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self.reads = 0

    def put(self, entries: list[Entry]) -> None:
        for e in entries:
            self.entries[e.index] = e

    def read(self, lo: int, hi: int) -> list[Entry]:
        self.reads += 1
        return [self.entries[i] for i in range(lo, hi + 1)]


def _entries(terms: list[int], start: int = 1, size: int = 10) -> list[Entry]:
    return [Entry(i, t, data=b"x" * (size + i % 7)) for i, t in enumerate(terms, start=start)]


def _pair(terms: list[int]) -> tuple[RaftLog, RaftLog, _Store]:
    plain, cold, store = RaftLog(0, 0, []), RaftLog(0, 0, []), _Store()
    cold.read_from(store.read)
    entries = _entries(terms)
    store.put(entries)
    plain.append(list(entries), [e.data for e in entries])
    cold.append(list(entries), [e.data for e in entries])
    return plain, cold, store


def _same(plain: RaftLog, cold: RaftLog) -> None:
    assert (cold.first_index, cold.last_index, cold.last_term) == (
        plain.first_index,
        plain.last_index,
        plain.last_term,
    )
    assert (cold.snapshot_index, cold.snapshot_term, cold.offset_term) == (
        plain.snapshot_index,
        plain.snapshot_term,
        plain.offset_term,
    )
    lo, hi = plain.first_index, plain.last_index
    for i in range(lo - 2, hi + 3):
        assert cold.term(i) == plain.term(i), i
    if lo <= hi:
        assert cold.slice(lo, hi) == plain.slice(lo, hi)
        assert cold.data_sizes(lo, hi) == plain.data_sizes(lo, hi)
        for i in range(lo, hi + 1):
            assert cold.entry(i) == plain.entry(i)
            assert cold.first_index_of_term(i) == plain.first_index_of_term(i)
            for limit in (1, 3 * (10 + ENTRY_OVERHEAD_BYTES), 1 << 20):
                assert cold.limit_bytes(i, hi, limit) == plain.limit_bytes(i, hi, limit)
    for term in range(0, 8):
        assert cold.last_index_of_term_at_most(term, hi + 1) == plain.last_index_of_term_at_most(term, hi + 1)


def test_cold_entries_keep_their_terms_and_sizes_and_are_read_only_when_asked_for() -> None:
    plain, cold, store = _pair([1, 1, 2, 2, 2, 3, 3, 4])
    cold.make_cold(5)
    assert (cold.hot_offset, cold.held_in_memory) == (5, 3)
    assert [cold.term(i) for i in range(0, 10)] == [0, 1, 1, 2, 2, 2, 3, 3, 4, None]
    assert cold.limit_bytes(1, 8, 1 << 20) == plain.limit_bytes(1, 8, 1 << 20)
    assert cold.first_index_of_term(5) == 3 and cold.last_index_of_term_at_most(2, 8) == (5, 2)
    assert store.reads == 0  # terms, sizes and scans need no read
    assert cold.slice(4, 7) == plain.slice(4, 7) and store.reads == 1  # one read for 4..5
    assert cold.slice(6, 8) == plain.slice(6, 8) and store.reads == 1  # hot: no read
    _same(plain, cold)


def test_without_a_reader_nothing_goes_cold() -> None:
    log = RaftLog(0, 0, _entries([1, 1, 1]))
    log.make_cold(3)
    assert (log.hot_offset, log.held_in_memory) == (0, 3)


def test_compaction_drops_cold_entries_first_and_keeps_the_anchor_term() -> None:
    plain, cold, _ = _pair([1, 1, 2, 2, 3, 3, 3, 4])
    cold.make_cold(6)
    assert plain.compact(7, trailing=3) == cold.compact(7, trailing=3) == 3
    assert (cold.first_index, cold.hot_offset, cold.offset_term) == (5, 6, 2)
    _same(plain, cold)
    assert plain.compact(8, trailing=0) == cold.compact(8, trailing=0) == 4  # past every cold one
    assert (cold.first_index, cold.hot_offset) == (9, 8)
    _same(plain, cold)


def test_truncation_into_cold_entries_drops_them() -> None:
    plain, cold, store = _pair([1, 1, 1, 1, 1])
    cold.make_cold(4)
    plain.truncate_from(3)
    cold.truncate_from(3)
    fresh = _entries([2, 2], start=3)
    store.put(fresh)
    plain.append(list(fresh))
    cold.append(list(fresh))
    _same(plain, cold)


def test_reset_forgets_cold_entries() -> None:
    plain, cold, _ = _pair([1, 1, 2])
    cold.make_cold(2)
    plain.reset(10, 3)
    cold.reset(10, 3)
    _same(plain, cold)


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_answer_as_a_log_held_in_memory(seed: int) -> None:
    rng = random.Random(seed)
    plain, cold, store = _pair([1])
    term = 1
    committed = 0  # never truncated from at or below (as the core does)
    for _ in range(120):
        op = rng.random()
        if op < 0.4:
            if rng.random() < 0.2:
                term += 1
            fresh = _entries([term] * rng.randint(1, 5), start=plain.last_index + 1)
            store.put(fresh)
            sized = rng.random() < 0.5
            plain.append(list(fresh), [e.data for e in fresh] if sized else None)
            cold.append(list(fresh), [e.data for e in fresh] if sized else None)
        elif op < 0.55:
            committed = rng.randint(committed, plain.last_index)
            cold.make_cold(rng.randint(cold.offset, committed))
        elif op < 0.7 and plain.last_index > max(committed, plain.snapshot_index):
            at = rng.randint(max(committed, plain.snapshot_index) + 1, plain.last_index)
            plain.truncate_from(at)
            cold.truncate_from(at)
        elif op < 0.85 and committed > plain.snapshot_index:
            index = rng.randint(plain.snapshot_index + 1, committed)
            trailing = rng.choice((0, 1, 3, 10))
            assert plain.compact(index, trailing) == cold.compact(index, trailing)
        elif op < 0.88:
            index = plain.last_index + rng.randint(1, 5)
            term += 1
            plain.reset(index, term)
            cold.reset(index, term)
            committed = index
        _same(plain, cold)
