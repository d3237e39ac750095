"""Mailbox.drain racing a put from another thread (orion/transport/mailbox.py): whatever the
interleaving, once a drain has returned the pipe is readable only while items are queued. A
wake-up byte left behind with nothing queued kept a HostedInbox's poll readable: its thread
(the gossip actor's) polled without sleeping until the next put from another thread."""

from __future__ import annotations

import os
import select
import threading
from typing import Any

import pytest

from orion.transport.mailbox import Mailbox


class _WatchedLock:
    """The mailbox's lock, telling when ``owner`` starts to wait for it."""

    def __init__(self, owner_waits: threading.Event) -> None:
        self._lock = threading.Lock()
        self._owner_waits = owner_waits
        self.owner: int | None = None

    def __enter__(self) -> bool:
        if threading.get_ident() == self.owner:
            self._owner_waits.set()
        return self._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def test_a_put_whose_item_a_racing_drain_takes_leaves_no_wake_up_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box: Mailbox[str] = Mailbox()
    owner_waits, appended = threading.Event(), threading.Event()
    lock = _WatchedLock(owner_waits)
    box._lock = lock  # type: ignore[assignment]
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        # The put holds the lock, its item is queued, its byte not yet written: the owner
        # drains now (it saw the item) and waits for the lock.
        appended.set()
        assert owner_waits.wait(10), "the owner never reached the mailbox's lock"
        return real_write(fd, data)

    drained: list[str] = []

    def owner() -> None:
        lock.owner = threading.get_ident()
        assert appended.wait(10)
        drained.extend(box.drain())

    monkeypatch.setattr(os, "write", write)
    thread = threading.Thread(target=owner)
    thread.start()
    box.put("x")
    thread.join(10)
    monkeypatch.setattr(os, "write", real_write)
    assert drained == ["x"] and len(box) == 0
    readable, _, _ = select.select([box.fileno()], [], [], 0)
    assert readable == []  # nothing queued: nothing to wake the owner for
    box.put("y")  # the next put still wakes it
    assert select.select([box.fileno()], [], [], 0)[0] == [box.fileno()]
    assert box.drain() == ["y"]
    box.close()
