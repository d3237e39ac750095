"""The service controller's shell: on the leader, reads every service and its tasks from the
FSM, runs the pure core (orion/services/controller.py) for each, and proposes its decisions.

A round runs every ``[services] controller_interval`` and after FSM changes, one at a time: a
round reads (linearizably, so a new leader never decides on a view that misses its
predecessor's last steps), decides, proposes at most one command per service, and ends when
every proposal came back. A ``ServiceStep`` names the service version it was decided on; the
FSM refuses it as a conflict when a user changed the service in between, which only means
the next round looks again. Time (wall clock, like every command's ``at``) and task ids are
the shell's; the core reads neither.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import LeadershipChanged, Outcome, Propose, Read, StateChanged, Tick, TickGate
from orion.actors.state_view import StateView
from orion.api.protocol import ErrorCode
from orion.fsm import commands as fsm_commands
from orion.fsm.touched import Touched
from orion.model import GONE_STATUSES, Task
from orion.services.controller import DEFAULT_DRAIN_DELAY, Decision, Rollback, Settings, Step, decide
from orion.services.spec import Service

DEFAULT_CONTROLLER_INTERVAL = 0.5  # [services] controller_interval
IDLE_TICK_S = 5.0  # between rounds while there is no service and no drain, or on a follower
# A round's decisions cost time in proportion to the services' tasks (10 services of 1,000
# replicas: tens of ms), and during a burst every report touches a service's task, so rounds
# ran back to back and took most of the leader's Python (a 3,000-replica burst on 300 nodes:
# 58% of its GIL samples). The next round waits this many times as long as the last one's
# decisions took: the controller keeps at most a quarter of its thread under churn, and a
# small cluster (a round in about a millisecond) sees no difference. A change waits at most
# ROUND_GAP_MAX_S for its round.
ROUND_GAP_FACTOR = 3.0
ROUND_GAP_MAX_S = 1.0


@dataclass(frozen=True, slots=True)
class ControllerInput:
    services: list[tuple[Service, list[Task]]]  # every service with every task of it
    down_nodes: frozenset[str]  # dead or departed: their tasks are lost
    draining_nodes: frozenset[str] = frozenset()  # ``orion node drain``: their tasks move elsewhere
    # (node, deadline) of drains with a deadline and tasks still live on the node
    drain_deadlines: tuple[tuple[str, float], ...] = ()


def controller_input(view: StateView) -> ControllerInput | None:
    """What a round decides on; None on a node that is not the leader."""
    if not view.is_leader:
        return None
    fsm = view.fsm
    down = frozenset(record.id for record in fsm.nodes() if record.status in GONE_STATUSES)
    draining = frozenset(record.id for record in fsm.nodes() if record.drain is not None)
    deadlines = tuple(
        (record.id, record.drain.deadline)
        for record in fsm.nodes()
        if record.drain is not None
        and record.drain.deadline is not None
        and fsm.live_tasks_on_node(record.id)
    )
    return ControllerInput(
        [(s, fsm.service_tasks(s.name)) for s in fsm.services()], down, draining, deadlines
    )


def service_controller_concerned(touched: Touched, node_id: str = "") -> bool:
    """Whether ``controller_input`` may differ: services, their tasks, node records (down and
    draining nodes), or tasks on some node (a drain's deadline counts the node's live tasks)."""
    return (
        touched.everything
        or touched.services
        or touched.service_tasks
        or touched.nodes
        or bool(touched.task_nodes)
    )


def overdue_drains(deadlines: tuple[tuple[str, float], ...], now: float) -> list[str]:
    """Nodes whose drain deadline passed with tasks still on them: ``FinishDrain`` stops those."""
    return sorted(node_id for node_id, deadline in deadlines if now >= deadline)


def command_for(service: Service, decision: Decision, at: float) -> fsm_commands.Command | None:
    """The FSM command that carries out ``decision`` (None: nothing to do)."""
    if isinstance(decision, Rollback):
        return fsm_commands.RollbackService(
            name=service.name,
            reason=decision.reason,
            automatic=True,
            expected_version=service.version,
            at=at,
        )
    if isinstance(decision, Step):
        return fsm_commands.ServiceStep(
            name=service.name,
            expected_version=service.version,
            add=list(decision.add),
            drain=list(decision.drain),
            stop=list(decision.stop),
            status=decision.status,
            at=at,
        )
    return None


def describe(decision: Decision) -> str:
    if isinstance(decision, Rollback):
        return f"rolling back: {decision.reason}"
    if isinstance(decision, Step):
        parts = []
        if decision.add:
            parts.append("adding " + ", ".join(t.name for t in decision.add))
        if decision.drain:
            parts.append(f"draining {len(decision.drain)}")
        if decision.stop:
            parts.append(f"stopping {len(decision.stop)}")
        if decision.status is not None:
            parts.append(f"update {decision.status.state}")
        return "; ".join(parts)
    return "nothing to do"


@dataclass(frozen=True, slots=True)
class _Input:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Committed:
    service: str
    outcome: Outcome


def _new_id() -> str:
    return uuid.uuid4().hex


class ServiceActor(NodeActor):
    wants_state = staticmethod(service_controller_concerned)  # RaftListeners tells it only these,
    leader_only = True  # and only on the leader

    def __init__(
        self,
        raft: pykka.ActorRef,
        request_timeout: float,
        on_fatal: FatalHandler,
        drain_delay: float = DEFAULT_DRAIN_DELAY,
    ) -> None:
        super().__init__(on_fatal)
        self.raft = raft
        self.timeout = request_timeout
        self.settings = Settings(drain_delay=drain_delay)
        self._leader = False
        self._in_flight = 0  # proposals of this round not yet answered (-1: reading)
        self._dirty = False  # something changed while a round was in flight
        # With no service and no drain the rounds have nothing to time: ticks slow to IDLE_TICK_S
        # (a change still starts a round at once, through StateChanged or LeadershipChanged).
        self._idle = False
        self._slow = False  # the ticker was asked for the next tick IDLE_TICK_S away
        self._tick_gate: TickGate | None = None
        self._not_before = 0.0  # monotonic: no round starts before (ROUND_GAP_FACTOR)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(now, gate):
                if gate is not None:
                    gate.release()
                    self._tick_gate = gate
                    self._slow = self._idle or not self._leader
                    if self._slow:
                        gate.tick_at(now + IDLE_TICK_S)
                self._round()
            case StateChanged(touched) if service_controller_concerned(touched):
                self._round()
            case StateChanged():
                pass  # no service, no service's task, no node record, no task on a node
            case LeadershipChanged(is_leader, _):
                self._leader = is_leader
                self._round()
            case _Input(outcome):
                self._decide(outcome)
            case _Committed(name, outcome):
                self._committed(name, outcome)
        return None

    def _round(self) -> None:
        if not self._leader:
            return
        if self._in_flight:
            self._dirty = True
            return
        if self._tick_gate is not None and time.monotonic() < self._not_before:
            self._tick_gate.tick_at(self._not_before)  # that tick runs the round
            return
        self._in_flight = -1
        self._dirty = False
        self.raft.tell(Read(controller_input, self.answer(_Input), stale=False, timeout=self.timeout))

    def _decide(self, outcome: Outcome) -> None:
        data: ControllerInput | None = outcome.value if outcome.ok else None
        self._in_flight = 0
        if data is None:
            if not outcome.ok and outcome.code != ErrorCode.NOT_LEADER:
                logger.warning("services: read failed: {} {}", outcome.code, outcome.message)
            self._finish()
            return
        self._idle = not data.services and not data.drain_deadlines
        if self._slow and not self._idle and self._tick_gate is not None:
            self._slow = False
            self._tick_gate.tick_at(time.monotonic())  # back to the controller's interval now
        now, started = time.time(), time.monotonic()
        for service, tasks in data.services:
            decision = decide(
                service,
                tasks,
                now,
                _new_id,
                down_nodes=data.down_nodes,
                draining_nodes=data.draining_nodes,
                settings=self.settings,
            )
            command = command_for(service, decision, now)
            if command is None:
                continue
            logger.info("service {}: {}", service.name, describe(decision))
            self._in_flight += 1
            name = service.name
            self.raft.tell(
                Propose(
                    fsm_commands.encode_command(command),
                    self.answer(lambda o, name=name: _Committed(name, o)),
                    timeout=self.timeout,
                )
            )
        ended = time.monotonic()
        self._not_before = ended + min(ROUND_GAP_MAX_S, ROUND_GAP_FACTOR * (ended - started))
        for node_id in overdue_drains(data.drain_deadlines, now):
            logger.info("node {}: drain deadline passed, stopping what is left there", node_id)
            self._in_flight += 1
            label = f"drain of {node_id}"
            self.raft.tell(
                Propose(
                    fsm_commands.encode_command(fsm_commands.FinishDrain(node_id=node_id, at=now)),
                    self.answer(lambda o, label=label: _Committed(label, o)),
                    timeout=self.timeout,
                )
            )
        if not self._in_flight:
            self._finish()

    def _committed(self, name: str, outcome: Outcome) -> None:
        if not outcome.ok:
            if outcome.code == ErrorCode.CONFLICT:
                # A user changed the service since the round read it: look again at once.
                logger.debug("service {}: step not applied: {}", name, outcome.message)
                self._dirty = True
            else:
                logger.warning("service {}: step not applied: {} {}", name, outcome.code, outcome.message)
        self._in_flight -= 1
        if self._in_flight <= 0:
            self._finish()

    def _finish(self) -> None:
        self._in_flight = 0
        if self._dirty:
            self._round()
