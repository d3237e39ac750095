"""The Heart: a level-triggered loop that makes this node's containers match the FSM.

Each round compares the tasks the replicated state assigns to this node with the containers
Docker holds for it (label ``orion.node.id``): it starts what is missing, removes what is no
longer assigned here (stopped, rescheduled elsewhere while this node was away, unknown), and
reports state changes (Running, exits, Failed) through Raft. Rounds run every
``reconcile_interval`` and at once when the FSM or Docker says something changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import ContainerExited, Outcome, Propose, Read, StateChanged, Tick
from orion.actors.state_view import StateView
from orion.actors.worker_actor import ListContainers, StartContainer, StopContainer
from orion.fsm import commands as fsm_commands
from orion.model import Task, TaskState
from orion.worker.restart_policy import RestartPolicy

REPORT_RETRY_S = 3.0  # a report not yet visible in the FSM after this long is sent again


@dataclass(frozen=True, slots=True)
class _Desired:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Actual:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Started:
    task_id: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Stopped:
    task_id: str
    outcome: Outcome


class ReconcilerActor(NodeActor):
    def __init__(
        self,
        node_id: str,
        raft: pykka.ActorRef,
        worker: pykka.ActorRef,
        policy: RestartPolicy,
        request_timeout: float,
        on_fatal: FatalHandler,
    ) -> None:
        super().__init__(on_fatal)
        self.node_id = node_id
        self.raft = raft
        self.worker = worker
        self.policy = policy
        self.timeout = request_timeout
        self._round_active = False
        self._dirty = False
        self._desired: list[Task] | None = None
        self._actual: list[Any] | None = None
        self._starting: set[str] = set()
        self._stopping: set[str] = set()
        self._restart_at: dict[str, float] = {}
        self._handled_exit: dict[str, str] = {}  # task id -> container id whose exit was handled
        self._reported: dict[str, tuple[tuple[str, int, str], float]] = {}
        self._answers = 0
        self._expected_answers = 2
        self._round_failed = False
        # Docker's view, as last listed. Only Docker events, our own starts and stops, and the
        # periodic tick change it, so a round woken by the FSM reuses it instead of asking
        # Docker again on every replicated write.
        self._containers: list[Any] | None = None
        self._containers_stale = True

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                self._containers_stale = True
                self._begin_round()
            case ContainerExited():
                self._containers_stale = True
                self._begin_round()
            case StateChanged():
                self._begin_round()
            case _Desired(outcome) | _Actual(outcome) if not outcome.ok:
                # Never act on half a picture: an empty desired list would remove everything.
                logger.warning("reconciler: round abandoned: {}", outcome.message)
                self._round_failed = True
                self._maybe_diff(message)
            case _Desired(outcome):
                self._desired = outcome.value
                self._maybe_diff(message)
            case _Actual(outcome):
                self._actual = self._containers = list(outcome.value)
                self._maybe_diff(message)
            case _Started(task_id, outcome):
                self._starting.discard(task_id)
                self._containers_stale = True
                self._on_started(task_id, outcome)
            case _Stopped(task_id, outcome):
                self._stopping.discard(task_id)
                self._containers_stale = True
                if not outcome.ok:
                    logger.warning("reconciler: stopping {} failed: {}", task_id, outcome.message)
        return None

    # ------------------------------------------------------------------ rounds
    def _begin_round(self) -> None:
        if self._round_active:
            self._dirty = True
            return
        self._round_active = True
        self._dirty = False
        self._desired = None
        self._actual = None
        self._answers = 0
        self._round_failed = False
        ref = self.actor_ref
        node_id = self.node_id

        def desired(view: StateView) -> list[Task]:
            return view.fsm.tasks_on_node(node_id)  # FSM records are never changed in place

        self.raft.tell(Read(desired, lambda o: ref.tell(_Desired(o)), stale=True))
        if self._containers_stale or self._containers is None:
            self._containers_stale = False
            self._expected_answers = 2
            self.worker.tell(ListContainers(lambda o: ref.tell(_Actual(o))))
        else:
            self._expected_answers = 1
            self._actual = self._containers

    def _maybe_diff(self, answer: _Desired | _Actual) -> None:
        self._answers += 1
        if self._answers < self._expected_answers:
            return  # wait for the other half
        try:
            if not self._round_failed and self._desired is not None and self._actual is not None:
                self._diff(self._desired, self._actual)
        finally:
            self._end_round()

    def _end_round(self) -> None:
        self._round_active = False
        if self._dirty:
            self._begin_round()

    def _diff(self, tasks: list[Task], containers: list[Any]) -> None:
        now = time.monotonic()
        by_task = {c.task_id: c for c in containers}
        wanted = {
            t.id: t
            for t in tasks
            if t.node_id == self.node_id
            and t.desired == "run"
            and t.state in (TaskState.SCHEDULED, TaskState.RUNNING)
        }
        for task_id in by_task:
            if task_id not in wanted and task_id not in self._starting and task_id not in self._stopping:
                logger.info("reconciler: removing container of {} (no longer assigned here)", task_id)
                self._remove_container(task_id)
                self._restart_at.pop(task_id, None)
                self._handled_exit.pop(task_id, None)
        for task in wanted.values():
            if task.id in self._starting or task.id in self._stopping:
                continue
            container = by_task.get(task.id)
            if container is not None and container.status == "running":
                if task.state != TaskState.RUNNING:
                    self._report(task, TaskState.RUNNING, "", task.restarts, None)
                continue
            if (
                container is not None
                and container.status in ("exited", "dead")
                and self._handled_exit.get(task.id) != container.container_id
            ):
                self._handled_exit[task.id] = container.container_id
                self._on_exit(task, container.exit_code, container.oom_killed, now)
                continue
            if now >= self._restart_at.get(task.id, 0.0):
                self._start_container(task)

    # ------------------------------------------------------------------ actions
    def _start_container(self, task: Task) -> None:
        self._starting.add(task.id)
        ref = self.actor_ref
        task_id = task.id
        self.worker.tell(StartContainer(task, lambda o: ref.tell(_Started(task_id, o))))

    def _remove_container(self, task_id: str) -> None:
        self._stopping.add(task_id)
        ref = self.actor_ref
        self.worker.tell(StopContainer(task_id, lambda o: ref.tell(_Stopped(task_id, o))))

    def _on_started(self, task_id: str, outcome: Outcome) -> None:
        task = next((t for t in self._desired or [] if t.id == task_id), None)
        if task is None:
            self._begin_round()  # it may have been stopped meanwhile: the round removes it
            return
        if outcome.ok:
            logger.info("reconciler: started {} ({})", task_id, task.image)
            self._report(task, TaskState.RUNNING, "", task.restarts, None)
        else:
            logger.warning("reconciler: cannot start {}: {}", task_id, outcome.message)
            self._report(task, TaskState.FAILED, outcome.message, task.restarts, None)

    def _on_exit(self, task: Task, exit_code: int | None, oom_killed: bool, now: float) -> None:
        cause = "killed: out of memory" if oom_killed else f"exited with code {exit_code}"
        if exit_code == 0 and not oom_killed:
            self._report(task, TaskState.STOPPED, "completed: exited with code 0", task.restarts, 0)
            return
        attempt = task.restarts + 1
        delay = self.policy.delay(attempt)
        if delay is None:
            reason = f"{cause}; gave up after {task.restarts} restart(s)"
            self._report(task, TaskState.FAILED, reason, task.restarts, exit_code)
            return
        self._restart_at[task.id] = now + delay
        reason = f"{cause}; restart {attempt}/{self.policy.max_attempts} in {delay:.1f}s"
        logger.info("reconciler: {} {}", task.id, reason)
        self._report(task, TaskState.SCHEDULED, reason, attempt, exit_code)

    def _report(self, task: Task, state: str, reason: str, restarts: int, exit_code: int | None) -> None:
        key = (state, restarts, reason)
        previous = self._reported.get(task.id)
        now = time.monotonic()
        if previous is not None and previous[0] == key and now - previous[1] < REPORT_RETRY_S:
            return
        self._reported[task.id] = (key, now)
        command = fsm_commands.ReportTaskState(
            task_id=task.id,
            node_id=self.node_id,
            state=state,
            reason=reason,
            exit_code=exit_code,
            restarts=restarts,
            at=time.time(),
        )
        self.raft.tell(Propose(fsm_commands.encode_command(command), _log_failure, timeout=self.timeout))


def _log_failure(outcome: Outcome) -> None:
    if not outcome.ok:
        logger.debug("reconciler: report not committed: {} {}", outcome.code, outcome.message)
