"""The ingress's shell: keeps this node's HAProxy routing what the FSM says.

When the FSM changes, it reads the routing table (orion/ingress/routing.py) through the Raft
actor's StateView and, if it differs from what was last applied, brings HAProxy to it: started
when the first published port appears, reloaded when the set of published ports changes,
stopped when none is left, and between those changed only through the runtime API. Every tick
it checks that HAProxy still runs (restarting it, at most once per RESTART_BACKOFF_S) and that
its servers still match the table (a restarted or tampered-with process is brought back).

A node without the haproxy binary logs one error and says so in ``status()``; it never fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import Outcome, Read, StateChanged, Tick, TickGate
from orion.actors.state_view import StateView
from orion.fsm.touched import Touched
from orion.ingress.haproxy_config import HAProxyTuning, render_config
from orion.ingress.routing import RoutingTable, plan_changes, routing_table
from orion.ingress.runtime_api import RuntimeApiError
from orion.ingress.supervisor import HAProxySupervisor, IngressError, find_haproxy

TICK_S = 1.0  # how often HAProxy is checked against the table
RESTART_BACKOFF_S = 5.0  # between starts of an HAProxy that keeps dying
STOP_TIMEOUT_S = 2.0  # a stopping node gives the ingress's connections this long to finish


@dataclass(frozen=True, slots=True)
class IngressSettings:
    address: str  # where the published ports listen
    run_dir: Path  # HAProxy's configuration, pid file, log and sockets
    haproxy: str = "haproxy"
    tuning: HAProxyTuning = field(default_factory=HAProxyTuning)


@dataclass(frozen=True, slots=True)
class IngressStatus:
    running: bool
    ports: list[int]  # published ports routed
    error: str = ""  # why the ingress does not route what it should ("" = it does)


@dataclass(frozen=True, slots=True)
class _Table:
    outcome: Outcome


def read_routing_table(view: StateView) -> RoutingTable:
    fsm = view.fsm

    def address(node_id: str) -> str:
        record = fsm.node(node_id)
        return record.meta.address if record is not None else ""

    return routing_table(fsm.services(), fsm.service_tasks, address)


def ingress_concerned(touched: Touched, node_id: str = "") -> bool:
    """Whether ``read_routing_table`` may differ: services, their tasks, node records (addresses)."""
    return touched.everything or touched.services or touched.service_tasks or touched.nodes


class IngressActor(NodeActor):
    wants_state = staticmethod(ingress_concerned)  # RaftListeners tells it only these

    def __init__(
        self,
        raft: pykka.ActorRef,
        settings: IngressSettings,
        on_fatal: FatalHandler,
        request_timeout: float = 5.0,
    ) -> None:
        super().__init__(on_fatal)
        self.raft = raft
        self.settings = settings
        self.timeout = request_timeout
        self.supervisor = HAProxySupervisor(settings.haproxy, settings.run_dir)
        self._reading = False
        self._dirty = False
        self._table: RoutingTable | None = None  # as last read
        self._applied: RoutingTable | None = None  # what HAProxy was last brought to
        self._error = ""
        self._started_at = -RESTART_BACKOFF_S
        # With no published port a tick has nothing to check: the ticker is asked for none
        # until a table with ports is read (two wakeups a second less on most nodes).
        self._tick_gate: TickGate | None = None
        self._ticks_paused = False

    # ------------------------------------------------------------------ pykka
    def on_start(self) -> None:
        self._read()

    def on_stop(self) -> None:
        self.supervisor.stop(STOP_TIMEOUT_S)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                    self._tick_gate = gate
                    if not self._table:
                        self._ticks_paused = True
                        gate.tick_at(float("inf"))
                self._check()
            case StateChanged(touched) if ingress_concerned(touched):
                self._read()
            case StateChanged():
                pass  # the routing table reads services, their tasks and node addresses only
            case _Table(outcome):
                self._reading = False
                if outcome.ok:
                    self._table = outcome.value
                    if self._table != self._applied:
                        self._apply(self._table)
                    if self._table and self._ticks_paused and self._tick_gate is not None:
                        self._ticks_paused = False
                        self._tick_gate.tick_at(time.monotonic())  # checked every TICK_S again
                else:
                    logger.debug("ingress: cannot read the routing table: {}", outcome.message)
                if self._dirty:
                    self._read()
        return None

    def status(self) -> IngressStatus:
        return IngressStatus(self.supervisor.running(), sorted(self._applied or {}), self._error)

    # ------------------------------------------------------------------ rounds
    def _read(self) -> None:
        if self._reading:
            self._dirty = True
            return
        self._reading = True
        self._dirty = False
        self.raft.tell(Read(read_routing_table, self.answer(_Table), stale=True, timeout=self.timeout))

    def _check(self) -> None:
        """HAProxy still runs and routes the table: else start it again, or correct it."""
        if not self._table:
            return
        if self._applied is not None and not self.supervisor.running():
            status = self.supervisor.exit_status()
            logger.error(
                "ingress: HAProxy exited (status {}); starting it again: {}",
                status,
                self.supervisor.log_tail(),
            )
            self._applied = None
        self._apply(self._table)

    def _apply(self, table: RoutingTable) -> None:
        supervisor = self.supervisor
        if not table:
            if supervisor.running():
                logger.info("ingress: no published port left: stopping HAProxy")
                supervisor.stop()
            self._applied, self._error = table, ""
            return
        try:
            if not supervisor.running():
                if find_haproxy(self.settings.haproxy) is None:
                    self._fail(
                        f"services publish ports {sorted(table)} but [ingress] haproxy = "
                        f"{self.settings.haproxy!r} is not installed: this node routes none of them"
                    )
                    return
                if time.monotonic() - self._started_at < RESTART_BACKOFF_S:
                    return  # the next tick tries again
                self._started_at = time.monotonic()
                supervisor.start(self._config(table))
                logger.info("ingress: listening on {} ports {}", self.settings.address, sorted(table))
            changes = plan_changes(table, supervisor.runtime.servers())
            if changes.needs_reload:
                supervisor.reload(self._config(table))
                logger.info("ingress: listening on {} ports {}", self.settings.address, sorted(table))
                changes = plan_changes(table, supervisor.runtime.servers())
            for command in changes.commands:
                supervisor.runtime.apply(command)
            if changes.commands:
                logger.debug("ingress: {}", "; ".join(changes.commands))
        except (IngressError, RuntimeApiError, OSError) as exc:
            self._fail(str(exc))
            return
        if self._error:
            logger.info("ingress: routing again ({} resolved)", self._error[:80])
        self._applied, self._error = table, ""

    def _config(self, table: RoutingTable) -> str:
        return render_config(self.settings.address, self.supervisor.admin_socket, table, self.settings.tuning)

    def _fail(self, reason: str) -> None:
        if reason != self._error:
            logger.error("ingress: {}", reason)  # once per distinct reason; retried every tick
        self._error = reason
        self._applied = None
