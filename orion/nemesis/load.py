"""Client load during faults: several threads submit tasks with unique names, stop some and
read the task list, recording every operation in the History.

Each thread has its own Client (a ZeroMQ socket belongs to one thread) over every node's
endpoint. The number of tasks a thread may have running is bounded so a long run does not
fill the machine with containers: past the bound it stops one of its own tasks instead.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from orion.api.protocol import SubmitTask
from orion.client import Client
from orion.model import Task
from orion.nemesis.history import History, Op, OpKind, Outcome, outcome_of

T = TypeVar("T")

IMAGE = "orion-busybox:latest"
COMMAND = ["sleep", "3600"]
TASK_MEMORY = 8 * 1024 * 1024


class ClientWorker(threading.Thread):
    def __init__(
        self,
        number: int,
        endpoints: list[str],
        history: History,
        rng: random.Random,
        run_prefix: str,
        stop: threading.Event,
        *,
        max_live: int = 6,
        timeout: float = 3.0,
        token: str | None = None,
    ) -> None:
        super().__init__(name=f"nemesis-client-{number}", daemon=True)
        self.number = number
        self.endpoints = endpoints
        self.history = history
        self.rng = rng
        self.run_prefix = run_prefix
        self.stop_event = stop
        self.max_live = max_live
        self.timeout = timeout
        self.token = token
        self.live: list[str] = []  # submitted (ok or unknown) and not yet stopped by us
        self._counter = 0

    def run(self) -> None:
        with Client(self.endpoints, timeout=self.timeout, retries=2, token=self.token) as client:
            while not self.stop_event.is_set():
                self.step(client)
                self.stop_event.wait(self.rng.uniform(0.05, 0.3))

    def step(self, client: Client) -> None:
        roll = self.rng.random()
        if roll < 0.45:
            if len(self.live) < self.max_live:
                self.submit(client)
            else:
                self.stop_one(client)
        elif roll < 0.65:
            if self.live:
                self.stop_one(client)
            else:
                self.submit(client)
        elif roll < 0.95:
            self.read(client)
        elif roll < 0.975:
            self.submit_invalid(client)
        else:
            self.stop_missing(client)

    # ------------------------------------------------------------------ operations

    def _attempt(self, op: Op, call: Callable[[], T], observe: Callable[[T], None] | None = None) -> None:
        """Run one client call as ``op``: its outcome (ok, error, unknown), what a successful
        call showed (``observe``) and its end time, then record it."""
        try:
            result = call()
            op.outcome = Outcome.OK
            if observe is not None:
                observe(result)
        except Exception as exc:
            op.outcome, op.code = outcome_of(exc)
            op.detail = str(exc)
        op.end = time.time()
        self.history.record(op)

    def _next_id(self) -> str:
        self._counter += 1
        return f"{self.run_prefix}-c{self.number}-{self._counter}"

    def submit(self, client: Client) -> None:
        task_id = self._next_id()
        op = Op(client=self.number, kind=OpKind.SUBMIT, task_id=task_id, start=time.time())
        self._attempt(
            op, lambda: client.submit(IMAGE, id=task_id, name=task_id, memory=TASK_MEMORY, command=COMMAND)
        )
        if op.outcome is not Outcome.ERROR:
            self.live.append(task_id)

    def submit_invalid(self, client: Client) -> None:
        """A submit the server must refuse on validation (negative memory): it must never exist.

        Built as a struct directly so the client's own validation does not catch it first.
        """
        task_id = self._next_id()
        request = SubmitTask(id=task_id, name=task_id, image=IMAGE, memory=-1, command=COMMAND)
        op = Op(client=self.number, kind=OpKind.SUBMIT_INVALID, task_id=task_id, start=time.time())
        self._attempt(op, lambda: client._call(request))

    def stop_one(self, client: Client) -> None:
        task_id = self.live.pop(self.rng.randrange(len(self.live)))
        op = self._stop_task(client, task_id)
        if op.outcome is Outcome.UNKNOWN or op.code == "no_quorum":
            self.live.append(task_id)  # it may still run: keep counting it, try again later

    def stop_missing(self, client: Client) -> None:
        self._stop_task(client, self._next_id())  # never submitted: not_found, and it must not appear

    def _stop_task(self, client: Client, task_id: str) -> Op:
        op = Op(client=self.number, kind=OpKind.STOP, task_id=task_id, start=time.time())
        self._attempt(op, lambda: client.stop(task_id))
        return op

    def read(self, client: Client) -> None:
        op = Op(client=self.number, kind=OpKind.READ, start=time.time())

        def observe(tasks: list[Task]) -> None:
            op.seen = tuple(t.id for t in tasks if t.id.startswith(self.run_prefix))

        self._attempt(op, client.tasks, observe)
