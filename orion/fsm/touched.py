"""What a burst of applied entries touched, so the node's actors wake only for what concerns them.

The Raft actor tells ``StateChanged`` to the node's level-triggered loops (reconciler, health,
scheduler, service controller, network, ingress) after each burst of applied entries. Each
loop reads only part of the state; ``Touched`` says which parts may have changed, and each
loop wakes when it overlaps what it reads.

Sources, all deterministic and all on the Raft thread:
- the command's type (``RECORD_KINDS``): which non-task records (nodes, services, network,
  volumes) it may change. A type missing from the table, or data that does not decode, touched
  ``everything``;
- every task version the state stores or removes (``EventRecorder.on_task``, called for every
  task change of ``put_task``/``delete_task``, the only two ways tasks change while an entry
  applies): the nodes of the task before and after and of its port holds, and whether it is a
  service's;
- a snapshot installed, or a worker's fed state dropped before its first entry: ``everything``.

Missing a wake-up is a liveness bug (a loop sits until its next tick), so every doubt resolves
to "touched": a flag may be set for a command that changed nothing (a refused one), never the
other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, get_args

import msgspec

from orion.fsm import commands as c
from orion.model import NodeStatus, Task

if TYPE_CHECKING:
    from orion.fsm.state import ClusterState


@dataclass(frozen=True, slots=True)
class Touched:
    """What applied entries may have changed. ``everything``: anything (a loop must look)."""

    everything: bool = False
    tasks: bool = False  # some task was created, changed or removed
    nodes: bool = False  # node records: status, meta, drain, eligibility, subnet
    services: bool = False  # service records
    network: bool = False  # subnets, overlay addresses
    volumes: bool = False  # volume records
    # Nodes whose task list or port holds changed (a task's node before or after, a hold's node).
    task_nodes: frozenset[str] = frozenset()
    # Those of ``task_nodes`` that were not alive (or not known) once the entries were applied.
    gone_nodes: frozenset[str] = frozenset()
    service_tasks: bool = False  # a task of some service was created, changed or removed
    # After the entries, some Pending task waits for the scheduler's first judgement (a state
    # observation, not a change: the scheduler's round only has work then or when capacity grew).
    fresh_pending: bool = False

    def concerns_node(self, node_id: str) -> bool:
        """``node_id``'s tasks or port holds may have changed."""
        return self.everything or node_id in self.task_nodes

    def union(self, other: Touched) -> Touched:
        """Touched by either (a coalesced wake-up covers both)."""
        return Touched(
            everything=self.everything or other.everything,
            tasks=self.tasks or other.tasks,
            nodes=self.nodes or other.nodes,
            services=self.services or other.services,
            network=self.network or other.network,
            volumes=self.volumes or other.volumes,
            task_nodes=self.task_nodes | other.task_nodes,
            gone_nodes=self.gone_nodes | other.gone_nodes,
            service_tasks=self.service_tasks or other.service_tasks,
            fresh_pending=self.fresh_pending or other.fresh_pending,
        )


EVERYTHING = Touched(everything=True)
NOTHING = Touched()

NODES = "nodes"
SERVICES = "services"
NETWORK = "network"
VOLUMES = "volumes"
EVERYTHING_KIND = "everything"

# Which records besides tasks each command may change (its tasks are seen as they are stored).
# Every command type of ``orion.fsm.commands.Command`` is here (tests/fsm/test_touched.py checks).
RECORD_KINDS: dict[type, frozenset[str]] = {
    c.SubmitTask: frozenset(),
    c.StopTask: frozenset(),
    c.AssignTasks: frozenset(),
    c.SetPending: frozenset(),
    c.ReportTaskState: frozenset(),
    c.ReportTaskStates: frozenset(),
    c.RescheduleNodeTasks: frozenset(),
    c.UpsertNode: frozenset({NODES}),
    c.SetNodeStatus: frozenset({NODES}),
    c.RemoveNode: frozenset({NODES, NETWORK}),  # its subnet goes with its record
    c.DrainNode: frozenset({NODES}),
    c.SetNodeEligibility: frozenset({NODES}),
    c.FinishDrain: frozenset({NODES}),  # only stops tasks; a drain's end is worth a look anyway
    c.RemoveTask: frozenset(),
    c.CollectGarbage: frozenset(),
    c.PortConflict: frozenset(),  # the foreign block is a port hold on the task
    c.ReleasePorts: frozenset(),  # port holds live on the tasks
    c.CreateService: frozenset({SERVICES}),
    c.UpdateService: frozenset({SERVICES}),
    c.ScaleService: frozenset({SERVICES}),
    c.RollbackService: frozenset({SERVICES}),
    c.PauseServiceUpdate: frozenset({SERVICES}),
    c.ResumeServiceUpdate: frozenset({SERVICES}),
    c.RemoveService: frozenset({SERVICES}),
    c.ServiceStep: frozenset({SERVICES}),
    c.ReportHealth: frozenset(),  # a task's health only
    c.CreateVolume: frozenset({VOLUMES}),
    c.RemoveVolume: frozenset({VOLUMES}),
    c.ReportVolume: frozenset({VOLUMES}),
    c.PurgeVolume: frozenset({VOLUMES}),
    c.AllocateSubnet: frozenset({NODES, NETWORK}),
    c.ReleaseSubnet: frozenset({NODES, NETWORK}),
    c.ReportOverlayAddress: frozenset({NETWORK}),
}

COMMAND_TYPES: tuple[type, ...] = get_args(c.Command)
_BY_TAG: dict[str, frozenset[str]] = {
    str(cls.__struct_config__.tag): RECORD_KINDS.get(cls, frozenset({EVERYTHING_KIND}))
    for cls in COMMAND_TYPES
}


class _Op(msgspec.Struct):
    op: str = ""


_op_decoder = msgspec.msgpack.Decoder(_Op)


def record_kinds(data: bytes) -> frozenset[str]:
    """The record kinds the command in ``data`` may change; ``{"everything"}`` when its type
    is not classified or it does not decode (the state refused it, but say so safely)."""
    try:
        op = _op_decoder.decode(data).op
    except (msgspec.DecodeError, ValueError):
        return frozenset({EVERYTHING_KIND})
    return _BY_TAG.get(op, frozenset({EVERYTHING_KIND}))


@dataclass(slots=True)
class TouchedLog:
    """Collects what applied entries touched until ``take``; fed on the Raft thread."""

    _kinds: set[str] = field(default_factory=set)
    _task_nodes: set[str] = field(default_factory=set)
    _tasks: bool = False
    _service_tasks: bool = False
    _everything: bool = False
    _any: bool = False  # something was recorded since the last take

    def command(self, data: bytes) -> None:
        """An entry with ``data`` was applied."""
        self._kinds |= record_kinds(data)
        self._any = True

    def task(self, old: Task | None, new: Task | None) -> None:
        """A task version was stored (``old`` None: created) or removed (``new`` None)."""
        self._tasks = self._any = True
        nodes = self._task_nodes
        for task in (old, new):
            if task is None:
                continue
            if task.node_id:
                nodes.add(task.node_id)
            for hold in task.port_holds:
                if hold.node_id:
                    nodes.add(hold.node_id)
            if task.service:
                self._service_tasks = True

    def volume(self) -> None:
        self._kinds.add(VOLUMES)
        self._any = True

    def replaced(self) -> None:
        """The state was replaced (a snapshot, a fed state dropped): anything may differ."""
        self._everything = self._any = True

    @property
    def pending(self) -> bool:
        return self._any

    def take(self, fsm: ClusterState) -> Touched:
        """What was touched since the last take (``everything`` if nothing was recorded: a
        caller that says the state changed without saying how gets every loop to look)."""
        if not self._any or self._everything or EVERYTHING_KIND in self._kinds:
            self._reset()
            return EVERYTHING
        kinds, task_nodes = self._kinds, frozenset(self._task_nodes)
        gone = []
        for node_id in task_nodes:
            record = fsm.node(node_id)
            if record is None or record.status != NodeStatus.ALIVE:
                gone.append(node_id)
        touched = Touched(
            tasks=self._tasks,
            nodes=NODES in kinds,
            services=SERVICES in kinds,
            network=NETWORK in kinds,
            volumes=VOLUMES in kinds,
            task_nodes=task_nodes,
            gone_nodes=frozenset(gone),
            service_tasks=self._service_tasks,
            fresh_pending=bool(fsm.fresh_pending(1)),
        )
        self._reset()
        return touched

    def _reset(self) -> None:
        self._kinds = set()
        self._task_nodes = set()
        self._tasks = self._service_tasks = self._everything = self._any = False
