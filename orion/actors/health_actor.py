"""Health checks of this node's tasks: the shell around orion/services/health.py.

Every node runs one. It reads the tasks the FSM assigns to this node (through the Raft actor's
StateView query, as the reconciler does: on each FSM change, coalesced, and every
``READ_EVERY_S`` as a backstop, ``IDLE_READ_EVERY_S`` while it has no task to check), keeps a
``NodeHealth`` in step with the Running ones that have a check, runs the checks that are due
on a small thread pool (a check may wait for its whole timeout; the actor never does), at
most one in flight per task, and proposes ``ReportHealth``
through Raft for what ``NodeHealth`` says: transitions, and corrections while the FSM's record
differs. A check's result comes back to the actor as a message, so the tracker is only ever
touched on the actor's thread.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import Outcome, Propose, Read, StateChanged, Tick
from orion.actors.state_view import StateView
from orion.actors.ticker import TickPlan
from orion.fsm import commands as fsm_commands
from orion.fsm.touched import Touched
from orion.model import Task
from orion.services.health import CheckResult, HealthReport, NodeHealth, Probe
from orion.worker.health_probe import HealthProber, ProbeOutcome

HEALTH_THREADS = 4  # checks in flight at once on a node (each waits at most its timeout)
READ_EVERY_S = 1.0  # the FSM is read at least this often, whatever StateChanged says
# ... while this node runs a task with a check (its record is compared with the tracker's). With
# none, StateChanged (which names the nodes whose tasks changed) starts every read that finds
# one; the backstop then costs a read of the Raft thread and three wakeups every this many s.
IDLE_READ_EVERY_S = 10.0
TICK_S = 0.1  # how often the ticker asks the actor to begin the checks that are due


@dataclass(frozen=True, slots=True)
class _Tasks:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Checked:
    probe: Probe
    outcome: ProbeOutcome
    ended: float


def health_concerned(touched: Touched, node_id: str) -> bool:
    """It reads this node's tasks only."""
    return touched.concerns_node(node_id)


class HealthActor(NodeActor):
    wants_state = staticmethod(health_concerned)  # RaftListeners tells it only these

    def __init__(
        self,
        node_id: str,
        raft: pykka.ActorRef,
        prober: HealthProber,
        request_timeout: float,
        on_fatal: FatalHandler,
        threads: int = HEALTH_THREADS,
    ) -> None:
        super().__init__(on_fatal)
        self.node_id = node_id
        self.raft = raft
        self.prober = prober
        self.timeout = request_timeout
        self.health = NodeHealth(node_id)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="health")
        self._reading = False
        self._read_again = False
        self._read_at = float("-inf")
        # The next tick is asked for when a check is due or the next read is, not every TICK_S
        # (a node without checks wakes once a second).
        self._tick_plan = TickPlan()

    def on_stop(self) -> None:
        # Checks in flight end within their timeout; nobody waits for their results.
        self._pool.shutdown(wait=False, cancel_futures=True)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                self._tick_plan.ticked(gate)
                if time.monotonic() - self._read_at >= self._read_every():
                    self._read()
                self._begin_due()
                self._ask_next_tick()
            case StateChanged(touched) if health_concerned(touched, self.node_id):
                self._read()
            case StateChanged():
                pass
            case _Tasks(outcome):
                self._reading = False
                if outcome.ok:
                    self._propose(self.health.sync(outcome.value, time.monotonic()))
                    self._begin_due()
                    self._ask_next_tick()
                else:
                    logger.debug("health: cannot read this node's tasks: {}", outcome.message)
                if self._read_again:
                    self._read()
            case _Checked(probe, outcome, ended):
                self._propose(self.health.record(probe, CheckResult(outcome.passed, outcome.detail, ended)))
                self._ask_next_tick()
        return None

    def _read(self) -> None:
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        self._read_again = False
        self._read_at = time.monotonic()
        node_id = self.node_id

        def tasks(view: StateView) -> list[Task]:
            # FSM records are never changed in place: the list may leave the Raft thread.
            return view.fsm.tasks_on_node(node_id)

        self.raft.tell(Read(tasks, self.answer(_Tasks), stale=True, timeout=self.timeout, local=True))

    def _read_every(self) -> float:
        return READ_EVERY_S if self.health.tracker.tracked() else IDLE_READ_EVERY_S

    def _ask_next_tick(self) -> None:
        at = self._read_at + self._read_every()
        due = self.health.tracker.next_due()
        self._tick_plan.ask(at if due is None or due > at else due)

    def _begin_due(self) -> None:
        for probe, task in self.health.due(time.monotonic()):
            self._pool.submit(self._check, probe, task)

    def _check(self, probe: Probe, task: Task) -> None:
        """On a pool thread: one check, its result told to the actor."""
        try:
            outcome = self.prober.probe(task, probe.check)
        except Exception as exc:  # a check that breaks is a failed check, never a dead node
            logger.opt(exception=True).debug("health: check of {} raised", task.id)
            outcome = ProbeOutcome(False, f"check error: {type(exc).__name__}: {exc}")
        try:
            self.actor_ref.tell(_Checked(probe, outcome, time.monotonic()))
        except pykka.ActorDeadError:
            pass  # the node is stopping

    def _propose(self, reports: list[HealthReport]) -> None:
        for report in reports:
            logger.info("health: {} is {}: {}", report.task_id, report.health.value, report.reason)
            command = fsm_commands.ReportHealth(
                task_id=report.task_id,
                node_id=self.node_id,
                health=report.health,
                reason=report.reason,
                at=time.time(),
            )
            self.raft.tell(Propose(fsm_commands.encode_command(command), _log_failure, timeout=self.timeout))


def _log_failure(outcome: Outcome) -> None:
    if not outcome.ok:
        logger.debug("health: report not committed: {} {}", outcome.code, outcome.message)
