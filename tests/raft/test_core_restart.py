"""A core built from what a store loaded: the snapshot and stored entries fitted together
(trailing entries behind a snapshot, entries that disagree with it dropped), damage refused
with StoreCorruptError, and the configuration found again."""

from __future__ import annotations

import random

import pytest

from orion.raft.core import RaftConfig, RaftCore
from orion.raft.types import (
    Entry,
    EntryKind,
    HardState,
    Membership,
    Snapshot,
    SnapshotMeta,
    StoreCorruptError,
    StoredState,
    encode_membership,
)

MEMBERS = Membership(voters={"n1": "core:n1", "n2": "core:n2", "n3": "core:n3"})


def _core(snapshot: Snapshot | None, entries: list[Entry], commit: int = 0) -> RaftCore:
    stored = StoredState(HardState(3, "", commit), snapshot, entries)
    return RaftCore("n1", stored, RaftConfig(), random.Random(1))


def _entries(lo: int, hi: int, term: int = 2) -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, b"e%d" % i) for i in range(lo, hi + 1)]


def _snap(index: int, term: int = 2) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, MEMBERS), b"state")


def test_a_log_without_snapshot_keeps_every_entry_and_its_configuration() -> None:
    config = Entry(1, 1, EntryKind.CONFIG, encode_membership(MEMBERS))
    core = _core(None, [config, *_entries(2, 5)], commit=5)
    assert (core.log_first_index, core.last_index, core.entry_term(1)) == (1, 5, 1)
    assert core.membership == MEMBERS and core.commit_index == 5


def test_entries_right_after_the_snapshot_are_kept() -> None:
    core = _core(_snap(10), _entries(11, 14))
    assert (core.snapshot_index, core.log_first_index, core.last_index) == (10, 11, 14)
    assert core.entry_term(10) == 2 and core.membership == MEMBERS


def test_trailing_entries_behind_the_snapshot_are_kept_with_the_first_as_anchor() -> None:
    stored = [*_entries(6, 9, term=1), *_entries(10, 12, term=2)]
    core = _core(_snap(10), stored)
    assert (core.snapshot_index, core.log_first_index, core.last_index) == (10, 7, 12)
    assert core.entry_term(6) == 1, "the anchor's term is the first stored entry's"
    assert core.entry_term(7) == 1 and core.entry_term(10) == 2 and core.entry_term(5) is None


def test_entries_that_disagree_with_the_snapshot_or_end_before_it_are_dropped() -> None:
    disagree = _core(_snap(10, term=3), _entries(8, 12, term=2))  # index 10 has term 2, not 3
    assert (disagree.log_first_index, disagree.last_index) == (11, 10)
    before = _core(_snap(10), _entries(5, 9))
    assert (before.log_first_index, before.last_index, before.entry_term(10)) == (11, 10, 2)
    at = _core(_snap(10), _entries(5, 10))  # ends exactly at the snapshot, agreeing: kept
    assert (at.log_first_index, at.last_index) == (6, 10)


@pytest.mark.parametrize(
    ("snapshot", "entries", "reason"),
    [
        (None, [*_entries(1, 3), *_entries(5, 6)], "not contiguous: 5 entries from 1 to 6"),
        (None, _entries(2, 4), "start at 2: a gap after the snapshot index 0"),
        (_snap(10), _entries(12, 14), "start at 12: a gap after the snapshot index 10"),
        (None, [Entry(0, 1), *_entries(1, 2)], "start at 0"),
    ],
)
def test_damaged_stored_logs_are_refused(
    snapshot: Snapshot | None, entries: list[Entry], reason: str
) -> None:
    with pytest.raises(StoreCorruptError, match=reason):
        _core(snapshot, entries)
