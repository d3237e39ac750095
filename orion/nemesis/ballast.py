"""Big-state mode: a client thread that grows the replicated state past tens of megabytes
during a run, with big entries (~500 KB of task env each), so snapshots, their streaming to a
wiped or lagging node, byte-limited appends and compaction all run under faults.

Ballast tasks are unplaceable (a node selector no node matches): they stay Pending, start no
container, and carry their own id prefix, so the running-task checks ignore them. Every
submit is recorded in the ballast's own History; the checker then proves each acknowledged
one exists exactly once and each refused one never appears, like the other submits.
"""

from __future__ import annotations

import threading
import time

from orion.client import Client
from orion.nemesis.history import History, Op, OpKind, Outcome, outcome_of
from orion.testing.localcluster import UNPLACEABLE, big_env

IMAGE = "orion-busybox:latest"
ENTRY_BYTES = 500_000


class BallastWriter(threading.Thread):
    """Submits ballast tasks at the pace that acknowledges ``target_mb`` MiB of env within
    ``within`` seconds (back to back while behind, as after a fault that refused writes), until
    the target is reached or ``stop`` is set; ``acked_bytes`` says how far it got."""

    def __init__(
        self,
        endpoints: list[str],
        history: History,
        prefix: str,
        stop: threading.Event,
        *,
        target_mb: float,
        within: float,
        timeout: float = 10.0,
        token: str | None = None,
    ) -> None:
        super().__init__(name="nemesis-ballast", daemon=True)
        if target_mb <= 0 or within < 0:
            raise ValueError(f"ballast: target_mb must be > 0 and within >= 0, got {target_mb}, {within}")
        self.endpoints = endpoints
        self.history = history
        self.prefix = prefix
        self.stop_event = stop
        self.target_bytes = int(target_mb * 2**20)
        self.within = within
        self.timeout = timeout
        self.token = token
        self.acked_bytes = 0
        self._counter = 0

    def run(self) -> None:
        started = time.monotonic()
        with Client(self.endpoints, timeout=self.timeout, retries=2, token=self.token) as client:
            while not self.stop_event.is_set() and self.acked_bytes < self.target_bytes:
                self.submit(client)
                on_schedule = started + self.within * self.acked_bytes / self.target_bytes
                self.stop_event.wait(max(0.0, on_schedule - time.monotonic()))

    def submit(self, client: Client) -> None:
        self._counter += 1
        task_id = f"{self.prefix}-{self._counter}"
        op = Op(client=0, kind=OpKind.SUBMIT, task_id=task_id, start=time.time())
        try:
            client.submit(
                IMAGE, id=task_id, name=task_id, node_selectors=UNPLACEABLE, env=big_env(ENTRY_BYTES)
            )
            op.outcome = Outcome.OK
            self.acked_bytes += ENTRY_BYTES
        except Exception as exc:
            op.outcome, op.code = outcome_of(exc)
            op.detail = str(exc)
        op.end = time.time()
        self.history.record(op)
