"""Records of the cluster state shared by the FSM, the scheduler, the worker and the API."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import msgspec


class TaskState(StrEnum):
    PENDING = "Pending"  # waiting for a node; ``reason`` says why
    SCHEDULED = "Scheduled"  # assigned to ``node_id``; that node's reconciler will start it
    RUNNING = "Running"
    FAILED = "Failed"  # for good: restart attempts exhausted, or the image cannot be had
    STOPPED = "Stopped"  # stopped by a user; its container is removed


ACTIVE_STATES = frozenset({TaskState.SCHEDULED, TaskState.RUNNING})


class Desired(StrEnum):
    """What the user wants of a task: it runs until stopped (the state says how far it got)."""

    RUN = "run"
    STOP = "stop"


class NodeStatus(StrEnum):
    """A member's liveness as gossip (SWIM) sees it; the FSM, the scheduler, the membership
    policy and ``orion nodes`` use the same words."""

    ALIVE = "alive"  # the only status that takes new work
    SUSPECT = "suspect"  # missed probes; may still refute
    DEAD = "dead"  # declared failed
    LEFT = "left"  # announced its own departure


LIVE_STATUSES = frozenset({NodeStatus.ALIVE, NodeStatus.SUSPECT})  # a suspect may still refute
GONE_STATUSES = frozenset({NodeStatus.DEAD, NodeStatus.LEFT})


# gc=False (Task, TaskEvent): a state holds one of each per task, and neither can be part of a
# reference cycle (strings, numbers, and containers of those); untracked, they cost 16 bytes
# less each and the collector no longer walks them all on every full collection.
class TaskEvent(msgspec.Struct, frozen=True, gc=False):
    """One line of a task's history, shown by ``orion task inspect``."""

    at: float
    state: str
    node_id: str = ""
    reason: str = ""


class PortClaim(msgspec.Struct, frozen=True, kw_only=True):
    """One host port taken on a node's port space (orion/scheduler/ports.py says by what)."""

    host_ip: str
    port: int
    protocol: str  # "tcp", "udp", "sctp"
    node_id: str  # the node whose container holds it, or where Docker refused it
    task_id: str = ""
    kind: str = "task"  # "task" (active), "held" (left, container maybe still up), "foreign"
    until: float = 0.0  # foreign claims only: when the block lapses (seconds since the epoch)


RESTART_CONDITIONS = ("on-failure", "always", "no")
RESTART_MODES = ("fail", "delay")


class RestartSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A task's restart policy (Nomad's ``restart`` block); an unset field takes the default of
    the node that runs the task ([docker] restart*)."""

    policy: Literal["", "on-failure", "always", "no"] = ""  # on-failure: restart a non-zero exit
    attempts: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None  # restarts within ``interval``
    # Seconds: restarts older than ``interval`` no longer count; ``delay`` before a restart,
    # doubled per restart within the interval.
    interval: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] | None = None
    delay: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    mode: Literal["", "fail", "delay"] = ""  # attempts used: Failed for good, or wait and go on


class Health(StrEnum):
    """A task's health as the node running it sees it (only transitions go through Raft)."""

    NONE = ""  # the task has no health check: available as soon as it runs
    STARTING = "starting"  # checked, not yet passed (failures in the start period do not count)
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # ``retries`` checks in a row failed: the service replaces it


class HealthCheck(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the node running a task checks it (Docker's HEALTHCHECK, Nomad's ``check``).

    ``http`` and ``tcp`` reach the container through the host port published for ``port`` on
    the node's loopback address; ``exec`` runs ``command`` inside the container (exit 0 = pass).
    """

    kind: Literal["http", "tcp", "exec"]
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # container port (http, tcp)
    path: str = "/"  # http only
    expect_status: Annotated[int, msgspec.Meta(ge=100, le=599)] = 200  # http only
    command: list[str] = []  # exec only
    # Seconds. A check that does not answer within ``timeout`` failed; failures during
    # ``start_period`` after the container started do not count toward ``retries``.
    interval: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 2.0
    retries: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    start_period: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 0.0


class VolumeMount(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``-v data:/var/lib/app[:ro]``: cluster volume ``volume`` (orion/volumes/) mounted at
    ``target`` in the task's container."""

    volume: str
    target: str
    read_only: bool = False


def task_name(name: str | None, task_id: str) -> str:
    """A task's name: the one given, else ``task-`` and the first 8 characters of its id (the
    same whichever front end submitted it, so a retry compares equal)."""
    return name or f"task-{task_id[:8]}"


class Task(msgspec.Struct, kw_only=True, gc=False):
    id: str
    name: str
    image: str
    state: str = TaskState.PENDING
    memory: int = 0  # bytes
    cpu: float = 0.0  # cores
    disk: int = 0  # bytes
    node_selectors: dict[str, str] = {}
    port_bindings: dict[str, str] = {}  # "80/tcp" -> "8080"
    command: list[str] | None = None
    env: dict[str, str] = {}
    node_id: str = ""
    reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    desired: str = Desired.RUN
    restarts: int = 0
    exit_code: int | None = None
    history: list[TaskEvent] = []
    # The host side of ``port_bindings`` as the scheduler assigned it ("80/tcp" -> 8080), with
    # dynamic ("0") ports resolved, and the address they are published on; empty while Pending.
    host_ports: dict[str, int] = {}
    host_ip: str = ""
    # Ports this task may still hold on nodes it left, or found taken there by something else
    # (see orion/scheduler/ports.py); the scheduler treats them as taken on those hosts.
    port_holds: list[PortClaim] = []
    restart: RestartSpec | None = None  # None: the node's default policy
    restart_times: list[float] = []  # when its recent restarts happened, as its node reported
    # Services (orion/services/spec.py): a task made by a service's controller fills a slot
    # ("web.2" is slot 2 of "web") with the template of ``version``; "" / 0 for a one-off task.
    service: str = ""
    slot: int = 0
    version: int = 0
    health_check: HealthCheck | None = None
    health: str = Health.NONE
    # When the controller took it out of the ingress (no new connections); it is stopped
    # once every node had time to see that. 0.0 = serving.
    drain_at: float = 0.0
    # Seconds between SIGTERM and SIGKILL when its container stops; None: the node's default
    # ([docker] stop_timeout).
    stop_grace: float | None = None
    # Cluster volumes mounted in the container; a local volume pins the task to its node.
    volumes: list[VolumeMount] = []
    overlay_ip: str = ""  # its container's address on the overlay network ("" none: orion/network)


class NodeMeta(msgspec.Struct, kw_only=True, frozen=True):
    """What a node says about itself, piggybacked on gossip (kept under 512 bytes encoded)."""

    id: str
    role: str = "node"
    address: str = "127.0.0.1"  # advertise host
    raft_port: int = 0
    gossip_port: int = 0
    api_port: int = 0
    http_port: int = 0
    memory_total: int = 0
    memory_used: int = 0
    cpu_total: float = 0.0
    disk_total: int = 0
    tags: dict[str, str] = {}
    version: int = 0  # bumped on every change so newer meta wins
    host_ip: str = ""  # where its Docker engine publishes ports ([docker] host_ip)
    port_space: str = ""  # nodes with the same value share host ports (one engine): see scheduler/ports.py
    # Identity, so peers can tell a wiped-and-restarted node and a node of another cluster apart
    # from the member they knew: the Raft configuration's cluster id ("" until this node has
    # received the configuration) and the incarnation of this node's data dir ("" = not known).
    cluster_id: str = ""
    raft_incarnation: str = ""
    # The overlay (orion/network): the VXLAN device's MAC and the underlay address peers send
    # VXLAN packets to; "" when this node runs no overlay.
    vtep_mac: str = ""
    underlay_ip: str = ""

    @property
    def raft_address(self) -> str:
        return f"{self.address}:{self.raft_port}"

    @property
    def gossip_address(self) -> str:
        return f"{self.address}:{self.gossip_port}"

    @property
    def api_address(self) -> str:
        return f"{self.address}:{self.api_port}"
