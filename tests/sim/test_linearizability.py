"""The read checker on hand-written histories: what it accepts and what it rejects."""

from __future__ import annotations

import pytest

from orion.sim.linearizability import LinearizabilityChecker, LinearizabilityViolation


def _history(*writes: tuple[bytes, bytes]) -> LinearizabilityChecker:
    """Writes committed at indexes 1, 2, ... (a no-op when the key is empty)."""
    h = LinearizabilityChecker(seed=7)
    for i, (key, value) in enumerate(writes, start=1):
        h.on_commit(i, key or None, value, tick=i)
    return h


def test_read_of_the_latest_acknowledged_write_passes() -> None:
    h = _history((b"x", b"1"), (b"x", b"2"))
    h.on_read_invoked(b"r", b"x", tick=3)
    h.on_read_completed(b"r", b"2", index=2, tick=4)
    assert h.completed[0].value == b"2"
    assert h.pending == 0


def test_read_missing_a_write_acknowledged_before_it_began_is_stale() -> None:
    h = _history((b"x", b"1"), (b"x", b"2"))
    h.on_read_invoked(b"r", b"x", tick=3)
    with pytest.raises(LinearizabilityViolation, match=r"stale read.*index 2"):
        h.on_read_completed(b"r", b"1", index=1, tick=4)


def test_read_concurrent_with_a_write_may_see_either_state() -> None:
    h = _history((b"x", b"1"))
    h.on_read_invoked(b"a", b"x", tick=2)
    h.on_read_invoked(b"b", b"x", tick=2)
    h.on_commit(2, b"x", b"2", tick=3)  # acknowledged while both reads are in flight
    h.on_read_completed(b"a", b"1", index=1, tick=4)
    h.on_read_completed(b"b", b"2", index=2, tick=4)
    assert [r.value for r in h.completed] == [b"1", b"2"]


def test_a_later_read_must_not_go_back_in_time() -> None:
    h = _history((b"x", b"1"))
    h.on_read_invoked(b"a", b"x", tick=2)
    h.on_read_invoked(b"b", b"x", tick=2)
    h.on_commit(2, None, b"", tick=3)  # a no-op: writes nothing, acknowledges no write
    h.on_read_completed(b"a", b"1", index=2, tick=4)
    h.on_read_completed(b"b", b"1", index=1, tick=4)  # concurrent with a: fine
    h.on_read_invoked(b"c", b"x", tick=5)  # after a completed, so it must see index 2
    with pytest.raises(LinearizabilityViolation, match="back in time"):
        h.on_read_completed(b"c", b"1", index=1, tick=6)


def test_a_value_that_the_log_does_not_hold_at_that_index_is_rejected() -> None:
    h = _history((b"x", b"1"), (b"", b""), (b"y", b"9"))
    h.on_read_invoked(b"r", b"x", tick=4)
    with pytest.raises(LinearizabilityViolation, match=r"returned b'9'.*gives b'1'"):
        h.on_read_completed(b"r", b"9", index=3, tick=5)


def test_a_read_of_an_index_not_yet_committed_is_rejected() -> None:
    h = _history((b"x", b"1"))
    h.on_read_invoked(b"r", b"x", tick=2)
    with pytest.raises(LinearizabilityViolation, match="beyond the committed log"):
        h.on_read_completed(b"r", b"2", index=2, tick=3)  # a write not yet committed (or proposed)


def test_absent_key_reads_none_until_its_first_write() -> None:
    h = _history((b"x", b"1"), (b"y", b"1"))
    assert h.value_at(b"y", 1) is None
    assert h.value_at(b"y", 2) == b"1"
    h.on_read_invoked(b"r", b"y", tick=3)
    with pytest.raises(LinearizabilityViolation):
        h.on_read_completed(b"r", None, index=2, tick=3)


def test_failed_and_lost_reads_are_not_checked_and_ids_are_validated() -> None:
    h = _history((b"x", b"1"))
    h.on_read_invoked(b"f", b"x", tick=2)
    h.on_read_invoked(b"l", b"x", tick=2)
    h.on_read_failed(b"f")
    h.on_read_lost(b"l")
    assert (h.failed, h.pending) == (1, 0)
    with pytest.raises(ValueError, match="never invoked"):
        h.on_read_completed(b"f", b"1", index=1, tick=3)
    h.on_read_invoked(b"d", b"x", tick=3)
    with pytest.raises(ValueError, match="already pending"):
        h.on_read_invoked(b"d", b"x", tick=3)


def test_commits_must_arrive_in_index_order() -> None:
    h = _history((b"x", b"1"))
    h.on_commit(1, b"x", b"1", tick=2)  # a repeat (another replica applying it) is ignored
    with pytest.raises(ValueError, match="index 3 reported after 1"):
        h.on_commit(3, b"x", b"3", tick=2)
