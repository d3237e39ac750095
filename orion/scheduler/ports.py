"""Host ports as a scheduled resource (Nomad's network feasibility check, for Docker's ``-p``).

A task's ``port_bindings`` ask for host ports: ``{"80/tcp": "8080"}`` is static; ``"0"`` is
dynamic, and the scheduler picks a port from the leader's ``[scheduler] dynamic_ports`` range.
The pick is the lowest free port, not a random one, so the plan is a pure function of the
replicated state and replays to the same ports; the chosen ports travel in the ``AssignTasks``
command and become the task's ``host_ports``.

What is taken comes from the replicated state (DESIGN rule 7), as ``PortClaim`` values:

- ``task``: a Scheduled or Running task's ports on its node;
- ``held``: a task that left its node (stopped by a user, moved off a dead node) while its
  container may still be bound keeps its ports there until a node that can see that
  container reports it gone (``ReleasePorts``): a node killed with ``kill -9`` leaves its
  containers running, and on a shared engine they still hold their ports;
- ``foreign``: Docker refused a start because something Orion does not know holds the port;
  the port is then taken on that host for ``FOREIGN_BLOCK_S`` seconds, after which the
  scheduler tries again (a foreign process may end; nothing tells the cluster when). The
  block covers every node of that engine, not just the one that hit it: they share the port,
  so the task is not walked through each of them only to fail the same way.

The claims live in the task records (``host_ports`` and ``host_ip`` of an active task, its
``port_holds`` otherwise), so snapshots carry them; orion/fsm/port_index.py indexes them by
node. A task record removed (``task rm``, garbage collection) takes its holds with it: a port
still bound then shows up as a start refused, and the block above covers it.

Port spaces: host ports belong to the network namespace of the Docker engine that publishes
them, not to the node process. Each node reports a ``port_space`` in its metadata, derived
from its Docker engine's ID (``docker info``), so nodes that drive one engine (the demo and the
tests: three nodes, one engine, all on 127.0.0.1) share one set of host ports, and a port used
by a task of node1 is taken for node2 too. Within a space two claims collide when they have the
same port and protocol and the same host address, or either address is a wildcard (0.0.0.0,
``::``): Docker refuses those binds as well. A node that reports no port space (an older
version, or no engine at start) is keyed by its advertise address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from orion.model import NodeMeta, PortClaim, Task

FOREIGN_BLOCK_S = 30.0  # how long a port Docker refused stays taken before the scheduler retries it
DEFAULT_DYNAMIC_PORTS = (20000, 32000)
WILDCARD_IPS = frozenset({"", "0.0.0.0", "::"})  # "" is a node that did not say: assume the worst


def describe_claim(claim: PortClaim) -> str:
    """Why a node is filtered out by this claim, for ``task inspect``."""
    port = f"port {claim.port}/{claim.protocol}"
    if claim.kind == "held":
        return f"{port} in use on {claim.node_id} (container not yet removed)"
    if claim.kind == "foreign":
        return f"{port} in use outside Orion on {claim.host_ip or '*'} (seen by {claim.node_id})"
    return f"{port} in use on {claim.node_id}"


class PortRequest(NamedTuple):
    """One binding a task asks for: ``container_port`` "80/tcp", host ``port`` 0 when dynamic."""

    container_port: str
    protocol: str
    port: int


class NoFreePort(NamedTuple):
    """Every port of the dynamic range is taken on a node."""

    protocol: str
    low: int
    high: int

    def describe(self) -> str:
        return f"no free dynamic port {self.low}-{self.high}/{self.protocol}"


Blocker = PortClaim | NoFreePort


def describe_blocker(blocker: Blocker) -> str:
    return blocker.describe() if isinstance(blocker, NoFreePort) else describe_claim(blocker)


def parse_port_range(text: str, field: str = "dynamic_ports") -> tuple[int, int]:
    """``"20000-32000"`` -> (20000, 32000); ValueError naming ``field`` otherwise."""
    low, sep, high = text.partition("-")
    if sep and low.strip().isdigit() and high.strip().isdigit():
        first, last = int(low), int(high)
        if 1 <= first <= last <= 65535:
            return first, last
    raise ValueError(f"{field}: expected 'LOW-HIGH' with 1 <= LOW <= HIGH <= 65535, got {text!r}")


def host_port_number(host: str) -> int:
    """The port of a binding's host side: "8080" -> 8080, "" or "0" -> 0 (dynamic); an
    "ip:port" form (accepted by the worker) counts by its port."""
    port = str(host).rpartition(":")[2].strip()
    return int(port) if port else 0


def port_requests(task: Task) -> list[PortRequest]:
    requests = []
    for container_port, host in task.port_bindings.items():
        protocol = container_port.partition("/")[2] or "tcp"
        requests.append(PortRequest(container_port, protocol, host_port_number(host)))
    return requests


def port_space(meta: NodeMeta) -> str:
    return meta.port_space or f"address:{meta.address}"


def claims_of(task: Task) -> list[PortClaim]:
    """The claims of a task's assigned host ports (``host_ports``) on its node."""
    claims = []
    for container_port, port in task.host_ports.items():
        protocol = container_port.partition("/")[2] or "tcp"
        claims.append(
            PortClaim(
                host_ip=task.host_ip, port=port, protocol=protocol, node_id=task.node_id, task_id=task.id
            )
        )
    return claims


def overlap(a: str, b: str) -> bool:
    """Two host addresses collide: the same one, or either is a wildcard."""
    return a == b or a in WILDCARD_IPS or b in WILDCARD_IPS


class PortBook:
    """Claims grouped by port space: conflict checks and dynamic picks for one batch.

    Claims are only added while a book lives (a batch never frees ports), which is what lets
    ``lowest_free`` remember how far up the range is already full.
    """

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._claims: dict[str, dict[tuple[int, str], list[PortClaim]]] = {}
        self._floor: dict[tuple[str, str, str], int] = {}  # (space, ip, protocol) -> lowest maybe-free

    def add(self, space: str, claim: PortClaim) -> None:
        if claim.kind == "foreign" and claim.until <= self.now:
            return  # lapsed: the scheduler may try that port again
        self._claims.setdefault(space, {}).setdefault((claim.port, claim.protocol), []).append(claim)

    def add_all(self, space: str, claims: Iterable[PortClaim]) -> None:
        for claim in claims:
            self.add(space, claim)

    def conflict(self, space: str, host_ip: str, port: int, protocol: str) -> PortClaim | None:
        """The first claim that makes ``host_ip:port/protocol`` unusable in ``space``."""
        by_port = self._claims.get(space)
        if not by_port:
            return None
        for claim in by_port.get((port, protocol), ()):
            if overlap(claim.host_ip, host_ip):
                return claim
        return None

    def lowest_free(
        self, space: str, host_ip: str, protocol: str, low: int, high: int, skip: Iterable[int] = ()
    ) -> int | None:
        """The lowest port of ``low..high`` free in ``space`` and not in ``skip`` (the ports
        already chosen for the same task), or None when the range is full."""
        key = (space, host_ip, protocol)
        port = max(low, self._floor.get(key, low))
        skipped = set(skip)
        floor_found = False
        while port <= high:
            if self.conflict(space, host_ip, port, protocol) is None:
                if not floor_found:
                    self._floor[key] = port
                    floor_found = True
                if port not in skipped:
                    return port
            port += 1
        if not floor_found:
            self._floor[key] = high + 1
        return None

    def fit(
        self, space: str, host_ip: str, requests: list[PortRequest], dynamic: tuple[int, int]
    ) -> tuple[dict[str, int] | None, Blocker | None]:
        """Host ports for every request on a node of ``space`` publishing on ``host_ip``:
        (ports, None), or (None, what blocks the first request that cannot be met)."""
        chosen: dict[str, int] = {}
        taken: dict[str, set[int]] = {}  # protocol -> ports this task already uses
        for request in requests:
            if request.port:
                blocker = self.conflict(space, host_ip, request.port, request.protocol)
                if blocker is not None:
                    return None, blocker
                chosen[request.container_port] = request.port
                taken.setdefault(request.protocol, set()).add(request.port)
        for request in requests:
            if not request.port:
                used = taken.setdefault(request.protocol, set())
                port = self.lowest_free(space, host_ip, request.protocol, dynamic[0], dynamic[1], used)
                if port is None:
                    return None, NoFreePort(request.protocol, dynamic[0], dynamic[1])
                chosen[request.container_port] = port
                used.add(port)
        return chosen, None

    def claim(self, space: str, host_ip: str, node_id: str, task_id: str, ports: Mapping[str, int]) -> None:
        """Record a placement, so the next task of the batch sees these ports taken."""
        for container_port, port in ports.items():
            protocol = container_port.partition("/")[2] or "tcp"
            self.add(
                space,
                PortClaim(host_ip=host_ip, port=port, protocol=protocol, node_id=node_id, task_id=task_id),
            )


class PortMarks(NamedTuple):
    """What the leader's scheduler remembers about ports between rounds, to know when tasks
    that waited for a port are worth judging again: the FSM's count of given-up claims, and
    the earliest time a foreign block lapses."""

    releases: int = 0
    unblock_at: float = float("inf")

    @staticmethod
    def read(releases: int, unblocks: Iterable[float], now: float) -> PortMarks:
        return PortMarks(releases, min((until for until in unblocks if until > now), default=float("inf")))

    def freed_since(self, current: PortMarks, now: float) -> bool:
        """True when a port claim was given up or a block lapsed since these marks."""
        return current.releases > self.releases or now >= self.unblock_at

    def merge(self, current: PortMarks) -> PortMarks:
        """The marks that cover tasks judged against either (the earlier count, the sooner lapse)."""
        return PortMarks(min(self.releases, current.releases), min(self.unblock_at, current.unblock_at))
