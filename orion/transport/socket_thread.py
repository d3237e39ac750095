"""The lifecycle shared by every component whose ZeroMQ sockets belong to one thread
(DESIGN rule 3): the peer transport and the client API server.

``start`` runs ``_run`` on a new thread and returns once the thread has bound its sockets
(or raises the bind error there, in the caller's thread); ``stop`` wakes the thread through
its mailbox and joins it. Other threads only ever talk to it through the mailbox.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from orion.transport.mailbox import Mailbox

T = TypeVar("T")


class SocketThread(ABC, Generic[T]):
    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._mailbox: Mailbox[T] = Mailbox()
        self._thread: threading.Thread | None = None
        self._running = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    def start(self) -> None:
        """Start the thread; raises here if it cannot bind its sockets."""
        if self._thread is not None:
            raise RuntimeError(f"{self._thread_name} already started")
        self._running = True
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def stop(self) -> None:
        """Close every socket (LINGER=0: unsent frames are dropped) and join the thread."""
        thread = self._thread
        if thread is None or not self._running:
            return
        self._running = False
        self._mailbox.wake()
        thread.join()
        self._mailbox.close()

    def _ready(self, error: BaseException | None = None) -> None:
        """Called by ``_run`` once its sockets are bound, or with the reason they are not."""
        self._start_error = error
        self._started.set()

    @abstractmethod
    def _run(self) -> None:
        """The thread's body: create and bind the sockets, call ``_ready``, then poll them
        together with the mailbox while ``_running``; close everything before returning."""
