"""ThreadLogWriter: writes land in order, queued ones share a commit, and a failure is final."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from orion.raft.log_writer import LogWriteError, ThreadLogWriter, merge_writes
from orion.raft.memory_store import MemoryStore
from orion.raft.types import Entry, HardState


def entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(i, term, 0, b"e%d" % i) for i in range(lo, hi + 1)]


class GatedStore(MemoryStore):
    """A store whose saves wait for the test to open a gate, so writes queue up behind one."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[HardState | None, list[int]]] = []

    def save(self, hard_state: HardState | None, new: Sequence[Entry]) -> None:
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        self.calls.append((hard_state, [e.index for e in new]))
        super().save(hard_state, new)


def test_merge_joins_writes_that_follow_on_and_keeps_the_latest_hard_state() -> None:
    hs = HardState(2, "n1", 5)
    merged = merge_writes([(1, None, entries(1, 2)), (2, hs, entries(3, 4)), (3, None, entries(5, 5))])
    assert merged == [(3, hs, entries(1, 5))]
    apart = merge_writes([(1, None, entries(1, 2)), (2, None, entries(2, 3, term=2))])
    assert [seq for seq, _, _ in apart] == [1, 2], "a write that overlaps the previous stays on its own"


def test_writes_queued_behind_one_in_flight_share_the_next_commit() -> None:
    store = GatedStore()
    done: list[int] = []
    writer = ThreadLogWriter(store, done.append, lambda exc: None)
    writer.write(1, HardState(1, "n1", 0), entries(1, 1))
    assert store.entered.wait(10)
    writer.write(2, None, entries(2, 3))
    writer.write(3, HardState(1, "n1", 2), entries(4, 4))
    store.gate.set()
    writer.wait()
    assert store.calls == [(HardState(1, "n1", 0), [1]), (HardState(1, "n1", 2), [2, 3, 4])]
    assert done == [1, 3]
    assert [e.index for e in store.entries] == [1, 2, 3, 4] and store.hard_state.commit == 2
    assert writer.saves == 2 and writer.writes == 3
    writer.close()


class FailingStore(MemoryStore):
    def save(self, hard_state: HardState | None, new: Sequence[Entry]) -> None:
        raise OSError("disk full")


def test_a_failed_write_is_reported_and_every_later_call_raises() -> None:
    failed: list[BaseException] = []
    reported = threading.Event()

    def on_failed(exc: BaseException) -> None:
        failed.append(exc)
        reported.set()

    writer = ThreadLogWriter(FailingStore(), lambda seq: None, on_failed)
    writer.write(1, None, entries(1, 1))
    with pytest.raises(LogWriteError, match="disk full"):
        writer.wait()
    assert reported.wait(10) and isinstance(failed[0], OSError)
    with pytest.raises(LogWriteError):
        writer.write(2, None, entries(2, 2))
    writer.close()


def test_close_finishes_what_was_handed() -> None:
    store = MemoryStore()
    writer = ThreadLogWriter(store, lambda seq: None, lambda exc: None)
    for i in range(1, 21):
        writer.write(i, None, entries(i, i))
    writer.close()
    assert [e.index for e in store.entries] == list(range(1, 21))
    with pytest.raises(LogWriteError, match="closed"):
        writer.write(21, None, entries(21, 21))
