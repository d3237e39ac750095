"""What the ingress should route, and what HAProxy must be told to route it (pure).

The routing table maps each published port to the endpoints (``host_ip:host_port`` of a task's
target port) HAProxy sends its connections to. An endpoint is ``ready`` (takes new connections)
when its task is available (Running, healthy or without a check, not draining) and ``drain``
(keeps the connections it has, takes no new ones) while it is being stopped; any other task is
no endpoint at all.

HAProxy holds one backend per published port with numbered server slots (``s1``, ``s2``, ...).
``plan_changes`` compares the table with the slots HAProxy reports (``show servers state``) and
returns runtime API commands: a slot is pointed at an endpoint with ``set server ... addr``, its
state set to ready, drain or maint (unused); more slots are added with ``add server`` when a
backend runs out. Only a change in the set of published ports needs a reload (a new or removed
listener), which ``plan_changes`` reports instead of commands for those ports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from orion.model import Desired, Health, Task, TaskState
from orion.services.spec import Service

UNSET_ADDRESS = ("127.0.0.1", 1)  # where an unused slot points (it is in maint: never used)

# ``srv_admin_state`` bits of ``show servers state`` (HAProxy's SRV_ADMF_*).
_ADMIN_FORCED_MAINT = 0x01
_ADMIN_INHERITED_MAINT = 0x02
_ADMIN_FORCED_DRAIN = 0x08
_ADMIN_INHERITED_DRAIN = 0x10
_ADMIN_RESOLUTION_MAINT = 0x20
_ADMIN_HOSTNAME_MAINT = 0x40
_ADMIN_MAINT = _ADMIN_FORCED_MAINT | _ADMIN_INHERITED_MAINT | _ADMIN_RESOLUTION_MAINT | _ADMIN_HOSTNAME_MAINT
_ADMIN_DRAIN = _ADMIN_FORCED_DRAIN | _ADMIN_INHERITED_DRAIN


class Mode(StrEnum):
    """A server slot's state, in HAProxy's words (``set server ... state``)."""

    READY = "ready"  # takes new connections
    DRAIN = "drain"  # keeps its connections, takes no new ones
    MAINT = "maint"  # unused slot (connections it still carries go on until they close)


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    address: str
    port: int
    mode: Mode = Mode.READY

    @property
    def key(self) -> tuple[str, int]:
        return (self.address, self.port)


RoutingTable = dict[int, tuple[Endpoint, ...]]  # published port -> its endpoints, sorted


@dataclass(frozen=True, slots=True)
class ServerSlot:
    """One server of a backend as HAProxy reports it."""

    name: str  # "s3"
    address: str
    port: int
    mode: Mode

    @property
    def number(self) -> int:
        return slot_number(self.name)


@dataclass(slots=True)
class Changes:
    commands: list[str] = field(default_factory=list)
    # The published ports HAProxy listens on differ from the table's: its configuration must
    # be rendered again and reloaded (the commands cover the ports both have meanwhile).
    needs_reload: bool = False


def backend_name(published: int) -> str:
    return f"port_{published}"


def slot_name(number: int) -> str:
    return f"s{number}"


def slot_number(name: str) -> int:
    return int(name[1:]) if name[:1] == "s" and name[1:].isdigit() else 0


def published_from_backend(name: str) -> int | None:
    prefix, _, port = name.partition("_")
    return int(port) if prefix == "port" and port.isdigit() else None


# ------------------------------------------------------------------------------ the table


def endpoint_mode(task: Task) -> Mode | None:
    """How the ingress treats a task: READY when available, DRAIN while the controller takes it
    out (or it is being stopped) and its container may still serve what it has, None otherwise
    (not running, not yet healthy, unhealthy)."""
    if task.state != TaskState.RUNNING:
        return None
    if task.drain_at > 0 or task.desired == Desired.STOP:
        return Mode.DRAIN
    if task.health_check is not None and task.health != Health.HEALTHY:
        return None
    return Mode.READY


def routing_table(
    services: Iterable[Service],
    tasks_of: Callable[[str], Iterable[Task]],
    node_address: Callable[[str], str] = lambda _node_id: "",
) -> RoutingTable:
    """The endpoints of every published port. ``node_address``: a node's advertise address, for
    tasks published on a wildcard host address ("" or 0.0.0.0), which other nodes reach there."""
    table: RoutingTable = {}
    for service in services:
        if not service.spec.ports:
            continue
        tasks = list(tasks_of(service.name))
        for service_port in service.spec.ports:
            found: dict[tuple[str, int], Endpoint] = {}
            port_key = f"{service_port.target}/{service_port.protocol}"
            for task in tasks:
                mode = endpoint_mode(task)
                host_port = task.host_ports.get(port_key)
                if mode is None or not host_port:
                    continue
                address = task.host_ip
                if address in ("", "0.0.0.0"):
                    address = node_address(task.node_id)
                if not address:
                    continue
                endpoint = Endpoint(address, host_port, mode)
                # Two tasks on one endpoint (a new one reusing a port an old one left): ready wins.
                if endpoint.key not in found or mode == Mode.READY:
                    found[endpoint.key] = endpoint
            table[service_port.published] = tuple(sorted(found.values()))
    return table


# ------------------------------------------------------------------------------ HAProxy's side


def parse_servers_state(text: str) -> dict[str, list[ServerSlot]]:
    """``show servers state``'s answer -> backend name -> its servers. The first line is the
    format version, the second the column names; columns are looked up by name."""
    lines = [line for line in text.splitlines() if line.strip()]
    columns: list[str] = []
    backends: dict[str, list[ServerSlot]] = {}
    for line in lines:
        if line.startswith("#"):
            columns = line[1:].split()
            continue
        if not columns:
            continue  # the format version
        values = line.split()
        if len(values) < len(columns):
            raise ValueError(f"show servers state: short line {line!r}")
        row = dict(zip(columns, values, strict=False))
        admin = int(row["srv_admin_state"])
        mode = Mode.MAINT if admin & _ADMIN_MAINT else Mode.DRAIN if admin & _ADMIN_DRAIN else Mode.READY
        port = int(row["srv_port"]) if row.get("srv_port", "-").isdigit() else 0
        slot = ServerSlot(row["srv_name"], row["srv_addr"], port, mode)
        backends.setdefault(row["be_name"], []).append(slot)
    return backends


def haproxy_table(servers: Mapping[str, Sequence[ServerSlot]]) -> dict[int, list[ServerSlot]]:
    """The ingress's backends among ``servers``, by published port."""
    table: dict[int, list[ServerSlot]] = {}
    for name, slots in servers.items():
        published = published_from_backend(name)
        if published is not None:
            table[published] = sorted(slots, key=lambda slot: slot.number)
    return table


# ------------------------------------------------------------------------------ the diff


def plan_changes(table: RoutingTable, current: Mapping[int, Sequence[ServerSlot]]) -> Changes:
    """The runtime API commands that bring HAProxy's slots (``current``, by published port) to
    ``table``. New endpoints come first and removals last, so a backend being swapped from old
    to new endpoints always has one taking connections."""
    changes = Changes(needs_reload=set(table) != set(current))
    enable: list[str] = []
    drain: list[str] = []
    remove: list[str] = []
    for published in sorted(table.keys() & current.keys()):
        add, to_drain, to_remove = _backend_changes(
            backend_name(published), table[published], current[published]
        )
        enable += add
        drain += to_drain
        remove += to_remove
    changes.commands = enable + drain + remove
    return changes


def _backend_changes(
    backend: str, endpoints: Sequence[Endpoint], slots: Sequence[ServerSlot]
) -> tuple[list[str], list[str], list[str]]:
    wanted = {endpoint.key: endpoint for endpoint in endpoints}
    holder: dict[tuple[str, int], ServerSlot] = {}
    # A slot already pointing at an endpoint keeps it; one not in maint is preferred if two do.
    for slot in sorted(slots, key=lambda s: (s.mode == Mode.MAINT, s.number)):
        key = (slot.address, slot.port)
        if key in wanted and key not in holder:
            holder[key] = slot
    held = {slot.name for slot in holder.values()}
    # Unused slots already in maint are filled first: repointing one that still serves an
    # endpoint no longer wanted would be a change too many.
    free = sorted(
        (slot for slot in slots if slot.name not in held), key=lambda s: (s.mode != Mode.MAINT, s.number)
    )
    enable: list[str] = []
    drain: list[str] = []
    next_number = max((slot.number for slot in slots), default=0) + 1
    for endpoint in endpoints:
        slot = holder.get(endpoint.key)
        if slot is not None:
            if slot.mode != endpoint.mode:
                target = enable if endpoint.mode == Mode.READY else drain
                target.append(_state(backend, slot.name, endpoint.mode))
            continue
        if endpoint.mode != Mode.READY:
            continue  # draining and not routed here: nothing to take away
        if free:
            name = free.pop(0).name
            enable.append(f"set server {backend}/{name} addr {endpoint.address} port {endpoint.port}")
        else:
            name = slot_name(next_number)
            next_number += 1
            enable.append(f"add server {backend}/{name} {endpoint.address}:{endpoint.port}")
        enable.append(_state(backend, name, Mode.READY))
    remove = [_state(backend, slot.name, Mode.MAINT) for slot in free if slot.mode != Mode.MAINT]
    return enable, drain, remove


def _state(backend: str, server: str, mode: Mode) -> str:
    return f"set server {backend}/{server} state {mode}"
