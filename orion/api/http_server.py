"""The REST mirror's HTTP server: a bounded pool of workers, bounded connections, optional TLS.

The standard library's ThreadingHTTPServer starts a thread per connection and waits forever
on a silent one, so 300 half-sent requests held 300 threads. Here:

- ``workers`` threads serve connections; a connection accepted while all are busy gets a short
  503 and is closed at once (nothing queues behind a slow client);
- a ConnectionTable caps open connections in total and per client address;
- every socket read and write must progress within ``socket_timeout``;
- with an ``ssl.SSLContext`` the server speaks HTTPS only; the TLS handshake runs on the
  worker, under the same timeout, never on the accepting thread;
- errors the standard library would print to stderr with a traceback (a client that went
  away mid-answer) go to the node's logger as one line, at most one every 30 s with a count;
- the accepting thread sleeps until a connection or ``stop_serving`` wakes it: the standard
  library's ``serve_forever`` looks for its stop flag every poll interval, two wakeups a second
  on every idle node for nothing.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
from http.server import HTTPServer
from typing import Any

from loguru import logger

from orion.security.connections import ConnectionTable, TrackedSocket

BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b'Connection: close\r\nContent-Length: 52\r\n\r\n{"error": "server busy, try again", "code": "busy"}\n'
)
ERROR_LOG_EVERY_S = 30.0


class BoundedHTTPServer(HTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: Any,
        *,
        workers: int,
        connections: ConnectionTable,
        socket_timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(address, handler)
        self.connections = connections
        self.socket_timeout = socket_timeout
        self.tls = tls
        self._idle_workers = threading.Semaphore(workers)
        self._work: queue.SimpleQueue[tuple[socket.socket, Any] | None] = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._serve_queue, name=f"http-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping = False
        self._stopped = threading.Event()
        self._errors_logged_at = 0.0
        self._errors_held = 0
        self.stats: dict[str, int] = {"busy": 0, "errors": 0}

    def serve_until_stopped(self) -> None:
        """Accept connections until ``stop_serving``; run on the server's own thread."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                selector.register(self._wake_reader, selectors.EVENT_READ)
                while not self._stopping:
                    for key, _ in selector.select():
                        if key.fileobj is self.socket and not self._stopping:
                            self._handle_request_noblock()
        finally:
            self._stopped.set()

    def stop_serving(self, timeout: float = 10.0) -> None:
        """Stop accepting and wait (up to ``timeout`` s) for the accepting thread to leave."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")
        self._stopped.wait(timeout)

    def process_request(self, request: Any, client_address: Any) -> None:
        # On the accepting thread: cheap decisions only, never a read from the client.
        tracked = _track(request)
        if tracked is None or not self.connections.admit(request, tracked, time.monotonic()):
            if tracked is not None:
                tracked.close()
            self.shutdown_request(request)
            return
        if not self._idle_workers.acquire(blocking=False):
            self.stats["busy"] += 1
            with contextlib.suppress(OSError):
                request.settimeout(0.2)
                request.sendall(BUSY_ANSWER)
            self._close(request)
            return
        self._work.put((request, client_address))

    def _serve_queue(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            request, client_address = item
            try:
                request.settimeout(self.socket_timeout)
                if self.tls is not None:
                    request = self.tls.wrap_socket(request, server_side=True)  # handshake, with the timeout
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self._close(request)
                self._idle_workers.release()

    def _close(self, request: Any) -> None:
        self.connections.release(request)
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line in the node's log instead of a traceback on stderr; rate-limited."""
        self.stats["errors"] += 1
        now = time.monotonic()
        if self._errors_logged_at and now - self._errors_logged_at < ERROR_LOG_EVERY_S:
            self._errors_held += 1
            return
        error = sys.exc_info()[1]
        more = f" ({self._errors_held} more since the last report)" if self._errors_held else ""
        logger.info("HTTP: a request from {} ended early: {!r}{}", client_address, error, more)
        self._errors_logged_at, self._errors_held = now, 0

    def server_close(self) -> None:
        super().server_close()
        # Also called by HTTPServer.__init__ when the bind fails, before the fields below are
        # set: the caller must see that OSError ("address already in use"), not an
        # AttributeError that the node would not know to stop on.
        for _ in getattr(self, "_workers", ()):
            self._work.put(None)
        connections = getattr(self, "connections", None)
        if connections is not None:
            connections.close_all()
        for end in (getattr(self, "_wake_reader", None), getattr(self, "_wake_writer", None)):
            if end is not None:
                end.close()


def _track(request: socket.socket) -> TrackedSocket | None:
    try:
        address = request.getpeername()[0]
        return TrackedSocket(socket.socket(fileno=os.dup(request.fileno())), str(address))
    except OSError:
        return None


def tls_context(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server context for HTTPS (TLS 1.2 or later); OSError naming the files if they do not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(os.fspath(cert), os.fspath(key))
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"cannot load [security] tls_cert {cert} / tls_key {key}: {exc}") from None
    return context
