"""A thread-safe hand-off into a thread that owns ZeroMQ sockets (DESIGN rule 3).

Any thread may ``put`` items; the owning thread polls ``fileno()`` together with its
sockets (zmq.Poller accepts plain file descriptors) and calls ``drain()`` to take
everything queued since the last wake-up in one batch. Only the first ``put`` after a
drain writes to the wake-up pipe, so a burst of sends costs one syscall.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._items: deque[T] = deque()
        self._wake_pending = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._closed = False

    def fileno(self) -> int:
        return self._read_fd

    def put(self, item: T) -> bool:
        """Queue one item; False when the mailbox is full or closed (the item is dropped)."""
        return self.put_many((item,)) == 1

    def put_many(self, items: Iterable[T]) -> int:
        """Queue items in order; returns how many were accepted."""
        accepted = 0
        with self._lock:
            if self._closed:
                return 0
            for item in items:
                if len(self._items) >= self._capacity:
                    break
                self._items.append(item)
                accepted += 1
            if accepted and not self._wake_pending:
                self._wake_pending = True
                try:
                    os.write(self._write_fd, b"\x01")
                except BlockingIOError:
                    pass  # the pipe is full of wake-ups already: the reader will wake anyway
        return accepted

    def __len__(self) -> int:
        """Items queued and not yet drained (a hint from any thread; exact on the owner's)."""
        return len(self._items)

    def wake(self) -> None:
        """Wake the owning thread without queueing anything (used to ask it to stop)."""
        try:
            os.write(self._write_fd, b"\x00")
        except (BlockingIOError, OSError):
            pass

    def drain(self) -> list[T]:
        """Everything queued so far, oldest first; called by the owning thread. The pipe is
        read under the lock, as ``put_many`` writes it: read before, it could miss the byte of
        a ``put`` whose item this drain then takes, and that byte left in the pipe kept a
        poll on it readable with nothing queued (a host polling for its wake-ups spun)."""
        with self._lock:
            try:
                while os.read(self._read_fd, 4096):
                    pass
            except BlockingIOError:
                pass
            items = list(self._items)
            self._items.clear()
            self._wake_pending = False
        return items

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._items.clear()
        os.close(self._read_fd)
        os.close(self._write_fd)
