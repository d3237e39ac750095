"""The Judge's shell: on the leader, reads pending tasks and nodes from the FSM, runs the
pure scheduler, and commits the plan through Raft. One round is in flight at a time, so a
round never plans on capacity that an earlier, not yet applied, plan already took."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import LeadershipChanged, Outcome, Propose, Read, StateChanged, Tick
from orion.actors.raft_actor import StateView
from orion.fsm import commands as fsm_commands
from orion.scheduler.judge import nomad_limit, schedule
from orion.scheduler.types import NodeView

BATCH = 512  # pending tasks per round; more wait for the next round, started at once
EXACT_BELOW = 64  # score every node in small clusters; sample (Nomad's limit) in large ones


@dataclass(frozen=True, slots=True)
class _Input:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Committed:
    outcome: Outcome
    more: bool


@dataclass(frozen=True, slots=True)
class SchedulingInput:
    nodes: list[NodeView]
    pending: list[Any]
    more: bool
    seed: int


def scheduling_input(view: StateView) -> SchedulingInput | None:
    if not view.is_leader:
        return None
    fsm = view.fsm
    pending_all = fsm.pending_tasks()
    if not pending_all:
        return None
    pending = [msgspec.structs.replace(task) for task in pending_all[:BATCH]]
    nodes = []
    for record in fsm.nodes():
        memory, cpu, disk = fsm.allocated(record.meta.id)
        nodes.append(NodeView(record.meta.id, record.status, record.meta, memory, cpu, disk))
    return SchedulingInput(nodes, pending, len(pending_all) > BATCH, view.raft().applied_index)


class SchedulerActor(NodeActor):
    def __init__(
        self, raft: pykka.ActorRef, strategy: str, request_timeout: float, on_fatal: FatalHandler
    ) -> None:
        super().__init__(on_fatal)
        self.raft = raft
        self.strategy = strategy
        self.timeout = request_timeout
        self._leader = False
        self._in_flight = False
        self._dirty = False

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                self._round()
            case StateChanged():
                self._round()
            case LeadershipChanged(is_leader, _):
                self._leader = is_leader
                self._round()
            case _Input(outcome):
                self._plan(outcome)
            case _Committed(outcome, more):
                self._in_flight = False
                if not outcome.ok:
                    logger.warning("scheduler: plan not committed: {} {}", outcome.code, outcome.message)
                if more or self._dirty:
                    self._round()
        return None

    def _round(self) -> None:
        if not self._leader:
            return
        if self._in_flight:
            self._dirty = True
            return
        self._in_flight = True
        self._dirty = False
        ref = self.actor_ref
        self.raft.tell(Read(scheduling_input, lambda o: ref.tell(_Input(o)), stale=True))

    def _plan(self, outcome: Outcome) -> None:
        data: SchedulingInput | None = outcome.value if outcome.ok else None
        if data is None:
            self._in_flight = False
            if self._dirty:
                self._round()
            return
        limit = None if len(data.nodes) < EXACT_BELOW else nomad_limit(len(data.nodes))
        plan = schedule(data.nodes, data.pending, self.strategy, data.seed, limit=limit)
        current = {task.id: task.reason for task in data.pending}
        reasons = {
            task_id: reason
            for task_id, reason in plan.pending_reasons.items()
            if reason != current.get(task_id)
        }
        if not plan.assignments and not reasons:
            self._in_flight = False
            if data.more:
                self._round()
            return
        if plan.assignments:
            logger.info("scheduler: placing {} task(s)", len(plan.assignments))
        now = time.time()
        commands: list[Any] = []
        if plan.assignments:
            commands.append(fsm_commands.AssignTasks(assignments=list(plan.assignments), at=now))
        by_reason: dict[str, list[str]] = {}
        for task_id, reason in reasons.items():
            by_reason.setdefault(reason, []).append(task_id)
        commands.extend(
            fsm_commands.SetPending(task_ids=ids, reason=reason, at=now) for reason, ids in by_reason.items()
        )
        ref = self.actor_ref
        more = data.more
        # The round ends when the last command is applied (Raft applies them in order).
        for position, command in enumerate(commands):
            last = position == len(commands) - 1
            callback = (lambda o: ref.tell(_Committed(o, more))) if last else None
            self.raft.tell(Propose(fsm_commands.encode_command(command), callback, timeout=self.timeout))
