"""An HTTP client loop on a service's published port, for tests and benchmarks that must show
how many requests failed while something happened (an update, a scale down, a node kill).

    with TrafficLoop([("127.0.0.1", 8080), ("127.0.0.2", 8080)]) as traffic:
        traffic.wait_for_requests(20, timeout=30)   # traffic flows before the change begins
        ...change the service...
        traffic.wait_for_content("v2", timeout=60)
    assert traffic.failed == 0, traffic.describe()

One thread sends short requests, one at a time, each on a new connection (as most clients of
a load balancer do; a kept-alive connection would hide that a backend was removed), turning
round the addresses given (every node's ingress). A request fails when it cannot connect, does
not answer within ``timeout``, or answers with a status other than 200. The body of each
successful answer (stripped) is counted, and the order in which bodies changed is kept.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass

FAILURES_KEPT = 20  # the first failures are described; the rest are only counted


@dataclass(frozen=True)
class Failure:
    at: float  # time.monotonic() when the request began
    address: str
    error: str


class TrafficLoop:
    def __init__(
        self, addresses: list[tuple[str, int]], path: str = "/", timeout: float = 2.0, pause: float = 0.01
    ) -> None:
        if not addresses:
            raise ValueError("addresses: at least one (host, port) is needed")
        self.addresses = list(addresses)
        self.path = path
        self.timeout = timeout
        self.pause = pause  # between requests, so the loop does not take a whole core
        self.ok = 0
        self.failed = 0
        self.failures: list[Failure] = []
        self.seen: Counter[str] = Counter()
        self.changes: list[tuple[float, str]] = []  # (monotonic time, body) each time the body changed
        self._run_length = 0  # successful answers in a row with the latest body
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic-loop", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> TrafficLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 5.0)

    def __enter__(self) -> TrafficLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            host, port = self.addresses[turn % len(self.addresses)]
            turn += 1
            began = time.monotonic()
            try:
                body = self.request(host, port)
            except Exception as exc:  # every way a request can go wrong is a failed request
                self._record_failure(Failure(began, f"{host}:{port}", f"{type(exc).__name__}: {exc}"))
            else:
                self._record_body(body)
            self._stop.wait(self.pause)

    def request(self, host: str, port: int) -> str:
        connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            connection.request("GET", self.path, headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read().decode(errors="replace").strip()
            if response.status != 200:
                raise RuntimeError(f"status {response.status}: {body[:80]!r}")
            return body
        finally:
            connection.close()

    def _record_failure(self, failure: Failure) -> None:
        with self._lock:
            self.failed += 1
            if len(self.failures) < FAILURES_KEPT:
                self.failures.append(failure)

    def _record_body(self, body: str) -> None:
        with self._lock:
            self.ok += 1
            self.seen[body] += 1
            if not self.changes or self.changes[-1][1] != body:
                self.changes.append((time.monotonic(), body))
                self._run_length = 0
            self._run_length += 1

    # ------------------------------------------------------------------ what it saw
    @property
    def requests(self) -> int:
        with self._lock:
            return self.ok + self.failed

    @property
    def last_body(self) -> str | None:
        with self._lock:
            return self.changes[-1][1] if self.changes else None

    def mark(self) -> int:
        """A point in the run: ``ok_since(mark)`` counts successful requests after it."""
        with self._lock:
            return self.ok

    def ok_since(self, mark: int) -> int:
        with self._lock:
            return self.ok - mark

    def wait_for_requests(self, count: int, timeout: float) -> None:
        """Until ``count`` more requests succeeded (traffic flows), or TimeoutError."""
        target = self.mark() + count
        deadline = time.monotonic() + timeout
        while self.mark() < target:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{count} successful requests not seen within {timeout:.0f}s: {self.describe()}"
                )
            if not self._thread.is_alive():
                raise RuntimeError("the traffic loop is not running")
            self._stop.wait(0.05)

    def wait_for_content(self, body: str, timeout: float, settle: int = 10) -> None:
        """Until the last ``settle`` successful answers in a row were ``body``, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                settled = bool(self.changes) and self.changes[-1][1] == body and self._run_length >= settle
            if settled:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"answers did not settle on {body!r} within {timeout:.0f}s: {self.describe()}"
                )
            if not self._thread.is_alive():
                raise RuntimeError("the traffic loop is not running")
            self._stop.wait(0.05)

    def describe(self) -> str:
        with self._lock:
            failures = "; ".join(f"{f.address} {f.error}" for f in self.failures[:5])
            order = " -> ".join(body for _, body in self.changes[-12:])
            return (
                f"{self.ok} ok, {self.failed} failed ({failures or 'none'}); bodies {dict(self.seen)}; "
                f"latest changes: {order or 'none'}"
            )
