"""A leader's own log writes on a thread of their own (``RaftShell``'s ``LogWriter``).

The Raft thread hands a settled leader's entries here right after sending them and goes on
with the next Ready (acknowledgements, proposals, applying what a quorum of followers already
holds) while this thread commits them to the store. Writes land in the order handed; writes
that queued up while one was being committed go into the next ``store.save`` together (one
commit, one fsync). Each write's completion is reported through ``on_written(seq)``, which
the host turns into a ``RaftShell.written(seq)`` call on the Raft thread.

The store's connection is used by one thread at a time: while writes are queued or in flight
only this thread calls ``store.save``; the shell calls ``wait`` before it touches the store
itself. A failed write is final: ``on_failed`` is told, and every later ``write`` and
``wait`` raises ``LogWriteError`` (the node must stop: its log is not what its core believes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from orion.raft.types import Entry, HardState, LogStore


class LogWriteError(RuntimeError):
    """A write handed to the writer failed; the node cannot go on."""


_Write = tuple[int, HardState | None, list[Entry]]


def merge_writes(batch: list[_Write]) -> list[_Write]:
    """Consecutive writes whose entries follow on from each other, as one write each: the last
    seq, the latest hard state, the entries joined."""
    merged: list[_Write] = []
    for seq, hard_state, entries in batch:
        if merged:
            _, last_state, last_entries = merged[-1]
            if last_entries and entries and entries[0].index == last_entries[-1].index + 1:
                merged[-1] = (seq, hard_state or last_state, last_entries + entries)
                continue
        merged.append((seq, hard_state, list(entries)))
    return merged


class ThreadLogWriter:
    def __init__(
        self,
        store: LogStore,
        on_written: Callable[[int], None],
        on_failed: Callable[[BaseException], None],
        *,
        name: str = "raft-log-writer",
    ) -> None:
        self._store = store
        self._on_written = on_written
        self._on_failed = on_failed
        self._cond = threading.Condition()
        self._queue: list[_Write] = []
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self.saves = 0  # store.save calls made (one commit each)
        self.writes = 0  # writes handed in
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, seq: int, hard_state: HardState | None, entries: list[Entry]) -> None:
        with self._cond:
            self._raise_if_failed()
            if self._closed:
                raise LogWriteError("the log writer is closed")
            self._queue.append((seq, hard_state, entries))
            self.writes += 1
            self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            while (self._queue or self._busy) and self._error is None:
                self._cond.wait()
            self._raise_if_failed()

    def close(self) -> None:
        """Finish what was handed, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise LogWriteError(f"a log write failed: {self._error!r}") from self._error

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue and not self._closed:
                    cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
                self._busy = True
            try:
                for seq, hard_state, entries in merge_writes(batch):
                    self._store.save(hard_state, entries)
                    self.saves += 1
                    self._on_written(seq)
            except BaseException as exc:  # the node stops; the Raft thread learns it in wait()
                with cond:
                    self._error = exc
                    self._busy = False
                    cond.notify_all()
                self._on_failed(exc)
                return
            with cond:
                self._busy = False
                cond.notify_all()
