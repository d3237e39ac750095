"""Client API messages: requests, replies and the records they carry (msgspec, MessagePack).

Requests form a tagged union (tag field ``op``). Every request is validated on decode
(DESIGN rule 5): constraints live in the types below, so a bad request is refused with an
error naming its field before it reaches the node. The same types are used by the ZeroMQ
server, the REST mirror (via ``validate_request``), the Python client and the node when it
forwards a request to the leader.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, get_args

import msgspec

from orion.codec import TooLarge, bounded_decode
from orion.fsm.events import EVENT_TYPES, EventPage
from orion.model import NodeMeta, NodeStatus, RestartSpec, Task, VolumeMount, task_name
from orion.raft.types import RaftRole
from orion.services.spec import Service, ServiceSpec
from orion.services.validate import SpecError, name_problem, validate_spec
from orion.units import parse_duration
from orion.volumes.spec import Volume, VolumeSpec, VolumeSpecError, validate_mounts, validate_volume_spec

MAX_REQUEST = 1024 * 1024  # bytes of an encoded request
MAX_REPLY = 64 * 1024 * 1024

TaskId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
TaskName = Annotated[str, msgspec.Meta(max_length=128)]
# What a command that names a task takes: its id, a unique id prefix (4+ characters) or its
# name; resolved once, on the node, by orion.api.lookup.resolve_task.
TaskRef = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][^/]*$")]
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][^/\s]*$")]
StateName = Annotated[str, msgspec.Meta(max_length=32)]
Image = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\s]+$")]
Bytes = Annotated[int, msgspec.Meta(ge=0, le=2**60)]
Cores = Annotated[float, msgspec.Meta(ge=0.0, le=4096.0)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Value = Annotated[str, msgspec.Meta(max_length=1024)]
EnvValue = Annotated[str, msgspec.Meta(max_length=32 * 1024)]
# "80/tcp" (or "80", meaning tcp) -> "8080", or "0" for any free host port; ranges and
# protocols are checked in __post_init__ (container_port_problem), which names what is wrong.
ContainerPort = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,5}(/[a-z0-9]+)?$")]
HostPort = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,5}$")]
Arg = Annotated[str, msgspec.Meta(max_length=32 * 1024)]


class ErrorCode(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    NO_QUORUM = "no_quorum"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    UNAUTHORIZED = "unauthorized"  # no valid client token (secure clusters)
    CONFLICT = "conflict"  # a task id reused with a different spec
    # The node that took the write stopped leading before appending it (e.g. it is handing
    # leadership over on shutdown): nothing was written, so retrying elsewhere is safe.
    NOT_LEADER = "not_leader"
    # Between the node's own actors only, never in a reply: Docker refused or failed a call.
    DOCKER = "docker"
    PORT_IN_USE = "port_in_use"  # Docker refused a start: a host port is taken
    GONE = "gone"  # events after the asked index are no longer kept (orion/cluster/event_ring.py)


RETRYABLE = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.NOT_LEADER})  # nothing was done: ask again


# ------------------------------------------------------------------------- requests


class _Request(
    msgspec.Struct, tag_field="op", tag=True, kw_only=True, frozen=True, forbid_unknown_fields=True
):
    stale: bool = False  # reads: answer from this node's state instead of through the leader


class SubmitTask(_Request):
    id: TaskId
    name: TaskName
    image: Image
    memory: Bytes = 0
    cpu: Cores = 0.0
    disk: Bytes = 0
    node_selectors: Annotated[dict[Key, Value], msgspec.Meta(max_length=64)] = {}
    port_bindings: Annotated[dict[ContainerPort, HostPort], msgspec.Meta(max_length=64)] = {}
    command: Annotated[list[Arg], msgspec.Meta(max_length=256)] | None = None
    env: Annotated[dict[Key, EnvValue], msgspec.Meta(max_length=256)] = {}
    restart: RestartSpec | None = None  # None: the running node's default policy
    volumes: Annotated[list[VolumeMount], msgspec.Meta(max_length=32)] = []  # cluster volumes mounted

    def __post_init__(self) -> None:
        _check_mounts(self.volumes, "volumes")
        static: set[tuple[int, str]] = set()
        for container_port, host_port in self.port_bindings.items():
            problem = container_port_problem(container_port)
            if problem is not None:
                raise ValueError(f"port_bindings: {problem}")
            host = int(host_port)
            if not 0 <= host <= 65535:
                raise ValueError(f"port_bindings: host port {host_port!r} is not in 1-65535 (or 0: any free)")
            protocol = container_port.partition("/")[2] or "tcp"
            if host and (host, protocol) in static:
                raise ValueError(f"port_bindings: host port {host}/{protocol} is given twice")
            static.add((host, protocol))


# ------------------------------------------------------------------------- published ports
# One rule for the client, the CLI and REST: each puts its ports in the shape below with
# ``normalize_port_bindings`` and SubmitTask checks them with ``container_port_problem`` (the
# CLI also asks it directly, to name its ``-p``). Orion publishes tcp and udp only: Docker's
# userland proxy cannot publish sctp ("protocol not supported", found on the test hosts) and
# the port accounting (orion/scheduler/ports.py) knows tcp and udp, so "80/sctp" is refused
# at submit time instead of failing when a node starts the container.
PORT_PROTOCOLS = ("tcp", "udp")


def container_port_problem(container_port: str) -> str | None:
    """Why ``container_port`` ("80/tcp", "53/udp", "80" meaning tcp) cannot be published, or None."""
    number, sep, protocol = container_port.partition("/")
    if not number.isdigit() or not 1 <= int(number) <= 65535:
        return f"container port {container_port!r} is not in 1-65535"
    if sep and protocol not in PORT_PROTOCOLS:
        return (
            f"container port {container_port!r}: protocol {protocol!r} is not supported "
            f"(Orion publishes {' and '.join(PORT_PROTOCOLS)})"
        )
    return None


def normalize_port_bindings(ports: Mapping[Any, str | int | None] | None) -> dict[str, str]:
    """{"80": 8080, "53/udp": None} -> {"80/tcp": "8080", "53/udp": "0"}: a container port
    without protocol means tcp; a host port of 0, "" or None asks for any free one. Shape
    only: SubmitTask's validation then refuses what cannot be published, naming it."""
    result: dict[str, str] = {}
    for container, host in (ports or {}).items():
        key = str(container)
        result[key if "/" in key else f"{key}/tcp"] = "0" if host in (None, "") else str(host)
    return result


def restart_fields(value: str | Mapping[str, Any] | RestartSpec | None) -> dict[str, Any] | None:
    """A restart policy as the client, the CLI and REST take it: a policy name ("always"), or
    a mapping of policy, attempts, interval, delay and mode, whose interval and delay may be
    durations ("5m", "1s") or seconds. Validated with the request (field ``restart``)."""
    if value is None:
        return None
    if isinstance(value, RestartSpec):
        return msgspec.structs.asdict(value)
    if isinstance(value, str):
        return {"policy": value}
    fields = dict(value)
    for key in ("interval", "delay"):
        if isinstance(fields.get(key), str):
            fields[key] = parse_duration(fields[key], f"restart.{key}")
    return fields


class ListTasks(_Request):
    """Every task, or only those in one of ``states`` (TaskState values), on ``node``, of
    ``service`` (empty: no filter). Built and checked by orion.api.requests.build_list_tasks."""

    states: Annotated[list[StateName], msgspec.Meta(max_length=16)] = []
    node: Annotated[str, msgspec.Meta(max_length=128)] = ""
    service: Annotated[str, msgspec.Meta(max_length=128)] = ""


class GetTask(_Request):
    id: TaskRef


class StopTask(_Request):
    id: TaskRef


class RemoveTask(_Request):
    """``orion task rm``: delete a Stopped or Failed task from the state. An active one is
    refused unless ``force``, which stops and removes it (as ``docker rm --force``)."""

    id: TaskRef
    force: bool = False


class ListNodes(_Request):
    pass


class DrainNode(_Request):
    """``orion node drain``: move the node's tasks elsewhere; ``deadline`` (seconds, None: no
    deadline): then stop whatever is left. Answers the node as ``ListNodes`` shows it."""

    node: NodeId
    deadline: Annotated[float, msgspec.Meta(ge=0.0, le=10.0 * 365 * 86400)] | None = None


class SetNodeEligibility(_Request):
    """``orion node eligibility``: stop (False) or resume (True) new placements; True also
    ends a drain."""

    node: NodeId
    eligible: bool


class RaftStatus(_Request):
    pass


PeerAddress = Annotated[str, msgspec.Meta(max_length=300)]


class BlockPeers(_Request):
    """Test-only fault injection (the nemesis): drop all peer traffic to and from these
    "host:port" Raft/gossip addresses; an empty list heals. Refused unless the node runs
    with ``[testing] fault_injection = true``."""

    addresses: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=300)]], msgspec.Meta(max_length=256)
    ] = []


# ------------------------------------------------------------------------- services
# Specs are checked on decode by orion.services.validate (the FSM checks them again), so every
# front end refuses a bad one with the same words: "spec.template.health.port: ...".

ServiceName = Annotated[str, msgspec.Meta(max_length=128)]  # name_problem says what is wrong


def _check_name(name: str, field: str = "name") -> None:
    problem = name_problem(name)
    if problem:
        raise ValueError(f"{field}: {problem}")


def _check_spec(spec: ServiceSpec) -> None:
    try:
        validate_spec(spec)
    except SpecError as exc:
        raise ValueError(f"spec.{exc}") from None


class CreateService(_Request):
    spec: ServiceSpec
    # The client's id of this create, the same on its retries ("": none; orion/fsm/tombstones.py).
    request_id: Annotated[str, msgspec.Meta(max_length=64)] = ""

    def __post_init__(self) -> None:
        _check_spec(self.spec)


class UpdateService(_Request):
    """Replace a service's spec; ``expected_version`` != 0: only if it is still at that version."""

    spec: ServiceSpec
    expected_version: Annotated[int, msgspec.Meta(ge=0)] = 0

    def __post_init__(self) -> None:
        _check_spec(self.spec)


class _Named(_Request):
    name: ServiceName

    def __post_init__(self) -> None:
        _check_name(self.name)


class ScaleService(_Named):
    replicas: int  # range checked by the FSM, so a negative count is named as such
    expected_version: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: whatever the version

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.replicas < 0:
            raise ValueError("replicas: must be >= 0")


class RollbackService(_Named):
    expected_version: Annotated[int, msgspec.Meta(ge=0)] = 0


class PauseService(_Named):
    pass


class ResumeService(_Named):
    pass


class RemoveService(_Named):
    expected_version: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: whatever the version


class GetService(_Named):
    pass


class ServiceTasks(_Named):
    pass


class ListServices(_Request):
    pass


# ------------------------------------------------------------------------- volumes
# Specs are checked on decode by orion.volumes.spec (the FSM checks them again): "spec.driver: ...".


def _check_mounts(mounts: list[VolumeMount], field: str) -> None:
    try:
        validate_mounts(mounts, field)
    except VolumeSpecError as exc:
        raise ValueError(str(exc)) from None


class CreateVolume(_Request):
    spec: VolumeSpec

    def __post_init__(self) -> None:
        try:
            validate_volume_spec(self.spec)
        except VolumeSpecError as exc:
            raise ValueError(f"spec.{exc}") from None


class _VolumeNamed(_Request):
    name: Annotated[str, msgspec.Meta(max_length=63)]


class RemoveVolume(_VolumeNamed):
    pass


class GetVolume(_VolumeNamed):
    pass


class ListVolumes(_Request):
    pass


class VolumeInfo(msgspec.Struct, kw_only=True, frozen=True):
    """A volume and the tasks (not Stopped or Failed) that mount it."""

    volume: Volume
    users: list[str] = []  # task names


# ------------------------------------------------------------------------- streams
# Logs and events are streamed over request/reply: the client asks for the next chunk after a
# cursor, and a node with nothing new holds the request up to ``wait`` seconds (a long poll).
# Cursors are plain values, so any retry, reconnection or other node resumes from them.

MAX_LOG_CHUNK = 1024 * 1024
LogCursor = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^([0-9]{1,20}:[0-9]{1,9})?$")]
Wait = Annotated[float, msgspec.Meta(ge=0.0, le=30.0)]


class TaskLogs(_Request):
    """``orion task logs``: the container output of a task after ``cursor`` ("" = the start;
    with ``tail`` only its last lines, with ``since`` (Unix seconds) only lines from then on),
    at most about ``max_bytes``, read on the node that runs the task. ``wait`` > 0: with
    nothing new and the container running, hold the request up to that long (follow)."""

    id: TaskRef
    cursor: LogCursor = ""
    tail: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] | None = None
    since: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    max_bytes: Annotated[int, msgspec.Meta(ge=1024, le=MAX_LOG_CHUNK)] = 64 * 1024
    wait: Wait = 0.0


class LogChunk(msgspec.Struct, kw_only=True, frozen=True):
    """``text``: whole lines (UTF-8, undecodable bytes replaced); ``cursor``: ask with it for
    what follows; ``running``: the container still runs, so more may come; ``node``: where
    it was read."""

    text: str = ""
    cursor: str = ""
    running: bool = False
    node: str = ""


class Events(_Request):
    """``orion events``: events after Raft index ``since`` (None: all this node still keeps),
    only of ``types`` (task, node, service; empty: all). ``wait`` > 0: with none yet, hold the
    request up to that long (follow). Answers an EventPage (orion/fsm/events.py)."""

    since: Annotated[int, msgspec.Meta(ge=0)] | None = None
    types: Annotated[list[str], msgspec.Meta(max_length=3)] = []
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    wait: Wait = 0.0

    def __post_init__(self) -> None:
        for kind in self.types:
            if kind not in EVENT_TYPES:
                raise ValueError(f"types: unknown event type {kind!r} (expected {', '.join(EVENT_TYPES)})")


Request = (
    SubmitTask
    | ListTasks
    | GetTask
    | StopTask
    | RemoveTask
    | ListNodes
    | DrainNode
    | SetNodeEligibility
    | RaftStatus
    | BlockPeers
    | CreateService
    | UpdateService
    | ScaleService
    | RollbackService
    | PauseService
    | ResumeService
    | RemoveService
    | ListServices
    | GetService
    | ServiceTasks
    | TaskLogs
    | Events
    | CreateVolume
    | RemoveVolume
    | GetVolume
    | ListVolumes
)
WRITE_REQUESTS = (
    SubmitTask,
    StopTask,
    RemoveTask,
    CreateService,
    UpdateService,
    ScaleService,
    RollbackService,
    PauseService,
    ResumeService,
    RemoveService,
    DrainNode,
    SetNodeEligibility,
    CreateVolume,
    RemoveVolume,
)

# ------------------------------------------------------------------------- results


class Suffrage(StrEnum):
    VOTER = "voter"
    NONVOTER = "nonvoter"
    NONE = "none"  # not in the Raft configuration (yet, or any more)


UNKNOWN = "unknown"  # a status or role the answering node cannot tell (it never heard of that member)


class DrainInfo(msgspec.Struct, kw_only=True, frozen=True):
    """A node's drain: since when, its deadline (None: none), the tasks still live on it
    (0: drained)."""

    started_at: float
    deadline: float | None = None
    remaining: int = 0


class NodeInfo(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    address: str = ""
    status: str = NodeStatus.ALIVE  # a NodeStatus, or UNKNOWN
    role: str = RaftRole.FOLLOWER  # Raft role as this node last saw it, or UNKNOWN
    suffrage: str = Suffrage.NONE
    meta: NodeMeta | None = None
    allocated_memory: int = 0
    allocated_cpu: float = 0.0
    allocated_disk: int = 0
    eligible: bool = True  # takes new placements (``orion node eligibility``; False while draining)
    drain: DrainInfo | None = None
    subnet: str = ""  # its /24 of the overlay's cluster CIDR ("" none: orion/network)


class RaftInfo(msgspec.Struct, kw_only=True, frozen=True):
    node_id: str
    role: str
    term: int
    leader_id: str | None = None
    commit_index: int = 0
    applied_index: int = 0
    last_index: int = 0
    voters: list[str] = []
    non_voters: list[str] = []


RESULT_TYPES: dict[type, Any] = {
    TaskLogs: LogChunk,
    Events: EventPage,
    SubmitTask: Task,
    GetTask: Task,
    StopTask: Task,
    RemoveTask: Task,  # the task as it was removed
    ListTasks: list[Task],
    ListNodes: list[NodeInfo],
    DrainNode: NodeInfo,
    SetNodeEligibility: NodeInfo,
    RaftStatus: RaftInfo,
    BlockPeers: list[str],
    CreateService: Service,
    UpdateService: Service,
    ScaleService: Service,
    RollbackService: Service,
    PauseService: Service,
    ResumeService: Service,
    RemoveService: Service,  # the service as it was removed
    GetService: Service,
    ListServices: list[Service],
    ServiceTasks: list[Task],
    CreateVolume: Volume,
    RemoveVolume: Volume,  # the volume as it was removed (or is being removed)
    GetVolume: VolumeInfo,
    ListVolumes: list[VolumeInfo],
}

# ------------------------------------------------------------------------- replies


class ApiError(msgspec.Struct, frozen=True):
    code: str
    message: str


class Reply(msgspec.Struct, frozen=True):
    ok: bool
    result: Any = None
    error: ApiError | None = None

    @classmethod
    def success(cls, result: Any) -> Reply:
        return cls(ok=True, result=result)

    @classmethod
    def failure(cls, code: str, message: str) -> Reply:
        return cls(ok=False, error=ApiError(code=str(code), message=message))


class Refused(Exception):
    """A read that answers with an error other than not-found (e.g. ``invalid``: an ambiguous
    task id prefix); the node's query runner turns it into that reply."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RequestError(ValueError):
    """A request that failed validation; ``field`` is its path, e.g. "memory" or "port_bindings"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason

    def reply(self) -> Reply:
        return Reply.failure(ErrorCode.INVALID, str(self))


# ------------------------------------------------------------------------- codecs

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(Request)
_reply_decoder = msgspec.msgpack.Decoder(Reply)
_AT_PATH = re.compile(r"^(?P<reason>.*) - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_PATTERN = re.compile(r"^Expected `str` matching regex '(?P<pattern>.*)'$", re.DOTALL | re.IGNORECASE)
_BOUND = re.compile(r"^Expected `\w+` (?P<op>>=|<=|>|<) (?P<value>\S+)$")
_LENGTH = re.compile(r"^Expected `(?P<kind>\w+)` of length (?P<op>>=|<=) (?P<value>\d+)$")
_FIELD_PREFIX = re.compile(r"^(?P<field>[a-z_][a-z_.]*): (?P<reason>.*)$", re.DOTALL)


def request_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> RequestError:
    """Turn msgspec's message ("Expected `int` >= 0 - at `$.memory`") into field and reason."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return RequestError("", f"malformed request: {text}")
    field, reason = "", text
    match = _AT_PATH.match(text)
    if match:
        field = match.group("path").lstrip(".").replace("[...]", "")
        reason = match.group("reason")
        if match.group("key"):
            reason = f"key {reason[0].lower()}{reason[1:]}"
    elif (prefixed := _FIELD_PREFIX.match(text)) is not None:  # raised by __post_init__
        field, reason = prefixed.group("field"), prefixed.group("reason")
    if (bound := _BOUND.match(reason)) is not None:
        reason = f"must be {bound.group('op')} {bound.group('value')}"
    elif (length := _LENGTH.match(reason)) is not None:
        if length.group("op") == ">=" and length.group("value") == "1":
            reason = "must not be empty"
        else:
            reason = f"length must be {length.group('op')} {length.group('value')}"
    elif (missing := _MISSING.match(reason)) is not None:
        field = f"{field}.{missing.group('field')}" if field else missing.group("field")
        reason = "is required"
    elif (pattern := _PATTERN.match(reason.removeprefix("key "))) is not None:
        what = "key" if reason.startswith("key ") else "value"
        reason = f"{what} does not match {pattern.group('pattern')!r}"
    elif reason.startswith("Object contains unknown field"):
        unknown = reason.split("`")[1]
        field = f"{field}.{unknown}" if field else unknown
        reason = "unknown field"
    elif field == "command" and reason.endswith("got `str`"):
        # "sleep 100" would otherwise run as a program named "sleep 100" (or, split by a
        # client into characters, as "s l e e p ..."): refused, never shell-parsed.
        reason = 'must be a list of arguments like ["sleep", "100"], not a string (no shell parsing)'
    return RequestError(field, reason)


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def encode_request(request: Request) -> bytes:
    return _encoder.encode(request)


def decode_request(buf: bytes, max_size: int = MAX_REQUEST) -> Request:
    """Decode and validate a request; RequestError (naming the field) on any bad input."""
    try:
        return bounded_decode(_request_decoder, buf, max_size, "request")
    except TooLarge:
        raise RequestError("", f"request too large: {len(buf)} bytes > {max_size}") from None
    except msgspec.DecodeError as exc:  # ValidationError too
        raise request_error(exc) from None


# msgspec caches how to convert into a Struct class, not into a union of them: converting into
# Request built that anew on every call (32 us of the Python client's 39 us per submit, 4 us
# into SubmitTask itself). A known op goes straight to its class; anything else to the union,
# whose errors name what is wrong with the op.
_REQUEST_TYPES: dict[str, type[Any]] = {cls.__struct_config__.tag: cls for cls in get_args(Request)}


def validate_request(obj: Any) -> Request:
    """Validate builtins (e.g. parsed JSON with an ``op`` key) into a Request."""
    op = obj.get("op") if isinstance(obj, dict) else None
    target = _REQUEST_TYPES.get(op, Request) if isinstance(op, str) else Request
    try:
        return msgspec.convert(obj, target)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise request_error(exc) from None


def encode_reply(reply: Reply) -> bytes:
    return _encoder.encode(reply)


def decode_reply(buf: bytes) -> Reply:
    return bounded_decode(_reply_decoder, buf, MAX_REPLY, "reply")


SPEC_FIELDS = (
    "name",
    "image",
    "memory",
    "cpu",
    "disk",
    "node_selectors",
    "port_bindings",
    "command",
    "env",
    "restart",
)


_SPEC_BUT_NAME = operator.attrgetter(*SPEC_FIELDS[1:])  # a tuple of the values, made in C


def submit_conflict(request: SubmitTask, task: Task) -> list[str]:
    """The spec fields in which an existing task differs from a submit with its id.

    A retried submit (same id, same spec) returns the existing task: that is how client
    retries avoid duplicates. The same id with another spec is a different task, refused
    as a conflict instead of silently answered with the old one. The FSM keeps the first
    submit; the API edges compare its answer with the request (``checked_reply``).
    """
    if task.name == task_name(request.name, request.id) and _SPEC_BUT_NAME(task) == _SPEC_BUT_NAME(request):
        return []  # the usual answer (the task this submit created), without a field-by-field walk
    differs = []
    for name in SPEC_FIELDS:
        wanted = getattr(request, name)
        if name == "name":
            wanted = task_name(wanted, request.id)  # as the node names a task submitted without one
        if getattr(task, name) != wanted:
            differs.append(name)
    return differs


def checked_reply(request: Request, reply: Reply) -> Reply:
    """``reply`` to ``request``, or a ``conflict`` when a submit got back another spec's task."""
    if not isinstance(request, SubmitTask) or not reply.ok or reply.result is None:
        return reply
    try:
        task = typed_result(request, reply.result)
    except msgspec.ValidationError:
        return reply  # malformed results are reported where they are read
    differs = submit_conflict(request, task)
    if not differs:
        return reply
    return Reply.failure(
        ErrorCode.CONFLICT,
        f"task {request.id} already exists with a different {', '.join(differs)}: "
        f"submit under a new id, or remove the old task first (orion task rm {request.id})",
    )


def typed_result(request: Request, result: Any) -> Any:
    """The reply's result as the record type the request returns (Task, list[NodeInfo], ...).

    Results that crossed the wire arrive as plain maps; results handed over in-process are
    already records. Both come out typed.
    """
    target = RESULT_TYPES[type(request)]
    if result is None or (isinstance(target, type) and isinstance(result, target)):
        return result
    return msgspec.convert(msgspec.to_builtins(result), target)
