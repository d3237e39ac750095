"""The replicated cluster state: tasks, nodes, services and what each node has been given.

``ClusterState`` is deterministic: it changes only through ``apply(index, data)`` with the
data of committed Raft entries, and never reads a clock or a random source (timestamps come in
the commands). Two replicas fed the same entries hold the same state and produce byte-identical
snapshots.

Stored ``Task`` and ``NodeRecord`` values are never mutated after they are stored: a change
builds a new value (``msgspec.structs.replace``, a shallow copy of one record), so the values
handed out by the read helpers can be passed to other actors safely. Callers must not mutate
them either. That is what lets ``snapshot_source()`` capture the state without copying
records, and ``encode_snapshot`` (orion.fsm.snapshot) encode it in another thread.

Terminal tasks (Stopped, Failed) leave the state through ``CollectGarbage`` (the leader
proposes it periodically with its clock minus the retention) or ``RemoveTask``. The ids of
removed one-off tasks, and removed services, are remembered for a while after
(orion/fsm/tombstones.py): a late duplicate of the request that made one must not make it again.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from orion.fsm.commands import (
    AllocateSubnet,
    AssignTasks,
    CollectGarbage,
    Command,
    CommandError,
    CreateService,
    CreateVolume,
    DrainNode,
    FinishDrain,
    PauseServiceUpdate,
    PortConflict,
    PurgeVolume,
    Refusal,
    ReleasePorts,
    ReleaseSubnet,
    RemoveNode,
    RemoveService,
    RemoveTask,
    RemoveVolume,
    ReportHealth,
    ReportOverlayAddress,
    ReportTaskState,
    ReportTaskStates,
    ReportVolume,
    RescheduleNodeTasks,
    ResumeServiceUpdate,
    RollbackService,
    ScaleService,
    ServiceStep,
    SetNodeEligibility,
    SetNodeStatus,
    SetPending,
    StopTask,
    SubmitTask,
    TaskReport,
    UpdateService,
    UpsertNode,
    decode_command,
)
from orion.fsm.compact import EMPTY_DICT, EMPTY_LIST, Compactor, compact_changes, shared
from orion.fsm.events import Event, EventRecorder, command_subjects
from orion.fsm.network import allocate_subnet, overlay_ip_after, release_subnet, report_overlay_address
from orion.fsm.pending_queue import PendingQueue
from orion.fsm.port_index import (
    IndexedBook,
    PortIndex,
    assigned_ports,
    frees_ports,
    has_claims,
    with_foreign_block,
    with_ports_held,
    without_held,
)
from orion.fsm.results import ApplyResult, AssignResult, ReportResults, TaskIds
from orion.fsm.services import ServiceBook, fixed_host_ports
from orion.fsm.snapshot import SnapshotSource, decode_snapshot, encode_snapshot
from orion.fsm.tables import NodeDrain, NodeRecord
from orion.fsm.task_table import TaskTable, derived_name
from orion.fsm.tombstones import Tombstones, removed_task_message
from orion.fsm.volumes import VolumeBook, holds_volumes
from orion.model import ACTIVE_STATES, Desired, Health, NodeStatus, PortClaim, Task, TaskEvent, TaskState
from orion.scheduler.feasible import shortage
from orion.scheduler.ports import port_space
from orion.services.spec import Service
from orion.volumes.spec import Volume

MAX_HISTORY = 20  # events kept per task
MAX_RESTART_TIMES = 64  # recent restarts kept per task (the restart policy counts them)
SUBMITTED_REASON = "waiting for a node"
STOPPED_REASON = "stopped by user"
FORCE_REMOVED_REASON = "removed by user (forced)"
TERMINAL_STATES = frozenset({TaskState.STOPPED, TaskState.FAILED})
# Commands that never leave more room for a Pending task than there was before them (a submit
# only takes capacity; SetPending only rewrites reasons). A leader's "no node fits" stays true
# across them, so it holds for a submit whose entry follows the judged state past only these.
CAPACITY_NEUTRAL: frozenset[type] = frozenset({SubmitTask, SetPending})
# States a node may report for a task it runs (Scheduled: waiting to restart after a backoff;
# Stopped: its container completed with exit code 0).
REPORTABLE_STATES = frozenset({TaskState.SCHEDULED, TaskState.RUNNING, TaskState.FAILED, TaskState.STOPPED})


def _submission_order(task: Task) -> tuple[float, str]:
    return task.created_at, task.id


def _should_run_pending(task: Task) -> bool:
    """Whether ``task`` waits for a node: exactly the stored tasks ``ClusterState._pending``
    holds."""
    return task.state == TaskState.PENDING and task.desired == Desired.RUN


class ClusterState:
    def __init__(self) -> None:
        self.applied_index = 0
        # Insertion (submission) order: snapshots are stable. Most tasks share a shape there
        # (orion/fsm/task_table.py): each read builds a record.
        self._tasks = TaskTable()
        # name -> id of the task with that name, or the ids of several in submission order (the
        # last one is the latest: after a removal the name falls back to the one before, as
        # after a restore). A lone id is kept bare: most names have one task, and a list each
        # cost more than the id. Names derived from the id (``task-<id8>``) are not in it: the
        # table finds those (``TaskTable.named``) and does not keep them (issue 16 item 5).
        self._by_name: dict[str, str | list[str]] = {}
        self._by_node: dict[str, dict[str, None]] = {}  # node id -> ids of tasks with that node_id
        # Ids of Pending tasks that should run (``_should_run_pending``), in the order they
        # became so; a list, not a dict (orion/fsm/pending_queue.py). With its version, where
        # the last pending_window() stopped, so the scheduler's sweep reads window after window
        # without walking the pending ids from the start for each (1 s of the Raft thread per
        # sweep at 100k).
        self._pending = PendingQueue()
        self._window_cursor: tuple[int, int, Iterator[str]] | None = None
        # Pending tasks the scheduler has not judged since they became Pending (derived, not
        # snapshotted: after a restore every Pending task is judged once more).
        self._fresh: dict[str, None] = {}
        # The last applied index whose command may have made room for a Pending task (anything
        # not CAPACITY_NEUTRAL; a restored state counts as such at its index). Derived, as
        # _fresh is: it only decides whether a submit's judgement is final (``_submit``).
        self._grown_at = 0
        self._nodes: dict[str, NodeRecord] = {}
        # node id -> [memory bytes, millicores, disk bytes] of its Scheduled/Running tasks.
        # Millicores are integers so additions and removals cancel exactly.
        self._allocated: dict[str, list[int]] = {}
        # (updated_at, id) of terminal tasks, a min-heap: garbage collection pops the oldest.
        # Entries of tasks removed or changed since are dropped when met. The pop order depends
        # only on the keys, so a replica restored from a snapshot collects the same tasks.
        self._terminal: list[tuple[float, str]] = []
        self._ports = PortIndex()  # which tasks hold host ports on which node (derived)
        # (host port, protocol) -> ids of non-terminal tasks binding it as a fixed host port
        # (derived): a service may not publish it.
        self._fixed_ports: dict[tuple[int, str], dict[str, None]] = {}
        self._by_service: dict[str, dict[str, None]] = {}  # service name -> its task ids (derived)
        self._tombstones = Tombstones()  # removed task ids and services, remembered for a while
        self._services = ServiceBook(self, self._tombstones)  # the services table and its commands
        self._volumes = VolumeBook()  # the volumes table, and which tasks mount each (derived)
        self._compactor = Compactor()  # shares equal containers and strings among stored tasks
        self.events = EventRecorder()  # what each applied entry changed (orion/fsm/events.py)
        # A worker's fed replica (replace_node_tasks): node id -> ids of the tasks whose ports
        # it holds, as the feed said, and the feed's index (0: this state replicates the log).
        self._fed_held: dict[str, list[str]] = {}
        self.fed_index = 0
        self._handlers: dict[type, Callable[[Any], ApplyResult]] = {
            SubmitTask: self._submit,
            StopTask: self._stop,
            AssignTasks: self._assign,
            SetPending: self._set_pending,
            ReportTaskState: self._report,
            ReportTaskStates: self._reports,
            RescheduleNodeTasks: self._reschedule_node,
            UpsertNode: self._upsert_node,
            SetNodeStatus: self._set_node_status,
            RemoveNode: self._remove_node,
            DrainNode: self._drain_node,
            SetNodeEligibility: self._set_node_eligibility,
            FinishDrain: self._finish_drain,
            RemoveTask: self._remove_task,
            CollectGarbage: self._collect_garbage,
            PortConflict: self._port_conflict,
            ReleasePorts: self._release_ports,
            CreateService: self._create_service,
            UpdateService: self._update_service,
            ScaleService: self._services.scale,
            RollbackService: self._services.rollback,
            PauseServiceUpdate: self._services.pause,
            ResumeServiceUpdate: self._services.resume,
            RemoveService: self._services.remove,
            ServiceStep: self._services.step,
            ReportHealth: self._services.report_health,
            CreateVolume: self._volume_command(self._volumes.create),
            RemoveVolume: self._volume_command(self._volumes.remove),
            ReportVolume: self._volume_command(self._volumes.report),
            PurgeVolume: self._volume_command(self._volumes.purge),
            AllocateSubnet: lambda cmd: allocate_subnet(self._nodes, cmd),
            ReleaseSubnet: lambda cmd: release_subnet(self._nodes, cmd),
            ReportOverlayAddress: lambda cmd: report_overlay_address(self._tasks, cmd, self.put_task),
        }

    # -- applying ----------------------------------------------------------------------------

    def apply(self, index: int, data: bytes) -> ApplyResult:
        """Apply the command of committed entry ``index``. Never raises on bad input: an
        undecodable or invalid command changes nothing and returns a ``CommandError``."""
        if index <= self.applied_index:
            return CommandError(
                Refusal.INVALID, f"entry {index} is already applied (applied index {self.applied_index})"
            )
        if self.fed_index:
            self._leave_fed()
        self.applied_index = index
        try:
            command: Command = decode_command(data)
        except (msgspec.DecodeError, ValueError) as exc:
            return CommandError(Refusal.INVALID, f"undecodable command: {exc}")
        if not math.isfinite(command.at):
            # Timestamps order the garbage collector's heap: NaN would break that order.
            return CommandError(
                Refusal.INVALID,
                f"command {type(command).__name__}: at must be a finite time, got {command.at}",
            )
        self._tombstones.expire(command.at)
        node_id, service_name = command_subjects(command)
        node_before = self._nodes.get(node_id) if node_id else None
        service_before = self._services.get(service_name) if service_name else None
        self.events.begin(index, command.at)
        try:
            return self._handlers[type(command)](command)
        finally:
            if type(command) not in CAPACITY_NEUTRAL:
                self._grown_at = index
            if node_id:
                self.events.node(node_before, self._nodes.get(node_id))
            if service_name:
                self.events.service(service_before, self._services.get(service_name))
            self.events.end()

    def take_events(self) -> list[Event]:
        """The events of the entries applied since the last call, oldest first."""
        return self.events.take()

    def _submit(self, cmd: SubmitTask) -> ApplyResult:
        task = cmd.task
        existing = self._tasks.get(task.id)
        if existing is not None:
            return existing  # a retried submit: the client chose the id
        removed_at = self._tombstones.task_removed_at(task.id)
        if removed_at is not None:  # a late duplicate of the submit that made a task removed since
            return CommandError(Refusal.CONFLICT, removed_task_message(task.id, removed_at))
        if not task.id or not task.image:
            return CommandError(Refusal.INVALID, "a task needs an id and an image")
        if task.memory < 0 or task.disk < 0 or not 0 <= task.cpu < math.inf:  # also refuses NaN
            return CommandError(Refusal.INVALID, f"task {task.id}: resources must be finite and not negative")
        for port, protocol in fixed_host_ports(task):
            publisher = self._services.publisher(port, protocol)
            if publisher is not None:
                return CommandError(
                    Refusal.CONFLICT,
                    f"host port {port}/{protocol} is published by service {publisher} on every node: "
                    "choose another host port (or 0 for any free one)",
                )
        if task.volumes:
            problem = self._volumes.mount_problem(task)
            if problem:
                return CommandError(Refusal.INVALID, f"task {task.id}: {problem}")
        placement: tuple[NodeRecord, dict[str, int]] | None = None
        reason = cmd.reason
        if cmd.node_id and not task.service and not task.volumes:
            placement, why = self._submitted_placement(task, cmd)
            if placement is None:
                reason = f"placed on {cmd.node_id} when submitted, but {why} when applied: {SUBMITTED_REASON}"
        # Shown at once. Unless an entry since the state the leader judged (``judged_at``) may
        # have made room, the task stays fresh and the scheduler judges it again.
        new = self.new_task(task, cmd.at, "submitted", reason=shared(reason) if reason else SUBMITTED_REASON)
        self.put_task(None, new, compact=True)
        if placement is None:
            if cmd.reason and not cmd.node_id and cmd.judged_at > 0 and self._grown_at <= cmd.judged_at:
                # Judged on a state no entry since has made room in: as good as the scheduler's.
                self._fresh.pop(task.id, None)
            return new
        new = self._tasks[task.id]  # as stored (compacted): the next version shares its values
        node, ports = placement
        if ports:
            return self.change_task(
                new,
                cmd.at,
                state=TaskState.SCHEDULED,
                node_id=node.id,
                reason="",
                host_ports=ports,
                host_ip=node.meta.host_ip,
            )
        return self.change_task(new, cmd.at, state=TaskState.SCHEDULED, node_id=node.id, reason="")

    def _submitted_placement(
        self, task: Task, cmd: SubmitTask
    ) -> tuple[tuple[NodeRecord, dict[str, int]] | None, str]:
        """The leader's placement of a new task and its host ports, if it still holds on this
        state (the node may have died, filled up or lost the ports since the leader looked);
        else (None, why)."""
        node = self._nodes.get(cmd.node_id)
        if node is None:
            return None, f"node {cmd.node_id} is not known"
        if node.status != NodeStatus.ALIVE:
            return None, f"node {cmd.node_id} is {node.status}"
        if not node.schedulable:
            return None, f"node {cmd.node_id} is {'draining' if node.drain else 'not eligible'}"
        why = shortage(node.meta, self.allocated(node.id), task)
        if why:
            return None, why
        if not task.port_bindings:
            return (node, {}), ""
        book = self._ports.placement_book(self._nodes, self._tasks)
        ports, why = assigned_ports(task, node, cmd.host_ports, book)
        return (None, why) if ports is None else ((node, ports), "")

    def new_task(self, task: Task, at: float, how: str, reason: str = SUBMITTED_REASON) -> Task:
        """``task`` as the state stores a new one: Pending, with a fresh history. Not compacted
        yet: ``put_task(None, new, compact=True)`` compacts what the table keeps of it."""
        return msgspec.structs.replace(
            task,
            state=TaskState.PENDING.value,
            node_id="",
            reason=reason,
            created_at=at,
            updated_at=at,
            desired=Desired.RUN,
            restarts=0,
            exit_code=None,
            history=[TaskEvent(at=at, state=TaskState.PENDING.value, reason=how)],
            host_ports=EMPTY_DICT,
            host_ip="",
            port_holds=EMPTY_LIST,
            restart_times=EMPTY_LIST,
        )

    def _stop(self, cmd: StopTask) -> ApplyResult:
        task = self._tasks.get(cmd.task_id)
        if task is None:
            return CommandError(Refusal.NOT_FOUND, f"no task with id {cmd.task_id}")
        return self.stop_task(task, cmd.at, STOPPED_REASON)

    def stop_task(self, task: Task, at: float, reason: str) -> Task:
        """StopTask's change: Stopped at once (its node's reconciler stops the container)."""
        if task.state == TaskState.STOPPED:
            return task
        return self.change_task(
            task,
            at,
            state=TaskState.STOPPED,
            reason=reason,
            desired=Desired.STOP,
            port_holds=with_ports_held(task),
        )

    def _assign(self, cmd: AssignTasks) -> ApplyResult:
        assigned, skipped = [], []
        book: IndexedBook | None = None  # host ports taken, read through the index
        for task_id, node_id in cmd.assignments:
            task = self._tasks.get(task_id)
            node = self._nodes.get(node_id)
            # A plan made on an older state must not override what happened since.
            if (
                task is None
                or not _should_run_pending(task)
                or node is None
                or node.status != NodeStatus.ALIVE
                or not node.schedulable  # drained or made ineligible since the plan was made
            ):
                skipped.append(task_id)
                continue
            if shortage(node.meta, self.allocated(node_id), task):
                # Taken since the plan was made (a submit the leader placed meanwhile): judge it again.
                skipped.append(task_id)
                continue
            if task.volumes:
                if self._volumes.placement_problem(task, node_id):  # e.g. a single-writer taken since
                    skipped.append(task_id)
                    continue
                self._volumes.bind(task, node_id, cmd.at)
            if task.port_bindings:
                if book is None:
                    book = self._ports.placement_book(self._nodes, self._tasks)
                ports, _ = assigned_ports(task, node, cmd.host_ports.get(task_id, {}), book)
                if ports is None:  # a port taken since the plan was made: judge it again
                    skipped.append(task_id)
                    continue
                book.claim(port_space(node.meta), node.meta.host_ip, node_id, task_id, ports)
                holds = [h for h in task.port_holds if h.kind != "foreign" or h.until > cmd.at]
                self.change_task(
                    task,
                    cmd.at,
                    state=TaskState.SCHEDULED,
                    node_id=node_id,
                    reason="",
                    host_ports=ports,
                    host_ip=node.meta.host_ip,
                    port_holds=holds,
                )
                assigned.append(task_id)
                continue
            self.change_task(task, cmd.at, state=TaskState.SCHEDULED, node_id=node_id, reason="")
            assigned.append(task_id)
        return AssignResult(assigned=assigned, skipped=skipped)

    def _set_pending(self, cmd: SetPending) -> ApplyResult:
        changed = []
        for task_id in cmd.task_ids:
            task = self._tasks.get(task_id)
            if task is not None and _should_run_pending(task) and task.reason != cmd.reason:
                self.change_task(task, cmd.at, reason=cmd.reason)
                changed.append(task_id)
            self._fresh.pop(task_id, None)
        return TaskIds(changed)

    def _report(self, cmd: ReportTaskState) -> ApplyResult:
        return self._report_one(cmd.node_id, cmd.at, cmd)

    def _reports(self, cmd: ReportTaskStates) -> ApplyResult:
        refused: list[tuple[int, str, str]] = []
        for position, report in enumerate(cmd.reports):
            result = self._report_one(cmd.node_id, cmd.at, report)
            if isinstance(result, CommandError):
                refused.append((position, result.code.value, result.message))
        return ReportResults(refused)

    def _report_one(self, node_id: str, at: float, cmd: ReportTaskState | TaskReport) -> ApplyResult:
        task = self._tasks.get(cmd.task_id)
        if task is None:
            return CommandError(Refusal.NOT_FOUND, f"no task with id {cmd.task_id}")
        if node_id != task.node_id:
            holder = task.node_id or "no node"
            return CommandError(
                Refusal.INVALID, f"stale report for task {task.id} from {node_id}: it is on {holder}"
            )
        if task.state not in ACTIVE_STATES or task.desired != Desired.RUN:
            return CommandError(
                Refusal.INVALID, f"task {task.id} is {task.state}: report of {cmd.state.value} ignored"
            )
        if cmd.state not in REPORTABLE_STATES:
            return CommandError(Refusal.INVALID, f"a node cannot report state {cmd.state.value}")
        if (task.state, task.reason, task.exit_code, task.restarts) == (
            cmd.state,
            cmd.reason,
            cmd.exit_code,
            cmd.restarts,
        ):
            return task  # a repeated report changes nothing
        restart_times = task.restart_times
        if cmd.restart_times is not None:
            # Bounded, and finite: NaN would not survive the snapshot's JSON column.
            restart_times = [t for t in cmd.restart_times if math.isfinite(t)][-MAX_RESTART_TIMES:]
        return self.change_task(
            task,
            at,
            state=cmd.state,
            reason=cmd.reason,
            exit_code=cmd.exit_code,
            restarts=cmd.restarts,
            restart_times=restart_times,
        )

    def _reschedule_node(self, cmd: RescheduleNodeTasks) -> ApplyResult:
        moved = []
        # Index sets are not ordered the same way on a replica restored from a snapshot:
        # walk them in submission order so every replica returns the same result.
        for task in self.tasks_on_node(cmd.node_id):
            task_id = task.id
            if task.state in ACTIVE_STATES and task.desired == Desired.RUN:
                # Its container may live on (a node killed with kill -9 leaves it running):
                # the ports stay held on that node until the container is seen gone.
                self.change_task(
                    task,
                    cmd.at,
                    state=TaskState.PENDING,
                    node_id="",
                    reason=cmd.reason,
                    host_ports={},
                    host_ip="",
                    port_holds=with_ports_held(task),
                )
                moved.append(task_id)
        return TaskIds(moved)

    def _upsert_node(self, cmd: UpsertNode) -> ApplyResult:
        meta = cmd.meta
        if not meta.id:
            return CommandError(Refusal.INVALID, "a node needs an id")
        old = self._nodes.get(meta.id)
        if old is not None and old.meta.version > meta.version:
            meta = old.meta  # gossip may deliver an older meta after a newer one
        record = NodeRecord(id=meta.id, status=cmd.status, meta=meta, updated_at=cmd.at)
        if old is not None:  # an operator's eligibility and drain, and its subnet, outlive gossip's updates
            record = msgspec.structs.replace(
                record, eligible=old.eligible, drain=old.drain, subnet=old.subnet
            )
        self._nodes[meta.id] = record
        return record

    def _set_node_status(self, cmd: SetNodeStatus) -> ApplyResult:
        old = self._nodes.get(cmd.node_id)
        if old is None:
            return CommandError(Refusal.NOT_FOUND, f"no node with id {cmd.node_id}")
        record = msgspec.structs.replace(old, status=cmd.status, updated_at=cmd.at)
        self._nodes[cmd.node_id] = record
        return record

    def _remove_node(self, cmd: RemoveNode) -> ApplyResult:
        record = self._nodes.pop(cmd.node_id, None)
        if record is None:
            return CommandError(Refusal.NOT_FOUND, f"no node with id {cmd.node_id}")
        return record

    def _drain_node(self, cmd: DrainNode) -> ApplyResult:
        old = self._nodes.get(cmd.node_id)
        if old is None:
            return CommandError(Refusal.NOT_FOUND, f"no node with id {cmd.node_id}")
        if cmd.deadline is not None and not 0 <= cmd.deadline < math.inf:
            return CommandError(Refusal.INVALID, f"deadline: must be seconds >= 0, got {cmd.deadline}")
        deadline = None if cmd.deadline is None else cmd.at + cmd.deadline
        started = old.drain.started_at if old.drain is not None else cmd.at
        record = msgspec.structs.replace(
            old, eligible=False, drain=NodeDrain(started_at=started, deadline=deadline), updated_at=cmd.at
        )
        self._nodes[cmd.node_id] = record
        # One-off tasks have no replacement to start first: they go back to Pending now and the
        # scheduler places them elsewhere (the node is no longer a candidate). Service tasks
        # are the service controller's: it starts their replacements before draining them.
        reason = f"node {cmd.node_id} is draining"
        for task in self.tasks_on_node(cmd.node_id):
            if not task.service and task.state in ACTIVE_STATES and task.desired == Desired.RUN:
                self.change_task(
                    task,
                    cmd.at,
                    state=TaskState.PENDING,
                    node_id="",
                    reason=reason,
                    host_ports={},
                    host_ip="",
                    port_holds=with_ports_held(task),
                )
        return record

    def _set_node_eligibility(self, cmd: SetNodeEligibility) -> ApplyResult:
        old = self._nodes.get(cmd.node_id)
        if old is None:
            return CommandError(Refusal.NOT_FOUND, f"no node with id {cmd.node_id}")
        drain = old.drain if not cmd.eligible else None
        if (old.eligible, old.drain) == (cmd.eligible, drain):
            return old
        record = msgspec.structs.replace(old, eligible=cmd.eligible, drain=drain, updated_at=cmd.at)
        self._nodes[cmd.node_id] = record
        return record

    def _finish_drain(self, cmd: FinishDrain) -> ApplyResult:
        node = self._nodes.get(cmd.node_id)
        if node is None:
            return CommandError(Refusal.NOT_FOUND, f"no node with id {cmd.node_id}")
        drain = node.drain
        if drain is None or drain.deadline is None or cmd.at < drain.deadline:
            return CommandError(Refusal.INVALID, f"node {cmd.node_id} has no drain deadline that passed")
        stopped = []
        reason = f"stopped: the drain of node {cmd.node_id} reached its deadline"
        for task in self.tasks_on_node(cmd.node_id):
            if task.state in ACTIVE_STATES and task.desired == Desired.RUN:
                self.stop_task(task, cmd.at, reason)
                stopped.append(task.id)
        return TaskIds(stopped)

    def live_tasks_on_node(self, node_id: str) -> int:
        """Tasks the node still runs or is about to (a drain is done when none is left)."""
        tasks = (self._tasks[task_id] for task_id in self._by_node.get(node_id, ()))
        return sum(1 for task in tasks if task.state in ACTIVE_STATES and task.desired == Desired.RUN)

    def _remove_task(self, cmd: RemoveTask) -> ApplyResult:
        task = self._tasks.get(cmd.task_id)
        if task is None:
            return CommandError(Refusal.NOT_FOUND, f"no task with id {cmd.task_id}")
        if task.state not in TERMINAL_STATES:
            if not cmd.force:
                return CommandError(
                    Refusal.INVALID, f"task {task.id} is {task.state}: stop it first, or remove it with force"
                )
            # What the caller sees: the task as stopped by the removal (it is not stored).
            task = msgspec.structs.replace(
                task,
                state=TaskState.STOPPED.value,
                desired=Desired.STOP,
                reason=FORCE_REMOVED_REASON,
                updated_at=cmd.at,
            )
        self.delete_task(cmd.task_id)
        if not task.service:  # a service's tasks come from its steps, which a version guards
            self._tombstones.task_removed(task.id, cmd.at)
        return task

    def _collect_garbage(self, cmd: CollectGarbage) -> ApplyResult:
        if not math.isfinite(cmd.before) or cmd.max_tasks < 1:
            return CommandError(
                Refusal.INVALID,
                f"collect_garbage: before must be a finite time and max_tasks >= 1, "
                f"got before={cmd.before} max_tasks={cmd.max_tasks}",
            )
        removed: list[str] = []
        heap = self._terminal
        while heap and heap[0][0] < cmd.before and len(removed) < cmd.max_tasks:
            updated_at, task_id = heapq.heappop(heap)
            if self._is_current_terminal(updated_at, task_id):
                if not self._tasks[task_id].service:
                    self._tombstones.task_removed(task_id, cmd.at)
                self.delete_task(task_id)
                removed.append(task_id)
        return TaskIds(removed)

    def _port_conflict(self, cmd: PortConflict) -> ApplyResult:
        task = self._tasks.get(cmd.task_id)
        if task is None:
            return CommandError(Refusal.NOT_FOUND, f"no task with id {cmd.task_id}")
        if cmd.node_id != task.node_id or task.state not in ACTIVE_STATES or task.desired != Desired.RUN:
            return CommandError(
                Refusal.INVALID,
                f"stale port conflict for task {task.id} from {cmd.node_id}: it is {task.state}",
            )
        return self.change_task(
            task,
            cmd.at,
            state=TaskState.PENDING,
            node_id="",
            reason=cmd.reason,
            host_ports={},
            host_ip="",
            port_holds=with_foreign_block(task, cmd.node_id, cmd.host_ip, cmd.port, cmd.at),
        )

    def _release_ports(self, cmd: ReleasePorts) -> ApplyResult:
        released = []
        for task_id in cmd.task_ids:
            task = self._tasks.get(task_id)
            if task is None:
                continue
            holds = without_held(task, cmd.node_id)
            if len(holds) != len(task.port_holds):
                # Bookkeeping, not an event of the task: no history line, no new updated_at.
                self.put_task(task, msgspec.structs.replace(task, port_holds=holds or EMPTY_LIST))
                released.append(task_id)
        return TaskIds(released)

    # -- bookkeeping ---------------------------------------------------------------------------

    def change_task(self, task: Task, at: float, **changes: Any) -> Task:
        """Store a new version of ``task`` with ``changes``, and log the change in its history."""
        if "state" in changes:
            changes["state"] = TaskState(changes["state"]).value
            # Back to Pending, or waiting to restart: its container is new when it runs again,
            # so a health check starts over (an old "healthy" would let the ingress in early).
            if (
                task.health_check is not None
                and changes["state"] in (TaskState.PENDING, TaskState.SCHEDULED)
                and changes["state"] != task.state
                and "health" not in changes
            ):
                changes["health"] = Health.STARTING.value
        if task.overlay_ip and ("node_id" in changes or "state" in changes):
            changes["overlay_ip"] = overlay_ip_after(task, changes)
        new = msgspec.structs.replace(task, updated_at=at, **compact_changes(changes))
        event = TaskEvent(at=at, state=new.state, node_id=new.node_id, reason=new.reason)
        history = task.history[-(MAX_HISTORY - 1) :]
        history.append(event)
        new = msgspec.structs.replace(new, history=history)
        self.put_task(task, new)
        return new

    def put_task(self, old: Task | None, new: Task, compact: bool = False) -> None:
        """Store ``new`` (``old``: the version it replaces). ``compact``: ``new`` is as decoded
        (a new task, a restored one): the table compacts what it keeps of it
        (orion/fsm/compact.py), and so does the volumes index, which keeps the record."""
        # A task that stays Pending keeps its place: the scheduler walks that order.
        kept_pending = old is not None and _should_run_pending(old) and _should_run_pending(new)
        if old is not None:
            self._unindex(old, keep_pending=kept_pending)
        if compact and new.volumes:
            new, compact = self._compactor.task(new), False  # the volumes index keeps this record
        self._tasks.put(new, self._compactor if compact else None)
        self.events.task(old, new)
        if new.volumes or (old is not None and old.volumes):
            self._volumes.track(old, new)
            if old is not None and holds_volumes(old) and not holds_volumes(new):
                self._ports.releases += 1  # like a freed port: Pending tasks waiting for it are judged again
        if old is None and not derived_name(new.name, new.id):
            same_name = self._by_name.get(new.name)
            if same_name is None:
                self._by_name[new.name] = new.id
            elif isinstance(same_name, str):
                self._by_name[new.name] = [same_name, new.id]
            else:
                same_name.append(new.id)
        if old is None and new.service:
            self._by_service.setdefault(new.service, {})[new.id] = None
        self._index(new, kept_pending)
        if old is not None and frees_ports(old, new):
            self._ports.releases += 1
        if new.state in TERMINAL_STATES and (
            old is None or old.state not in TERMINAL_STATES or old.updated_at != new.updated_at
        ):
            heapq.heappush(self._terminal, (new.updated_at, new.id))
        if new.state == TaskState.PENDING and new.desired == Desired.RUN:
            if old is None or old.state != TaskState.PENDING:
                self._fresh[new.id] = None
        else:
            self._fresh.pop(new.id, None)

    def delete_task(self, task_id: str) -> None:
        """Forget a task: its indexes, its allocation, its name. A heap entry stays behind and
        is dropped when met."""
        task = self._tasks.pop(task_id)
        self.events.task_removed(task)
        if task.volumes:
            self._volumes.track(task, None)
        self._unindex(task)
        if has_claims(task):
            self._ports.releases += 1
        self._fresh.pop(task_id, None)
        if not derived_name(task.name, task_id):
            same_name = self._by_name[task.name]
            if isinstance(same_name, str):
                del self._by_name[task.name]
            else:
                same_name.remove(task_id)
                if len(same_name) == 1:
                    self._by_name[task.name] = same_name[0]
        if task.service:
            of_service = self._by_service[task.service]
            del of_service[task_id]
            if not of_service:
                del self._by_service[task.service]

    def _is_current_terminal(self, updated_at: float, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.state in TERMINAL_STATES and task.updated_at == updated_at

    def _index(self, task: Task, kept_pending: bool = False) -> None:
        if task.node_id:
            self._by_node.setdefault(task.node_id, {})[task.id] = None
            if task.state in ACTIVE_STATES:
                self._add_allocation(task, 1)
        if not kept_pending and _should_run_pending(task):
            self._pending.add(task.id)
        self._ports.add(task)
        if task.port_bindings and task.state not in TERMINAL_STATES:
            for key in fixed_host_ports(task):
                self._fixed_ports.setdefault(key, {})[task.id] = None

    def _unindex(self, task: Task, keep_pending: bool = False) -> None:
        if task.node_id:
            on_node = self._by_node[task.node_id]
            del on_node[task.id]
            if not on_node:
                del self._by_node[task.node_id]
            if task.state in ACTIVE_STATES:
                self._add_allocation(task, -1)
        if not keep_pending and _should_run_pending(task):
            self._pending.discard(task.id)
        self._ports.remove(task)
        if task.port_bindings and task.state not in TERMINAL_STATES:
            for key in fixed_host_ports(task):
                holders = self._fixed_ports[key]
                del holders[task.id]
                if not holders:
                    del self._fixed_ports[key]

    def _add_allocation(self, task: Task, sign: int) -> None:
        totals = self._allocated.setdefault(task.node_id, [0, 0, 0])
        totals[0] += sign * task.memory
        totals[1] += sign * round(task.cpu * 1000)
        totals[2] += sign * task.disk
        if totals == [0, 0, 0]:
            del self._allocated[task.node_id]

    # -- reading -------------------------------------------------------------------------------

    def tasks(self) -> list[Task]:
        return self._tasks.all()

    def task_states(self) -> Iterator[str]:
        """Every task's state (for counts: cheaper than ``tasks()``, which builds each record)."""
        return self._tasks.states()

    def task(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def task_by_name(self, name: str) -> Task | None:
        """The most recently submitted task with this name that is still active (Pending to
        run, Scheduled or Running), else the most recently submitted one: several tasks of a
        service share a slot's name while the slot is being replaced."""
        listed = self._by_name.get(name)
        ids = [listed] if isinstance(listed, str) else listed or []
        derived = self._tasks.named(name)
        if derived:
            ids = derived if not ids else self._tasks.in_order({*ids, *derived})
        if not ids:
            return None
        if len(ids) == 1:
            return self._tasks[ids[0]]
        for task_id in reversed(ids):
            task = self._tasks[task_id]
            if task.desired == Desired.RUN and task.state not in TERMINAL_STATES:
                return task
        return self._tasks[ids[-1]]

    def services(self) -> list[Service]:
        """Every service, in creation order."""
        return self._services.all()

    def service(self, name: str) -> Service | None:
        return self._services.get(name)

    def service_tasks(self, name: str) -> list[Task]:
        """The tasks of service ``name`` in any state, oldest first."""
        tasks = [self._tasks[task_id] for task_id in self._by_service.get(name, ())]
        tasks.sort(key=_submission_order)
        return tasks

    def volumes(self) -> list[Volume]:
        """Every volume, in creation order."""
        return self._volumes.all()

    def volume(self, name: str) -> Volume | None:
        return self._volumes.get(name)

    def node_volumes(self, node_id: str, tasks: list[Task] | None = None) -> list[Volume]:
        """The volume records ``node_id`` needs without a volumes table of its own (a worker):
        those its tasks (``tasks_on_node``, or ``tasks`` when the caller has them) mount and
        those whose data lives on it."""
        return self._volumes.needed_on(node_id, self.tasks_on_node(node_id) if tasks is None else tasks)

    def _volume_command(self, handler: Callable[[Any], ApplyResult]) -> Callable[[Any], ApplyResult]:
        """``handler`` of a volume command (it names the volume), its change told to the events
        recorder's ``on_volume`` (the worker feed's host learns from it whom to tell)."""

        def apply(cmd: Any) -> ApplyResult:
            name = cmd.volume.name if isinstance(cmd, CreateVolume) else cmd.name
            before = self._volumes.get(name)
            result = handler(cmd)
            self.events.volume(before, self._volumes.get(name))
            return result

        return apply

    def volume_users(self, name: str) -> list[Task]:
        """The tasks mounting volume ``name`` that are not Stopped or Failed."""
        return self._volumes.users(name)

    def volume_writers(self, name: str) -> list[Task]:
        """Scheduled or Running tasks that should run and mount ``name`` read-write."""
        return self._volumes.active_writers(name)

    def _create_service(self, cmd: CreateService) -> ApplyResult:
        problem = self._template_volumes_problem(cmd.spec.template.volumes)
        return CommandError(Refusal.INVALID, problem) if problem else self._services.create(cmd)

    def _update_service(self, cmd: UpdateService) -> ApplyResult:
        problem = self._template_volumes_problem(cmd.spec.template.volumes)
        return CommandError(Refusal.INVALID, problem) if problem else self._services.update(cmd)

    def _template_volumes_problem(self, mounts: list[Any]) -> str:
        if not mounts:
            return ""
        problem = self._volumes.mount_problem(Task(id="", name="", image="", volumes=mounts))
        return f"spec.template.{problem}" if problem else ""

    def fixed_port_tasks(self, port: int, protocol: str) -> list[str]:
        """Ids of the non-terminal tasks binding ``port``/``protocol`` as a fixed host port."""
        return list(self._fixed_ports.get((port, protocol), ()))

    def tasks_on_node(self, node_id: str) -> list[Task]:
        """Tasks whose node_id is ``node_id`` in any state, oldest first (a Stopped one still
        tells that node's reconciler to remove its container)."""
        on_node = [self._tasks[task_id] for task_id in self._by_node.get(node_id, ())]
        on_node.sort(key=_submission_order)
        return on_node

    def pending_tasks(self) -> list[Task]:
        """Pending tasks that should run, oldest first."""
        pending = [self._tasks[task_id] for task_id in self._pending]
        pending.sort(key=_submission_order)
        return pending

    def fresh_pending(self, limit: int) -> list[Task]:
        """Up to ``limit`` Pending tasks not yet judged by the scheduler, oldest first."""
        return [self._tasks[task_id] for task_id in itertools.islice(self._fresh, limit)]

    def pending_window(self, start: int, limit: int) -> list[Task]:
        """Pending tasks ``start`` to ``start + limit`` in submission order: the scheduler
        walks them window by window when capacity grew, instead of copying all at once."""
        cursor = self._window_cursor
        if cursor is not None and cursor[:2] == (self._pending.version, start):
            ids = cursor[2]  # the last window ended here and no id entered or left since
        else:
            ids = iter(self._pending)
            if start:
                next(itertools.islice(ids, start - 1, start), None)  # skip ``start`` ids
        window = [self._tasks[task_id] for task_id in itertools.islice(ids, limit)]
        self._window_cursor = (self._pending.version, start + len(window), ids)
        return window

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def has_garbage(self, before: float) -> bool:
        """True when ``CollectGarbage(before=before)`` would remove a task. Drops the stale
        entries of the collector's heap that it meets on top (they change no result)."""
        heap = self._terminal
        while heap and not self._is_current_terminal(*heap[0]):
            heapq.heappop(heap)
        return bool(heap) and heap[0][0] < before

    def nodes(self) -> list[NodeRecord]:
        return list(self._nodes.values())

    def node(self, node_id: str) -> NodeRecord | None:
        return self._nodes.get(node_id)

    def allocated(self, node_id: str) -> tuple[int, float, int]:
        """(memory bytes, cpu cores, disk bytes) of the Scheduled and Running tasks on a node."""
        memory, millicores, disk = self._allocated.get(node_id, (0, 0, 0))
        return memory, millicores / 1000, disk

    def port_claims(self, node_id: str) -> list[PortClaim]:
        """Host ports taken on ``node_id``: by its active tasks, held by containers of tasks
        that left it, or found taken by something else (orion/scheduler/ports.py)."""
        return self._ports.claims(node_id, self._tasks)

    def held_port_tasks(self, node_id: str) -> list[str]:
        """Ids of tasks whose ports ``node_id`` holds until it sees their containers gone."""
        fed = self._fed_held.get(node_id)
        if fed is not None:
            return list(fed)  # a worker: those tasks left it, so this partial state lacks them
        return self._ports.held_task_ids(node_id, self._tasks)

    @property
    def port_releases(self) -> int:
        """Bumped whenever a port claim is given up (derived: not in snapshots)."""
        return self._ports.releases

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot_source(self) -> SnapshotSource:
        """What a snapshot of the current state needs, captured in a few milliseconds (a list of
        references to the stored records, which are never mutated). Encode it with
        ``encode_snapshot`` in any thread while this state goes on applying entries."""
        return SnapshotSource(
            applied_index=self.applied_index,
            tasks=self._tasks.rows(),
            nodes=list(self._nodes.values()),
            services=self._services.all(),
            volumes=self._volumes.all(),
            tombstones=self._tombstones.source(),
        )

    def snapshot(self) -> bytes:
        """The whole state as an msgpack ``TabularSnapshot`` (tables meta, nodes, tasks)."""
        return encode_snapshot(self.snapshot_source())

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's. Raises ``ValueError`` on bad data and
        then leaves the current state untouched."""
        source = decode_snapshot(data)
        self._fed_held.clear()
        self.fed_index = 0
        self._tasks.clear()
        self._by_name.clear()
        self._by_node.clear()
        self._pending.clear()
        self._fresh.clear()
        self._allocated.clear()
        self._terminal.clear()
        self._ports.clear()
        self._fixed_ports.clear()
        self._by_service.clear()
        for task in source.tasks:
            self.put_task(None, task, compact=True)
        self._nodes = {node.id: node for node in source.nodes}
        self._tombstones.restore(source.tombstones)
        self._services.restore(source.services)
        self._volumes.restore(source.volumes, source.tasks)
        self.applied_index = source.applied_index
        self._grown_at = source.applied_index  # what the snapshot's entries did is not known here

    # -- a worker's fed replica (issue 20) -----------------------------------------------------

    def replace_node_tasks(
        self,
        node_id: str,
        tasks: list[Task],
        held_ports: list[str],
        index: int,
        volumes: Iterable[Volume] = (),
    ) -> None:
        """A worker (a node outside the Raft configuration, orion/cluster/feed_client.py) holds
        no replica of the log: this state becomes a partial one, fed by a Raft member's answers.
        ``tasks`` is ``node_id``'s whole task list and ``held_ports`` the ids of tasks whose ports
        it holds, as the member had them at its applied ``index``; ``volumes`` the volume records
        the node needs (``node_volumes``), which replace the volumes table. The node's reconciler,
        health checks and volume support read them as they read a replica's; nothing else is here
        (no other node's tasks, no node records, no services), and no events are recorded.

        ``applied_index`` stays 0: when the node joins the configuration, the first entry it
        applies (or the snapshot it installs) first drops this partial state, so the log is
        applied from its start onto an empty one. Raises ``ValueError`` naming the field (and
        leaves the state untouched) for a task on another node or a state that replicates the log."""
        if self.applied_index:
            raise ValueError(
                f"replace_node_tasks: this state replicates the log (applied index {self.applied_index})"
            )
        if index < 0:
            raise ValueError(f"replace_node_tasks: index must be >= 0, got {index}")
        for task in tasks:
            if task.node_id != node_id:
                raise ValueError(f"tasks: task {task.id} is on node {task.node_id!r}, not {node_id!r}")
        wanted = {task.id: task for task in tasks}
        for task_id in list(self._by_node.get(node_id, ())):
            if task_id not in wanted:
                self.delete_task(task_id)
        for task in tasks:
            old = self._tasks.get(task.id)
            if old != task:
                self.put_task(old, self._compactor.task(task))
        self._volumes.restore(list(volumes), self._tasks.all())
        self._fed_held[node_id] = list(held_ports)
        self.fed_index = max(index, 1)  # non-zero: fed

    def _leave_fed(self) -> None:
        """The node replicates the log now: drop the fed tasks before the first entry applies."""
        for task_id in list(self._tasks):
            self.delete_task(task_id)
        self._volumes.restore([], [])
        self._fed_held.clear()
        self.fed_index = 0
