"""RaftLog's byte sizes whatever way entries arrive: pinned after the mutation run (see
RELIABILITY.md, "20,000 seeds and the mutation score")."""

from __future__ import annotations

from orion.raft.log import ENTRY_OVERHEAD_BYTES, RaftLog
from orion.raft.types import Entry, EntryKind


def test_a_proposal_after_entries_appended_without_their_payloads_is_sized_by_its_own_data() -> None:
    """A new leader's no-op and a configuration are appended without a payload list (their
    sizes are measured at the next send); a proposal right after them, in the same turn, must
    not lend its size to them: the byte count of a range is the data of the entries in it."""
    log = RaftLog(0, 0, [])
    log.append([Entry(1, 1, EntryKind.CONFIG, b"c" * 50), Entry(2, 1, EntryKind.NOOP, b"")])
    big = b"x" * 1000
    log.append([Entry(3, 1, EntryKind.NORMAL, big)], [big])
    small = b"y" * 7
    log.append([Entry(4, 1, EntryKind.NORMAL, small)], [small])
    overhead = ENTRY_OVERHEAD_BYTES
    assert log.limit_bytes(1, 4, 1 << 20) == (4, 50 + 0 + 1000 + 7 + 4 * overhead)
    # A limit that fits the first three entries exactly cuts the message after the third.
    fits_three = 50 + 0 + 1000 + 3 * overhead
    assert log.limit_bytes(1, 4, fits_three) == (3, fits_three)
    assert log.limit_bytes(2, 4, 1000 + 7 + 3 * overhead) == (4, 1000 + 7 + 3 * overhead)


def test_after_a_reset_the_same_range_is_sized_from_the_new_entries() -> None:
    """A leader sized entries 19..20, lost leadership, and a snapshot at 18 replaced its log;
    leading again, the same range holds other entries: a byte count remembered from before
    the reset would let an oversize message through."""
    log = RaftLog(0, 0, [])
    old = [Entry(i, 1, data=b"o" * 10) for i in range(1, 21)]
    log.append(old, [e.data for e in old])
    assert log.limit_bytes(19, 20, 1 << 20) == (20, 2 * (10 + ENTRY_OVERHEAD_BYTES))
    log.reset(18, 2)
    new = [Entry(i, 3, data=b"n" * 4000) for i in (19, 20)]
    log.append(new, [e.data for e in new])
    assert log.limit_bytes(19, 20, 1 << 20) == (20, 2 * (4000 + ENTRY_OVERHEAD_BYTES))
    assert log.limit_bytes(19, 20, 5000) == (19, 4000 + ENTRY_OVERHEAD_BYTES)


def test_the_backward_scan_stops_at_the_highest_index_of_an_older_term() -> None:
    """The leader backs a rejected probe up to the last entry of the follower's conflicting
    term or below: the scan must stop at the first index from the top, not skip past it."""
    log = RaftLog(0, 0, [])
    entries = [Entry(i, t, data=b"x") for i, t in enumerate([1, 1, 2, 2, 4, 4], start=1)]
    log.append(entries, [e.data for e in entries])
    assert [log.last_index_of_term_at_most(3, upto) for upto in range(1, 7)] == [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 2),
        (4, 2),
        (4, 2),
    ]


def test_byte_limits_after_compaction_count_the_entries_asked_for() -> None:
    """Behind a snapshot the log starts at its offset: sizing entries 6..8 must count those
    three entries, not the ones at the same positions from the start of what was dropped."""
    log = RaftLog(0, 0, [])
    entries = [Entry(i, 1, data=b"x" * (100 * i)) for i in range(1, 9)]
    log.append(entries, [e.data for e in entries])
    log.compact(7, trailing=3)  # keeps 5..8 in memory, offset 4
    assert log.first_index == 5
    want = sum(100 * i + ENTRY_OVERHEAD_BYTES for i in (6, 7, 8))
    assert log.limit_bytes(6, 8, 1 << 20) == (8, want)
    assert log.limit_bytes(5, 6, 1 << 20) == (6, 500 + 600 + 2 * ENTRY_OVERHEAD_BYTES)
    assert log.limit_bytes(6, 8, 600 + 700 + 2 * ENTRY_OVERHEAD_BYTES) == (7, 1300 + 2 * ENTRY_OVERHEAD_BYTES)
