"""The leader places a task when it proposes the submit: one Raft entry per submit.

The leader's request path hands every write it is about to append to ``SubmitPlacer.prepare``
(on the Raft actor's thread, where the FSM lives). A ``SubmitTask`` of a new task leaves it
carrying the Judge's decision: the node and host ports, or why no node fits. The decision is
data in the entry, so every replica applies the same thing and replay needs no scheduler; the
state machine only checks that the placement still holds when the entry is applied (the node
may have died or filled up meanwhile) and otherwise leaves the task Pending for the scheduler,
which keeps re-placement (Pending tasks, dead nodes' tasks) and service tasks.

Placements proposed but not yet applied are debited here ("in flight"), so concurrent submits
do not all pick the same last free slot; each is forgotten once the FSM has applied its entry
(it is then in the FSM's allocations, or Pending) or when the term changes (an entry of an
older term may never be applied). The Judge runs with the applied index as its seed and the
command's own timestamp as its clock: the same state and in-flight set give the same decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from loguru import logger

from orion.actors.scheduler_actor import EXACT_BELOW, node_view
from orion.fsm.commands import SubmitTask, decode_command, encode_command
from orion.fsm.state import ClusterState
from orion.model import PortClaim
from orion.scheduler.judge import nomad_limit, schedule
from orion.scheduler.ports import DEFAULT_DYNAMIC_PORTS
from orion.scheduler.types import NodeView

_SUBMIT_TAG = b"\xa6submit"  # the tag of a SubmitTask, as msgpack writes it near the start of the entry


@dataclass(frozen=True, slots=True)
class InFlight:
    """A placement proposed at log ``index`` and not yet applied."""

    index: int
    node_id: str
    memory: int
    cpu: float
    disk: int
    ports: tuple[PortClaim, ...]


class SubmitPlacer:
    """``next_index()``: the log index the next proposal gets; ``term()``: the current term."""

    def __init__(
        self,
        fsm: ClusterState,
        *,
        strategy: str,
        next_index: Callable[[], int],
        term: Callable[[], int],
        dynamic_ports: tuple[int, int] = DEFAULT_DYNAMIC_PORTS,
    ) -> None:
        self.fsm = fsm
        self.strategy = strategy
        self.dynamic_ports = dynamic_ports
        self._next_index = next_index
        self._term = term
        self._placed_term = -1
        self.in_flight: dict[str, InFlight] = {}  # task id -> its placement, in proposal order

    def prepare(self, data: bytes) -> bytes:
        """``data`` as the leader appends it: a new task's SubmitTask with the Judge's decision
        in it; any other write unchanged. Never fails the write: a placement it cannot make is
        left to the scheduler."""
        if _SUBMIT_TAG not in data[:64]:
            return data
        try:
            command = decode_command(data)
        except (msgspec.DecodeError, ValueError):
            return data  # the state machine refuses it with the reason
        if not isinstance(command, SubmitTask) or command.node_id or command.reason or command.task.service:
            return data
        if self.fsm.task(command.task.id) is not None:
            return data  # a retried submit: the FSM answers with the task it has
        try:
            return encode_command(self._place(command))
        except Exception:  # a bad task the state machine will refuse, or a bug: the scheduler places it
            logger.exception("placing task {} at submit failed; the scheduler will", command.task.id)
            return data

    def _place(self, command: SubmitTask) -> SubmitTask:
        if command.task.volumes:
            return command  # the volume filter needs the volumes table: the scheduler places it
        self._forget_applied()
        task = command.task
        views = self._views()
        limit = None if len(views) < EXACT_BELOW else nomad_limit(len(views))
        plan = schedule(
            views,
            [task],
            self.strategy,
            self.fsm.applied_index,
            limit,
            now=command.at,
            dynamic_ports=self.dynamic_ports,
        )
        if not plan.assignments:
            # Judged on the applied state alone when nothing is in flight: if this entry comes
            # right after it, the state machine takes the reason as final (no scheduler entry).
            judged_at = 0 if self.in_flight else self.fsm.applied_index
            reason = plan.pending_reasons.get(task.id, "")
            return msgspec.structs.replace(command, reason=reason, judged_at=judged_at)
        node_id = plan.assignments[0][1]
        host_ports = plan.host_ports.get(task.id, {})
        record = self.fsm.node(node_id)
        host_ip = record.meta.host_ip if record is not None else ""
        claims = tuple(
            PortClaim(
                host_ip=host_ip,
                port=port,
                protocol=container_port.partition("/")[2] or "tcp",
                node_id=node_id,
                task_id=task.id,
            )
            for container_port, port in host_ports.items()
        )
        self.in_flight[task.id] = InFlight(
            self._next_index(), node_id, task.memory, task.cpu, task.disk, claims
        )
        return msgspec.structs.replace(command, node_id=node_id, host_ports=host_ports)

    def _forget_applied(self) -> None:
        term = self._term()
        if term != self._placed_term:
            self._placed_term = term
            self.in_flight.clear()
            return
        applied = self.fsm.applied_index
        done = [task_id for task_id, placed in self.in_flight.items() if placed.index <= applied]
        for task_id in done:
            del self.in_flight[task_id]

    def _views(self) -> list[NodeView]:
        """Every node as the FSM has it, less what the placements in flight take."""
        fsm = self.fsm
        views = [node_view(fsm, record) for record in fsm.nodes()]
        if not self.in_flight:
            return views
        taken: dict[str, list[InFlight]] = {}
        for placed in self.in_flight.values():
            taken.setdefault(placed.node_id, []).append(placed)
        for position, view in enumerate(views):
            placements = taken.get(view.id)
            if placements:
                views[position] = msgspec.structs.replace(
                    view,
                    allocated_memory=view.allocated_memory + sum(p.memory for p in placements),
                    allocated_cpu=view.allocated_cpu + sum(p.cpu for p in placements),
                    allocated_disk=view.allocated_disk + sum(p.disk for p in placements),
                    ports=view.ports + tuple(claim for p in placements for claim in p.ports),
                )
        return views
