"""Bounded client connections: a cap per listening socket and per source address, and idle ones closed.

Both client APIs hand every accepted TCP connection to a ``ConnectionTable``: ``admit`` says
whether it fits (at most ``max_total`` open, at most ``max_per_address`` from one IP address),
``sweep`` finds connections that have sent nothing for ``idle_timeout``, and ``release``
forgets a closed one. A connection over a cap is shut down at once, so a flood from one
address costs the node an accept and a close per connection, and never takes the places of
clients from other addresses.

The ZeroMQ API learns of connections only by file descriptor number (socket monitor events),
which libzmq may close and reuse at any time. So the table keeps its own duplicate of each
descriptor (``TrackedSocket``): a duplicate names the same connection for as long as we hold it,
so ``shutdown`` on it can never hit another socket that reuses the number. How long a
connection has been silent comes from the kernel (``TCP_INFO``'s ``tcpi_last_data_recv``), not
from ZMTP heartbeats: a heartbeat answer is traffic too, so a heartbeat would keep every idle
but live connection open forever.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from loguru import logger

_TCP_INFO_LAST_DATA_RECV = 52  # offset of tcpi_last_data_recv (u32, ms) in Linux's struct tcp_info
_TCP_INFO_SIZE = 104
REFUSAL_LOG_EVERY_S = 30.0


@dataclass(eq=False)
class TrackedSocket:
    """Our own duplicate of an accepted connection's descriptor, and where it comes from."""

    sock: socket.socket = field(repr=False)
    address: str
    since: float = field(default_factory=time.monotonic)

    def silent_for(self) -> float | None:
        """Seconds since the peer last sent data (kernel clock; at most the connection's age:
        before any data the kernel's figure counts from boot), or None if unknown."""
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        except OSError:
            return None
        if len(info) < _TCP_INFO_LAST_DATA_RECV + 4:
            return None
        silent = struct.unpack_from("I", info, _TCP_INFO_LAST_DATA_RECV)[0] / 1000.0
        return min(silent, time.monotonic() - self.since)

    def shutdown(self) -> None:
        # shutdown (not close) acts on the connection itself, so the owner of the original
        # descriptor (libzmq or a server thread) sees it end and cleans up as for any peer.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def track_descriptor(fd: int) -> TrackedSocket | None:
    """A TrackedSocket of descriptor ``fd`` (a duplicate), or None when it is no TCP connection
    (already closed, or the number reused by something else by now)."""
    try:
        duplicate = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        if duplicate.type != socket.SOCK_STREAM or duplicate.family not in (socket.AF_INET, socket.AF_INET6):
            raise OSError("not a TCP socket")
        address = duplicate.getpeername()[0]
    except OSError:
        duplicate.close()
        return None
    return TrackedSocket(duplicate, str(address))


class ConnectionTable:
    """Open connections of one listening socket by key (a descriptor number, or a socket).

    Thread-safe: the REST server admits from its accept thread and releases from workers.
    """

    def __init__(self, name: str, max_total: int, max_per_address: int, idle_timeout: float) -> None:
        self.name = name
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.idle_timeout = idle_timeout
        self._open: dict[object, TrackedSocket] = {}
        self._per_address: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self._refusal_logged_at = 0.0
        self._refusals_held = 0

    def __len__(self) -> int:
        return len(self._open)

    def count(self, address: str) -> int:
        return self._per_address[address]

    def admit(self, key: object, tracked: TrackedSocket, now: float) -> bool:
        """Track ``tracked`` under ``key`` if it fits the caps; else False (the caller closes it)."""
        with self._lock:
            old = self._open.pop(key, None)
            if old is not None:  # a number reused before we heard the old connection closed
                self._forget(old)
            if len(self._open) >= self.max_total:
                reason = f"{self.max_total} connections open (security.max_connections)"
            elif self._per_address[tracked.address] >= self.max_per_address:
                reason = (
                    f"{self.max_per_address} connections open from {tracked.address} "
                    "(security.max_connections_per_address)"
                )
            else:
                self._open[key] = tracked
                self._per_address[tracked.address] += 1
                self.stats["admitted"] += 1
                return True
            self.stats["refused"] += 1
        self._log_refusal(reason, now)
        return False

    def release(self, key: object) -> None:
        with self._lock:
            tracked = self._open.pop(key, None)
            if tracked is not None:
                self._forget(tracked)

    def _forget(self, tracked: TrackedSocket) -> None:
        self._per_address[tracked.address] -= 1
        if self._per_address[tracked.address] <= 0:
            del self._per_address[tracked.address]
        tracked.close()

    def sweep(self) -> int:
        """Shut down every connection silent for ``idle_timeout``; how many. Their owners see
        them end and ``release`` them as usual."""
        with self._lock:
            tracked = list(self._open.values())
        idle = 0
        for connection in tracked:
            silent = connection.silent_for()
            if silent is not None and silent >= self.idle_timeout:
                connection.shutdown()
                idle += 1
        self.stats["idle_closed"] += idle
        return idle

    def close_all(self) -> None:
        with self._lock:
            for tracked in self._open.values():
                tracked.close()
            self._open.clear()
            self._per_address.clear()

    def _log_refusal(self, reason: str, now: float) -> None:
        if self._refusal_logged_at and now - self._refusal_logged_at < REFUSAL_LOG_EVERY_S:
            self._refusals_held += 1
            return
        more = f" ({self._refusals_held} more since the last report)" if self._refusals_held else ""
        logger.warning("{}: refused a connection: {}{}", self.name, reason, more)
        self._refusal_logged_at, self._refusals_held = now, 0
