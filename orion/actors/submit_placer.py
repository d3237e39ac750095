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
older term may never be applied). The Judge's clock is the command's own timestamp.

A task that binds no host port (most do not) is placed on a fleet kept between submits
(``KeptFleet``): rebuilding a view of every node per task cost 5 ms at 1,000 nodes, 50 s of
the leader's CPU for a burst of 10,000. The kept fleet is shuffled once (seeded by the applied
index when it is built) and its Nomad walk goes on from task to task, as the Judge's does
within a batch (in a small fleet scored whole, the tie-break moves on a node per task, so equal
nodes take turns rather than one taking every task that asks for nothing); only the nodes an
applied entry touched (their tasks, as the FSM stores them) or whose record changed are looked
at again. A task with host ports is judged on a fresh view
of every node with its claims, seeded by the applied index, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec
from loguru import logger

from orion.actors.scheduler_actor import EXACT_BELOW, node_view
from orion.cluster.worker_feed import task_nodes
from orion.fsm.commands import SubmitTask, decode_command, encode_command
from orion.fsm.state import ClusterState
from orion.fsm.tables import NodeRecord
from orion.model import PortClaim, Task
from orion.scheduler.feasible import explain
from orion.scheduler.fleet import Fleet, SelectorKey, selector_key
from orion.scheduler.judge import nomad_limit, schedule
from orion.scheduler.ports import DEFAULT_DYNAMIC_PORTS
from orion.scheduler.rank import NONE, pick_exact, pick_limited
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
        self.kept: KeptFleet | None = None
        self._touched: set[str] = set()  # nodes whose tasks changed since the kept fleet last looked
        # Told of every task version the FSM stores (after whoever listened before: the feed host).
        previous = fsm.events.on_task

        def on_task(index: int, old: Task | None, new: Task | None) -> None:
            if previous is not None:
                previous(index, old, new)
            self._touched.update(task_nodes(old, new))

        fsm.events.on_task = on_task

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
        if task.port_bindings:
            node_id, host_ports, reason = self._place_with_ports(task, command.at)
        else:
            node_id, reason = self._kept_fleet().place(task, self.strategy)
            host_ports = {}
        if not node_id:
            # Judged on the applied state alone when nothing is in flight: if this entry comes
            # right after it, the state machine takes the reason as final (no scheduler entry).
            judged_at = 0 if self.in_flight else self.fsm.applied_index
            return msgspec.structs.replace(command, reason=reason, judged_at=judged_at)
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
        if host_ports:
            self._touched.add(node_id)  # judged on views of its own: the kept fleet looks again
        return msgspec.structs.replace(command, node_id=node_id, host_ports=host_ports)

    def _place_with_ports(self, task: Task, now: float) -> tuple[str, dict[str, int], str]:
        """(node, host ports, "") or ("", {}, why not), judged on every node with its claims."""
        views = self._views()
        limit = None if len(views) < EXACT_BELOW else nomad_limit(len(views))
        plan = schedule(
            views,
            [task],
            self.strategy,
            self.fsm.applied_index,
            limit,
            now=now,
            dynamic_ports=self.dynamic_ports,
        )
        if not plan.assignments:
            return "", {}, plan.pending_reasons.get(task.id, "")
        return plan.assignments[0][1], plan.host_ports.get(task.id, {}), ""

    def _kept_fleet(self) -> KeptFleet:
        """The kept fleet, brought up to date: rebuilt when the term or the set of nodes
        changed; otherwise only the nodes touched since, and those whose record changed, are
        seen again."""
        fsm = self.fsm
        records = fsm.nodes()
        kept = self.kept
        if kept is None or len(records) != len(kept.records):
            return self._rebuild(records)
        touched = self._touched
        for record, seen in zip(records, kept.records, strict=True):
            if record is not seen:
                if record.id != seen.id:
                    return self._rebuild(records)  # one node left and another came meanwhile
                touched.add(record.id)
        kept.records = records
        if touched:
            in_flight = self._in_flight_by_node()
            for node_id in touched:
                record = fsm.node(node_id)
                if record is not None:
                    kept.set_node(self._view(record, in_flight))
            touched.clear()
        return kept

    def _rebuild(self, records: list[NodeRecord]) -> KeptFleet:
        self._touched.clear()
        in_flight = self._in_flight_by_node()
        fleet = Fleet([self._view(record, in_flight) for record in records], self.fsm.applied_index)
        self.kept = KeptFleet(records, fleet)
        return self.kept

    def _in_flight_by_node(self) -> dict[str, list[InFlight]]:
        by_node: dict[str, list[InFlight]] = {}
        for placed in self.in_flight.values():
            by_node.setdefault(placed.node_id, []).append(placed)
        return by_node

    def _view(self, record: NodeRecord, in_flight: dict[str, list[InFlight]]) -> NodeView:
        """A node as the kept fleet reads it: the FSM's allocations plus the placements in
        flight there (``in_flight``: by node); no port claims (it serves tasks that bind none)."""
        view = node_view(self.fsm, record, with_ports=False)
        return with_placements(view, in_flight.get(record.id, ()), with_ports=False)

    def _forget_applied(self) -> None:
        term = self._term()
        if term != self._placed_term:
            self._placed_term = term
            self.in_flight.clear()
            self.kept = None
            return
        if not self.in_flight:
            return
        applied = self.fsm.applied_index
        done = [task_id for task_id, placed in self.in_flight.items() if placed.index <= applied]
        for task_id in done:
            # Its entry may have been refused (the node died or filled up): look at the node again.
            self._touched.add(self.in_flight.pop(task_id).node_id)

    def _views(self) -> list[NodeView]:
        """Every node as the FSM has it, less what the placements in flight take."""
        fsm = self.fsm
        in_flight = self._in_flight_by_node()
        return [
            with_placements(node_view(fsm, record), in_flight.get(record.id, ()), with_ports=True)
            for record in fsm.nodes()
        ]


def with_placements(view: NodeView, placements: Sequence[InFlight], *, with_ports: bool) -> NodeView:
    """``view`` less what ``placements`` in flight on its node take (their port claims too,
    ``with_ports``)."""
    if not placements:
        return view
    return msgspec.structs.replace(
        view,
        allocated_memory=view.allocated_memory + sum(p.memory for p in placements),
        allocated_cpu=view.allocated_cpu + sum(p.cpu for p in placements),
        allocated_disk=view.allocated_disk + sum(p.disk for p in placements),
        ports=view.ports + tuple(claim for p in placements for claim in p.ports)
        if with_ports
        else view.ports,
    )


class KeptFleet:
    """The Judge's fleet kept between submits: ``records`` are the FSM's node records it was
    last brought up to date with; ``place`` places one task that binds no host port, debiting
    the node at once (the placement is then in flight until the FSM applies it)."""

    def __init__(self, records: list[NodeRecord], fleet: Fleet) -> None:
        self.records = records
        self.fleet = fleet
        self._position = {node_id: index for index, node_id in enumerate(fleet.ids)}
        self._walk: dict[SelectorKey, int] = {}  # where the next task's Nomad walk begins
        self._turn = 0  # where the next exact pick's tie-break begins
        self._limit = None if len(fleet) < EXACT_BELOW else nomad_limit(len(fleet))
        # Why no node fits, by selectors, for tasks that no usable node's tags match: with no
        # candidate, ``explain`` reads only the fleet's counts (nodes rejected by selectors, by
        # health), not the task's resources, so the reason holds until a node changes. A burst
        # of such submits formatted the same reason for each (~a third of placing one).
        self._unmatched: dict[SelectorKey, str] = {}

    def set_node(self, view: NodeView) -> None:
        self.fleet.set_node(self._position[view.id], view)
        self._unmatched.clear()

    def place(self, task: Task, strategy: str) -> tuple[str, str]:
        """(node id, "") or ("", why no node fits), as the Judge decides for one task alone."""
        fleet = self.fleet
        selectors = selector_key(task)
        candidates = fleet.candidates(selectors)
        if self._limit is None:
            best = pick_exact(
                fleet, candidates, task, strategy, self._turn % len(candidates) if candidates else 0
            )
            self._turn += 1
        else:
            best, self._walk[selectors] = pick_limited(
                fleet, candidates, task, strategy, self._limit, self._walk.get(selectors, 0)
            )
        if best == NONE:
            if candidates:
                return "", explain(fleet, task)
            reason = self._unmatched.get(selectors)
            if reason is None:
                reason = self._unmatched[selectors] = explain(fleet, task)
            return "", reason
        fleet.place(best, task)
        return fleet.ids[best], ""
