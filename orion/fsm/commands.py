"""Commands of the cluster state machine: the data of Raft NORMAL entries.

Every command is a msgspec Struct in one tagged union, encoded as MessagePack. Each carries
``at``, a timestamp chosen by the proposer, so applying a command never reads a clock and
every replica computes the same state.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from orion.codec import bounded_decode
from orion.model import Health, NodeMeta, NodeStatus, Task, TaskState
from orion.services.spec import ServiceSpec, UpdateStatus
from orion.volumes.spec import Volume

MAX_COMMAND_BYTES = 1 << 20  # a command is small; anything larger is refused before decoding


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="op"):
    at: float  # proposer's wall clock, seconds since the epoch


class SubmitTask(_Command, tag="submit", omit_defaults=True):
    """Create ``task``. Idempotent on ``task.id``: a retry returns the existing task; an id of
    a task removed lately is refused (orion/fsm/tombstones.py), so a late duplicate of the
    submit cannot create it again.

    The leader places the task when it proposes the submit (orion/actors/submit_placer.py), so
    one entry creates it Scheduled on ``node_id`` with ``host_ports``. Apply only checks that
    the placement still holds (the node is alive, the resources and ports are free) and
    otherwise creates it Pending for the scheduler, as it does when ``node_id`` is empty
    (``reason``: why the leader found no node). Apply never judges: replay needs no scheduler.
    """

    task: Task
    node_id: str = ""  # the leader's placement; "" = not placed
    host_ports: dict[str, int] = {}  # container port -> host port, dynamic ones resolved
    reason: str = ""  # why no node fits (shown until the scheduler judges the task again)
    # The applied index of the state the leader found no node in (0: not judged; no placement
    # was in flight when it is set). When no entry between it and this one may have made room
    # (only submits and SetPending came between: orion.fsm.state.CAPACITY_NEUTRAL), the reason
    # stands, and the scheduler judges the task again only when capacity grows (no second
    # entry). Otherwise the scheduler judges it once more, as a fresh task.
    judged_at: int = 0


class StopTask(_Command, tag="stop"):
    task_id: str


class AssignTasks(_Command, tag="assign"):
    """The scheduler's plan: (task_id, node_id) placements for Pending tasks."""

    assignments: list[tuple[str, str]]
    # task_id -> {"80/tcp": host port}: the ports the scheduler gave each task with bindings
    # (dynamic ones resolved), so every replica records the same ones.
    host_ports: dict[str, dict[str, int]] = {}


class SetPending(_Command, tag="set_pending"):
    """Tasks the scheduler could not place, with the reason (shown by ``task inspect``)."""

    task_ids: list[str]
    reason: str


class ReportTaskState(_Command, tag="report"):
    """What the node running a task saw happen to its container."""

    task_id: str
    node_id: str
    state: TaskState
    reason: str = ""
    exit_code: int | None = None
    restarts: int = 0
    restart_times: list[float] | None = None  # the task's recent restarts, when they changed


class TaskReport(msgspec.Struct, frozen=True, array_like=True):
    """One task's state as its node saw it: an item of ``ReportTaskStates``."""

    task_id: str
    state: TaskState
    reason: str = ""
    exit_code: int | None = None
    restarts: int = 0
    restart_times: list[float] | None = None


class ReportTaskStates(_Command, tag="reports"):
    """What a node saw happen to several of its tasks' containers in one reconcile pass: one
    entry for them all, as Nomad's servers batch allocation updates (a thousand nodes starting
    ten tasks each would otherwise be ten thousand entries). Each item is applied as a
    ``ReportTaskState`` would be, and refused or not on its own."""

    node_id: str
    reports: list[TaskReport]


class RescheduleNodeTasks(_Command, tag="reschedule_node"):
    """Move the active tasks of a (dead) node back to Pending."""

    node_id: str
    reason: str


class UpsertNode(_Command, tag="upsert_node"):
    meta: NodeMeta
    status: NodeStatus = NodeStatus.ALIVE


class SetNodeStatus(_Command, tag="node_status"):
    node_id: str
    status: NodeStatus


class RemoveNode(_Command, tag="remove_node"):
    node_id: str


class DrainNode(_Command, tag="drain_node"):
    """``orion node drain``: the node takes no new placements; its one-off tasks go back to
    Pending at once (placed elsewhere), its service tasks are moved by the service controller
    (replacement first, as a rolling update). ``deadline``: seconds after ``at`` when whatever
    is left is stopped (``FinishDrain``); None: no deadline. Draining again replaces it."""

    node_id: str
    deadline: float | None = None


class SetNodeEligibility(_Command, tag="node_eligibility"):
    """``orion node eligibility``: stop (False) or resume (True) new placements on the node.
    Enabling also ends a drain: the node is back in service."""

    node_id: str
    eligible: bool


class FinishDrain(_Command, tag="finish_drain"):
    """The drain's deadline passed (the leader's clock, ``at``): stop every task still live on
    the node. Refused before the deadline, so a late or early proposal changes nothing."""

    node_id: str


class RemoveTask(_Command, tag="remove_task"):
    """Delete a task from the state (``orion task rm``). A task that is still active (Pending,
    Scheduled, Running) is refused unless ``force``, which stops and removes it at once, as
    ``docker rm --force`` does; its node's reconciler then removes the container it no longer
    finds in the state."""

    task_id: str
    force: bool = False


class CollectGarbage(_Command, tag="collect_garbage"):
    """Delete up to ``max_tasks`` terminal (Stopped, Failed) tasks last updated before
    ``before``, oldest first. The proposer picks ``before`` (its clock minus the retention), so
    every replica removes the same tasks."""

    before: float
    max_tasks: int = 10_000


class PortConflict(_Command, tag="port_conflict"):
    """Docker refused to start the task because ``host_ip:port`` is taken by something the
    cluster does not know: the task goes back to Pending (not Failed) and the port counts as
    taken on that node's host for a while (orion/scheduler/ports.py)."""

    task_id: str
    node_id: str
    host_ip: str
    port: int
    reason: str


class ReleasePorts(_Command, tag="release_ports"):
    """The node (or one sharing its Docker engine) sees no running container left for these
    tasks: the ports they held there since they left it are free."""

    node_id: str
    task_ids: list[str]


# -- services (orion/services/spec.py) ------------------------------------------------------
# Every change a user makes to a service (create, update, scale, rollback, pause, resume) is
# one command and bumps ``Service.version``; the controller's ``ServiceStep`` names the version
# it decided on and is refused once the service moved on, so it never acts on a stale view.


class CreateService(_Command, tag="create_service"):
    """Refused when the name is taken or a published port is (by another service, or by a
    task's fixed host port on any node: every node's ingress listens on it).

    ``request_id``: chosen by the client once per create and sent again on its retries. A
    create whose request id made a service removed since is refused (a late duplicate must not
    bring it back: orion/fsm/tombstones.py); "" (older callers) skips that check."""

    spec: ServiceSpec
    request_id: str = ""


class UpdateService(_Command, tag="update_service"):
    """Replace the spec. A new template or new ports start a rolling update; the old template
    is kept in ``previous`` for rollback. ``expected_version`` != 0 and not the current
    version is refused as a conflict (read again and retry)."""

    spec: ServiceSpec
    expected_version: int = 0


class ScaleService(_Command, tag="scale_service"):
    """``expected_version`` != 0 refuses a change of the count once the service changed since
    it was read, so a delayed duplicate of an earlier scale never undoes a later one."""

    name: str
    replicas: int
    expected_version: int = 0


class RollbackService(_Command, tag="rollback_service"):
    """The newest earlier template becomes the template again. ``automatic`` (the controller,
    on a failed update) is only taken while an update is in progress; ``expected_version``
    != 0 refuses it once the service changed since the controller looked."""

    name: str
    reason: str = ""
    automatic: bool = False
    expected_version: int = 0


class PauseServiceUpdate(_Command, tag="pause_service"):
    name: str


class ResumeServiceUpdate(_Command, tag="resume_service"):
    name: str


class RemoveService(_Command, tag="remove_service"):
    """Forget the service; every task of it that still runs is stopped. ``expected_version``
    != 0: only the service as it was read (a delayed duplicate never removes a new one)."""

    name: str
    expected_version: int = 0


class ServiceStep(_Command, tag="service_step"):
    """The service controller's decision, applied whole or not at all, and only while the
    service is at ``expected_version``. ``add``: new Pending tasks of the current template
    (ids chosen by the controller); ``drain``: task ids taken out of the ingress now;
    ``stop``: task ids stopped (StopTask); ``status``: the new update status, if it changed."""

    name: str
    expected_version: int
    add: list[Task] = []
    drain: list[str] = []
    stop: list[str] = []
    status: UpdateStatus | None = None


class ReportHealth(_Command, tag="report_health"):
    """A health transition seen by the node running the task (ignored if the task moved)."""

    task_id: str
    node_id: str
    health: Health
    reason: str = ""


# -- volumes (orion/volumes/) ----------------------------------------------------------------


class CreateVolume(_Command, tag="create_volume"):
    """Record a new volume (``uid`` chosen by the proposer). Refused when the name is taken."""

    volume: Volume


class RemoveVolume(_Command, tag="remove_volume"):
    """Refused while a task that is not Stopped or Failed mounts it. A volume never made on a
    node goes at once; else it is ``removing`` until its node deleted the data (PurgeVolume)."""

    name: str


class ReportVolume(_Command, tag="report_volume"):
    """What the volume's node found: it made it (ready), or its data is gone (lost). Ignored
    unless ``uid`` is the current volume's and ``node_id`` is its node (or it has none yet)."""

    name: str
    uid: str
    node_id: str
    state: str  # a VolumeState: ready or lost
    reason: str = ""


class PurgeVolume(_Command, tag="purge_volume"):
    """The node deleted a removed volume's data: forget the record."""

    name: str
    uid: str


# -- overlay network (orion/network/, orion/fsm/network.py) ------------------------------------


class AllocateSubnet(_Command, tag="allocate_subnet"):
    """Give ``node_id`` the lowest free /24 of ``cluster_cidr`` (the leader proposes it for a
    member without one). A node that already has a subnet in that CIDR keeps it; refused when
    the CIDR has none left. Removing the node (RemoveNode) releases its subnet."""

    node_id: str
    cluster_cidr: str


class ReleaseSubnet(_Command, tag="release_subnet"):
    """Take ``node_id``'s subnet back (the leader proposes it once the node has been dead or
    gone for ``[network] release_after``); the node gets one again if it comes back."""

    node_id: str
    reason: str = ""


class ReportOverlayAddress(_Command, tag="overlay_address"):
    """The node running a task saw its container at ``overlay_ip`` on the overlay network
    ("" clears it). Ignored unless the task is active on ``node_id``."""

    task_id: str
    node_id: str
    overlay_ip: str


Command = (
    SubmitTask
    | StopTask
    | AssignTasks
    | SetPending
    | ReportTaskState
    | ReportTaskStates
    | RescheduleNodeTasks
    | UpsertNode
    | SetNodeStatus
    | RemoveNode
    | DrainNode
    | SetNodeEligibility
    | FinishDrain
    | RemoveTask
    | CollectGarbage
    | PortConflict
    | ReleasePorts
    | CreateService
    | UpdateService
    | ScaleService
    | RollbackService
    | PauseServiceUpdate
    | ResumeServiceUpdate
    | RemoveService
    | ServiceStep
    | ReportHealth
    | CreateVolume
    | RemoveVolume
    | ReportVolume
    | PurgeVolume
    | AllocateSubnet
    | ReleaseSubnet
    | ReportOverlayAddress
)


class Refusal(StrEnum):
    """Why a command changed nothing; the Raft actor maps it to the API's ErrorCode."""

    INVALID = "invalid"  # malformed, or not allowed in the current state
    NOT_FOUND = "not_found"  # names a task, node or service the state does not hold
    # Clashes with what the state holds: a service name or published port taken, a version
    # that moved on (the client reads again and retries), a task submit on a published port.
    CONFLICT = "conflict"


class CommandError(msgspec.Struct, frozen=True):
    """Result of a command that changed nothing because it was invalid or refers to nothing."""

    code: Refusal
    message: str


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Command)


# A submit's task goes into its entry without the fields left at their defaults: the entry of a
# loadgen task shrinks from 570 to 257 bytes (the in-memory Raft log holds up to 13k entries, and
# every node decodes each). Decoding fills the defaults in again, as it always did for an absent
# field, so entries of either form decode the same on every version.
class _EntryTask(Task, omit_defaults=True):
    """A ``Task`` encoded as a submit's entry carries it (never stored, never decoded as such)."""


_asdict = msgspec.structs.asdict
_replace = msgspec.structs.replace


def encode_command(command: Command) -> bytes:
    if type(command) is SubmitTask:
        return _encoder.encode(_replace(command, task=_EntryTask(**_asdict(command.task))))
    return _encoder.encode(command)


def decode_command(data: bytes) -> Command:
    """Decode and validate; raise ``msgspec.DecodeError`` (``TooLarge`` when too large)."""
    return bounded_decode(_decoder, data, MAX_COMMAND_BYTES, "command")
