"""The Judge's shell: on the leader, reads pending tasks and nodes from the FSM, runs the
pure scheduler, and commits the plan through Raft.

One round is in flight at a time, so a round never plans on capacity that an earlier, not yet
applied, plan already took. A round judges the tasks that became Pending since they were last
judged ("fresh"); tasks already found unplaceable are judged again only when some node's free
capacity grew (a task ended, a node joined or came back), in windows of ``BATCH`` tasks, so a
backlog of impossible tasks neither starves new ones nor keeps the leader busy.

The same leader-only tick collects garbage: every ``gc_interval`` it asks the FSM whether a
Stopped or Failed task is older than the retention and, if so, proposes ``CollectGarbage``
with its clock minus the retention (the FSM reads no clock), at most ``gc_batch`` tasks per
command so one apply stays short on every replica (after a full batch the next tick goes on).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import LeadershipChanged, Outcome, Propose, Read, StateChanged, Tick
from orion.actors.state_view import StateView
from orion.fsm import commands as fsm_commands
from orion.fsm.state import ClusterState, TaskIds
from orion.fsm.tables import NodeRecord
from orion.fsm.touched import Touched
from orion.model import NodeStatus, Task
from orion.scheduler.judge import nomad_limit, schedule
from orion.scheduler.ports import DEFAULT_DYNAMIC_PORTS, PortMarks
from orion.scheduler.types import NodeView, ServiceLayout
from orion.scheduler.volumes import VolumeView
from orion.services.layout import service_layout

BATCH = 512  # tasks judged per round
EXACT_BELOW = 64  # score every node in small clusters; sample (Nomad's limit) in large ones
DEFAULT_TASK_RETENTION_S = 3600.0  # [scheduler] task_retention
GC_INTERVAL_S = 60.0  # how often the leader looks for terminal tasks past the retention
# Tasks removed per CollectGarbage: one apply on every replica's Raft thread then takes about
# 10-30 ms (30 us a task at 100k tasks, tools/bench/snapshot.py's state); a full batch goes on
# at the next tick (1 s), so up to 1000 terminal tasks a second are collected.
GC_BATCH = 1000

Capacity = dict[str, tuple[int, float, int]]  # node id -> free memory, cpu, disk of alive nodes


@dataclass(frozen=True, slots=True)
class _Input:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Committed:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _GarbageFound:
    outcome: Outcome  # value: True when some terminal task is older than ``before``
    before: float


@dataclass(frozen=True, slots=True)
class _GarbageCollected:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class SchedulingInput:
    nodes: list[NodeView]
    tasks: list[Task]  # fresh tasks, then the sweep window (if sweeping)
    fresh_count: int  # how many of ``tasks`` are fresh
    fresh_left: bool  # more fresh tasks than fit in this round
    window_end: int  # where the next sweep window starts; -1: the sweep reached the end
    seed: int
    port_releases: int = 0  # the FSM's count of given-up port claims
    port_unblocks: tuple[float, ...] = ()  # when the foreign port blocks lapse
    services: dict[str, ServiceLayout] = field(default_factory=dict)  # of the services with tasks here
    volumes: dict[str, VolumeView] = field(default_factory=dict)  # mounted by the tasks here


def free_capacity(nodes: list[NodeView]) -> Capacity:
    return {
        n.id: (
            n.meta.memory_total - n.allocated_memory,
            n.meta.cpu_total - n.allocated_cpu,
            n.meta.disk_total - n.allocated_disk,
        )
        for n in nodes
        if n.status == NodeStatus.ALIVE and n.eligible
    }


def capacity_grew(before: Capacity, now: Capacity) -> bool:
    """True when some alive node has more of some resource free than at the last sweep, or a
    node became alive: only then can a task found unplaceable fit somewhere."""
    for node_id, free in now.items():
        old = before.get(node_id)
        if old is None or any(f > o + 1e-9 for f, o in zip(free, old, strict=True)):
            return True
    return False


def lowest(a: Capacity, b: Capacity) -> Capacity:
    """Per node and resource, the least free seen (a node absent from either is dropped: if
    it comes back, that is growth)."""
    return {
        node_id: tuple(min(x, y) for x, y in zip(a[node_id], b[node_id], strict=True))  # type: ignore[misc]
        for node_id in a.keys() & b.keys()
    }


def scheduling_input(sweep_from: int | None) -> Any:
    def query(view: StateView) -> SchedulingInput | None:
        if not view.is_leader:
            return None
        fsm = view.fsm
        fresh = fsm.fresh_pending(BATCH + 1)
        fresh_left = len(fresh) > BATCH
        tasks = list(fresh[:BATCH])
        window_end = -1
        if sweep_from is not None:
            window = fsm.pending_window(sweep_from, BATCH)
            seen = {task.id for task in tasks}
            tasks.extend(task for task in window if task.id not in seen)
            end = sweep_from + len(window)
            window_end = end if end < fsm.pending_count else -1
        nodes = [node_view(fsm, record) for record in fsm.nodes()]
        unblocks = [claim.until for node in nodes for claim in node.ports if claim.kind == "foreign"]
        services = {}
        for name in {task.service for task in tasks if task.service}:
            service = fsm.service(name)
            if service is not None:
                services[name] = service_layout(service, fsm.service_tasks(name))
        volumes = volume_views(fsm, tasks)
        return SchedulingInput(
            nodes,
            tasks,
            min(len(fresh), BATCH),
            fresh_left,
            window_end,
            view.raft().applied_index,
            fsm.port_releases,
            tuple(unblocks),
            services,
            volumes,
        )

    return query


def volume_views(fsm: ClusterState, tasks: list[Task]) -> dict[str, VolumeView]:
    """The volumes ``tasks`` mount, as the volume filter reads them (orion/scheduler/volumes.py)."""
    views = {}
    for name in {mount.volume for task in tasks for mount in task.volumes}:
        volume = fsm.volume(name)
        if volume is not None:
            writers = tuple(task.id for task in fsm.volume_writers(name))
            views[name] = VolumeView(name, volume.node_id, volume.state, volume.spec.access, writers)
    return views


def node_view(fsm: ClusterState, record: NodeRecord, *, with_ports: bool = True) -> NodeView:
    """A node as the Judge reads it: its record, and what the FSM already gives it (its port
    claims only ``with_ports``: a view for tasks that bind no host port need not gather them)."""
    memory, cpu, disk = fsm.allocated(record.id)
    return NodeView(
        record.id,
        record.status,
        record.meta,
        memory,
        cpu,
        disk,
        eligible=record.schedulable,  # ``orion node eligibility --disable`` or a drain
        draining=record.drain is not None,
        ports=tuple(fsm.port_claims(record.id)) if with_ports else (),
    )


def scheduler_concerned(touched: Touched, node_id: str = "") -> bool:
    """Whether a round may have work: Pending tasks wait for a first judgement, or capacity or
    ports may have been freed (a task changed on some node or gave up a port hold there, a node
    record changed: ``_plan`` then sweeps the unplaceable ones). Service and volume records
    count too (placement constraints; rare). A round with none of these judges nothing."""
    return (
        touched.everything
        or touched.fresh_pending
        or bool(touched.task_nodes)
        or touched.nodes
        or touched.services
        or touched.volumes
    )


def garbage_query(before: float) -> Callable[[StateView], bool]:
    def query(view: StateView) -> bool:
        return view.is_leader and view.fsm.has_garbage(before)

    return query


class SchedulerActor(NodeActor):
    wants_state = staticmethod(scheduler_concerned)  # RaftListeners tells it only these,
    leader_only = True  # and only on the leader

    def __init__(
        self,
        raft: pykka.ActorRef,
        strategy: str,
        request_timeout: float,
        on_fatal: FatalHandler,
        task_retention: float = DEFAULT_TASK_RETENTION_S,
        gc_interval: float = GC_INTERVAL_S,
        gc_batch: int = GC_BATCH,
        dynamic_ports: tuple[int, int] = DEFAULT_DYNAMIC_PORTS,
    ) -> None:
        super().__init__(on_fatal)
        self.raft = raft
        self.strategy = strategy
        self.timeout = request_timeout
        self.task_retention = task_retention
        self.gc_interval = gc_interval
        self.gc_batch = gc_batch
        self._gc_due = 0.0  # monotonic time of the next look for garbage (0: at the first tick)
        self._gc_busy = False  # a look or a CollectGarbage is in flight
        self._leader = False
        self._in_flight = False
        self._dirty = False
        self._sweep_from: int | None = 0  # a new leader judges every pending task once
        self._baseline: Capacity = {}  # free capacity every unplaceable task was judged against
        self._sweep_low: Capacity = {}
        # Ports freed since unplaceable tasks were judged also call for a sweep (ports.py).
        self.dynamic_ports = dynamic_ports
        self._port_baseline = PortMarks()
        self._sweep_ports = PortMarks()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(now, gate):
                if gate is not None:
                    gate.release()
                self._round()
                self._look_for_garbage(now)
            case StateChanged(touched) if scheduler_concerned(touched):
                self._round()
            case StateChanged():
                pass  # no task to judge and no capacity freed
            case LeadershipChanged(is_leader, _):
                if is_leader and not self._leader:
                    self._sweep_from = 0
                self._leader = is_leader
                self._round()
            case _Input(outcome):
                self._plan(outcome)
            case _Committed(outcome):
                self._in_flight = False
                if not outcome.ok:
                    logger.warning("scheduler: plan not committed: {} {}", outcome.code, outcome.message)
                if self._dirty:
                    self._round()
            case _GarbageFound(outcome, before):
                self._collect_garbage(outcome, before)
            case _GarbageCollected(outcome):
                self._garbage_collected(outcome)
        return None

    def _look_for_garbage(self, now: float) -> None:
        if not self._leader or self._gc_busy or now < self._gc_due:
            return
        self._gc_due = now + self.gc_interval
        self._gc_busy = True
        before = time.time() - self.task_retention
        self.raft.tell(
            Read(
                garbage_query(before),
                self.answer(lambda o: _GarbageFound(o, before)),
                stale=True,
                timeout=self.timeout,
            )
        )

    def _collect_garbage(self, found: Outcome, before: float) -> None:
        if not (found.ok and found.value):
            self._gc_busy = False  # nothing old enough (or no longer the leader)
            return
        command = fsm_commands.CollectGarbage(before=before, max_tasks=self.gc_batch, at=time.time())
        self.raft.tell(
            Propose(
                fsm_commands.encode_command(command),
                self.answer(_GarbageCollected),
                timeout=self.timeout,
            )
        )

    def _garbage_collected(self, outcome: Outcome) -> None:
        self._gc_busy = False
        if not outcome.ok:
            logger.warning(
                "scheduler: garbage collection not committed: {} {}", outcome.code, outcome.message
            )
            return
        # A proposal forwarded to a new leader comes back without the FSM's result.
        removed = len(outcome.value.task_ids) if isinstance(outcome.value, TaskIds) else 0
        logger.info("scheduler: removed {} terminal task(s) older than {:g}s", removed, self.task_retention)
        if removed >= self.gc_batch:
            self._gc_due = 0.0  # more are due: go on at the next tick

    def _round(self) -> None:
        if not self._leader:
            return
        if self._in_flight:
            self._dirty = True
            return
        self._in_flight = True
        self._dirty = False
        self.raft.tell(Read(scheduling_input(self._sweep_from), self.answer(_Input), stale=True))

    def _plan(self, outcome: Outcome) -> None:
        data: SchedulingInput | None = outcome.value if outcome.ok else None
        if data is None:
            self._finish_round(again=False)
            return
        capacity = free_capacity(data.nodes)
        wall = time.time()
        ports = PortMarks.read(data.port_releases, data.port_unblocks, wall)
        window_ids: set[str] = set()
        if self._sweep_from is not None:  # this round carried a sweep window
            window_ids = {task.id for task in data.tasks[data.fresh_count :]}
            self._sweep_low = capacity if self._sweep_from == 0 else lowest(self._sweep_low, capacity)
            self._sweep_ports = ports if self._sweep_from == 0 else self._sweep_ports.merge(ports)
            self._sweep_from = None if data.window_end < 0 else data.window_end
            if self._sweep_from is None:
                self._baseline = self._sweep_low
                self._port_baseline = self._sweep_ports
        elif capacity_grew(self._baseline, capacity) or self._port_baseline.freed_since(ports, wall):
            self._sweep_from = 0  # judge the unplaceable ones again, from the next round on
        else:
            self._baseline = capacity  # placements only shrink it: follow it down
            self._port_baseline = self._port_baseline.merge(ports)
        again = data.fresh_left or self._sweep_from is not None
        if not data.tasks:
            self._finish_round(again)
            return
        limit = None if len(data.nodes) < EXACT_BELOW else nomad_limit(len(data.nodes))
        plan = schedule(
            data.nodes,
            data.tasks,
            self.strategy,
            data.seed,
            limit=limit,
            now=wall,
            dynamic_ports=self.dynamic_ports,
            services=data.services,
            volumes=data.volumes,
        )
        if self._sweep_from is not None:
            # Placed tasks leave the pending list, so the rest of it moved up.
            self._sweep_from -= sum(1 for task_id, _ in plan.assignments if task_id in window_ids)
        fresh = {task.id for task in data.tasks[: data.fresh_count]}
        current = {task.id: task.reason for task in data.tasks}
        by_reason: dict[str, list[str]] = {}
        for task_id, reason in plan.pending_reasons.items():
            # A fresh task is always marked (that is what makes it no longer fresh); an old
            # one only when its reason changed.
            if task_id in fresh or reason != current.get(task_id):
                by_reason.setdefault(reason, []).append(task_id)
        now = time.time()
        commands: list[Any] = []
        if plan.assignments:
            logger.info("scheduler: placing {} task(s)", len(plan.assignments))
            commands.append(
                fsm_commands.AssignTasks(
                    assignments=list(plan.assignments), host_ports=dict(plan.host_ports), at=now
                )
            )
        # SetPending also marks the tasks as judged, so they leave the fresh set even when
        # their reason did not change.
        commands.extend(
            fsm_commands.SetPending(task_ids=ids, reason=reason, at=now) for reason, ids in by_reason.items()
        )
        if not commands:
            self._finish_round(again)
            return
        if again:
            self._dirty = True
        # The round ends when the last command is applied (Raft applies them in order).
        for position, command in enumerate(commands):
            last = position == len(commands) - 1
            callback = self.answer(_Committed) if last else None
            self.raft.tell(Propose(fsm_commands.encode_command(command), callback, timeout=self.timeout))

    def _finish_round(self, again: bool) -> None:
        self._in_flight = False
        if again or self._dirty:
            self._round()
