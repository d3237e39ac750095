"""Service load during faults: one thread creates a few services, then updates, scales and
rolls them back at random, recording every operation in the History.

Each create or update asks for a new template revision, carried in the template's env as
``NEMESIS_REV`` (a value no other operation uses), so the checker can tell from any task which
request its template came from, and find a task of a revision nobody asked for. Tasks run
``sleep`` with a short stop grace (sleep ignores SIGTERM) and little memory; a service never
has more than ``max_replicas`` of them, so the load adds few containers to the machine.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from orion.client import Client
from orion.nemesis.history import History, Op, OpKind, Outcome, outcome_of

IMAGE = "orion-busybox:latest"
COMMAND = ["sleep", "3600"]
TASK_MEMORY = 8 * 1024 * 1024
REV_ENV = "NEMESIS_REV"
STOP_GRACE = 1.0
CLIENT_NUMBER = 0  # in the history; the task clients are numbered from 1


def service_names(run_prefix: str, count: int) -> list[str]:
    return [f"{run_prefix}-svc{i}" for i in range(1, count + 1)]


class ServiceWorker(threading.Thread):
    def __init__(
        self,
        endpoints: list[str],
        history: History,
        rng: random.Random,
        run_prefix: str,
        stop: threading.Event,
        *,
        services: int = 2,
        max_replicas: int = 3,
        timeout: float = 3.0,
        token: str | None = None,
    ) -> None:
        super().__init__(name="nemesis-services", daemon=True)
        self.endpoints = endpoints
        self.history = history
        self.rng = rng
        self.run_prefix = run_prefix
        self.stop_event = stop
        self.names = service_names(run_prefix, services)
        self.max_replicas = max_replicas
        self.timeout = timeout
        self.token = token
        self.created: set[str] = set()  # services whose create was acknowledged
        self._revisions = 0

    def run(self) -> None:
        with Client(self.endpoints, timeout=self.timeout, retries=2, token=self.token) as client:
            while not self.stop_event.is_set():
                self.step(client)
                self.stop_event.wait(self.rng.uniform(0.5, 2.0))

    def step(self, client: Client) -> None:
        missing = [name for name in self.names if name not in self.created]
        if missing:
            self.create(client, missing[0])
            return
        name = self.rng.choice(self.names)
        roll = self.rng.random()
        if roll < 0.4:
            self.update(client, name)
        elif roll < 0.8:
            self.scale(client, name)
        else:
            self.rollback(client, name)

    # ------------------------------------------------------------------ operations

    def _attempt(self, op: Op, call: Callable[[], object]) -> None:
        try:
            call()
            op.outcome = Outcome.OK
        except Exception as exc:
            op.outcome, op.code = outcome_of(exc)
            op.detail = str(exc)
        op.end = time.time()
        self.history.record(op)

    def _next_rev(self) -> str:
        self._revisions += 1
        return f"{self.run_prefix}-r{self._revisions}"

    def create(self, client: Client, name: str) -> None:
        rev = self._next_rev()
        replicas = self.rng.randint(1, self.max_replicas)
        op = Op(
            client=CLIENT_NUMBER, kind=OpKind.SERVICE_CREATE, service=name, rev=rev, replicas=replicas,
            start=time.time(),
        )  # fmt: skip
        self._attempt(
            op,
            lambda: client.create_service(
                name,
                IMAGE,
                command=COMMAND,
                env={REV_ENV: rev},
                memory=TASK_MEMORY,
                replicas=replicas,
                stop_grace=STOP_GRACE,
                update={"parallelism": self.rng.choice((1, 2)), "monitor": 1.0},
            ),
        )
        # A create that timed out may have been applied: look before asking again.
        if op.outcome is Outcome.OK or (op.outcome is Outcome.UNKNOWN and self._exists(client, name)):
            self.created.add(name)

    def _exists(self, client: Client, name: str) -> bool:
        try:
            client.service(name)
        except Exception:
            return False
        return True

    def update(self, client: Client, name: str) -> None:
        rev = self._next_rev()
        op = Op(client=CLIENT_NUMBER, kind=OpKind.SERVICE_UPDATE, service=name, rev=rev, start=time.time())
        self._attempt(op, lambda: client.update_service(name, env={REV_ENV: rev}))

    def scale(self, client: Client, name: str) -> None:
        replicas = self.rng.randint(0, self.max_replicas)
        op = Op(
            client=CLIENT_NUMBER,
            kind=OpKind.SERVICE_SCALE,
            service=name,
            replicas=replicas,
            start=time.time(),
        )
        self._attempt(op, lambda: client.scale_service(name, replicas))

    def rollback(self, client: Client, name: str) -> None:
        op = Op(client=CLIENT_NUMBER, kind=OpKind.SERVICE_ROLLBACK, service=name, start=time.time())
        self._attempt(op, lambda: client.rollback_service(name))
