"""The FSM's accounting of host ports: which tasks hold ports on which node.

The truth is in the task records (``host_ports`` of an active task, ``port_holds`` of any
task), so snapshots need nothing more; this index is derived from them, rebuilt on restore,
and lets the scheduler read a node's claims without walking every task. Pure and
deterministic, like the state it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from orion.fsm.tables import NodeRecord
from orion.model import ACTIVE_STATES, PortClaim, Task
from orion.scheduler.ports import (
    FOREIGN_BLOCK_S,
    PortBook,
    claims_of,
    describe_claim,
    overlap,
    port_requests,
    port_space,
)

MAX_PORT_HOLDS = 32  # per task: a task that keeps hitting taken ports forgets its oldest blocks


def holds_active_ports(task: Task) -> bool:
    return bool(task.host_ports) and task.state in ACTIVE_STATES and bool(task.node_id)


def frees_ports(old: Task, new: Task) -> bool:
    """True when the change from ``old`` to ``new`` gives up a port claim (the scheduler then
    judges the tasks that waited for a port again)."""
    if holds_active_ports(old) and (
        not holds_active_ports(new)
        or (new.node_id, new.host_ip, new.host_ports) != (old.node_id, old.host_ip, old.host_ports)
    ):
        return True
    return any(hold not in new.port_holds for hold in old.port_holds)


def has_claims(task: Task) -> bool:
    return holds_active_ports(task) or bool(task.port_holds)


def with_ports_held(task: Task) -> list[PortClaim]:
    """The task's holds once it leaves its node while its container may still be up."""
    if not holds_active_ports(task):
        return list(task.port_holds)
    held = [msgspec.structs.replace(claim, kind="held") for claim in claims_of(task)]
    return [*task.port_holds, *(claim for claim in held if claim not in task.port_holds)]


def with_foreign_block(task: Task, node_id: str, host_ip: str, port: int, at: float) -> list[PortClaim]:
    """The task's holds plus a block of ``port`` (every protocol it was given on that port)
    where Docker refused it; lapsed blocks are dropped, and the oldest beyond the cap."""
    protocols = sorted(
        {cp.partition("/")[2] or "tcp" for cp, given in task.host_ports.items() if given == port}
    ) or ["tcp"]
    kept = [hold for hold in task.port_holds if hold.kind != "foreign" or hold.until > at]
    for protocol in protocols:
        kept.append(
            PortClaim(
                host_ip=host_ip or task.host_ip,
                port=port,
                protocol=protocol,
                node_id=node_id,
                task_id=task.id,
                kind="foreign",
                until=at + FOREIGN_BLOCK_S,
            )
        )
    return kept[-MAX_PORT_HOLDS:]


def without_held(task: Task, node_id: str) -> list[PortClaim]:
    return [hold for hold in task.port_holds if not (hold.kind == "held" and hold.node_id == node_id)]


def assigned_ports(
    task: Task, node: NodeRecord, chosen: Mapping[str, int], book: PortBook | IndexedBook
) -> tuple[dict[str, int] | None, str]:
    """The host ports a placement gives ``task`` on ``node``: its static bindings, and for the
    dynamic ones what the scheduler ``chosen``; (None, why) when one is missing, out of range
    or collides with a port already held on that host."""
    ports: dict[str, int] = {}
    space, host_ip = port_space(node.meta), node.meta.host_ip
    for request in port_requests(task):
        port = request.port or chosen.get(request.container_port, 0)
        if not 1 <= port <= 65535:
            return None, f"no host port for {request.container_port}"
        if port in {p for cp, p in ports.items() if (cp.partition("/")[2] or "tcp") == request.protocol}:
            return None, f"host port {port}/{request.protocol} given twice"
        blocker = book.conflict(space, host_ip, port, request.protocol)
        if blocker is not None:
            return None, describe_claim(blocker)
        ports[request.container_port] = port
    return ports, ""


class PortIndex:
    """Node id -> ids of tasks with claims there (active ports, or holds), in first-claim order;
    and (port, protocol) -> ids of tasks claiming it anywhere, so a placement is checked in
    time proportional to the claims on its ports, not to every task with a port."""

    def __init__(self) -> None:
        self._active: dict[str, dict[str, None]] = {}
        self._holds: dict[str, dict[str, None]] = {}
        self._by_port: dict[tuple[int, str], dict[str, None]] = {}
        # Bumped whenever a claim is given up: the scheduler re-judges tasks waiting for ports
        # when it moves (derived like the index: a new leader judges every pending task anyway).
        self.releases = 0

    def clear(self) -> None:
        self._active.clear()
        self._holds.clear()
        self._by_port.clear()

    def add(self, task: Task) -> None:
        if holds_active_ports(task):
            self._active.setdefault(task.node_id, {})[task.id] = None
            for claim in claims_of(task):
                self._by_port.setdefault((claim.port, claim.protocol), {})[task.id] = None
        for hold in task.port_holds:
            self._holds.setdefault(hold.node_id, {})[task.id] = None
            self._by_port.setdefault((hold.port, hold.protocol), {})[task.id] = None

    def remove(self, task: Task) -> None:
        if holds_active_ports(task):
            _discard(self._active, task.node_id, task.id)
            for claim in claims_of(task):
                _discard(self._by_port, (claim.port, claim.protocol), task.id)
        for hold in task.port_holds:
            _discard(self._holds, hold.node_id, task.id)
            _discard(self._by_port, (hold.port, hold.protocol), task.id)

    def conflict(
        self,
        space: str,
        host_ip: str,
        port: int,
        protocol: str,
        nodes: Mapping[str, NodeRecord],
        tasks: Mapping[str, Task],
    ) -> PortClaim | None:
        """The first active or held claim (foreign blocks are the scheduler's advice, not a
        rule of the state) that makes ``host_ip:port/protocol`` unusable in ``space``."""
        for task_id in self._by_port.get((port, protocol), ()):
            task = tasks[task_id]
            claims = claims_of(task) if holds_active_ports(task) else []
            for claim in (*claims, *task.port_holds):
                if claim.kind == "foreign" or claim.port != port or claim.protocol != protocol:
                    continue
                node = nodes.get(claim.node_id)
                if node is not None and port_space(node.meta) == space and overlap(claim.host_ip, host_ip):
                    return claim
        return None

    def claims(self, node_id: str, tasks: Mapping[str, Task]) -> list[PortClaim]:
        """Every claim on ``node_id``: its active tasks' ports, then ports held or blocked there."""
        found: list[PortClaim] = []
        for task_id in self._active.get(node_id, ()):
            found.extend(claims_of(tasks[task_id]))
        for task_id in self._holds.get(node_id, ()):
            found.extend(hold for hold in tasks[task_id].port_holds if hold.node_id == node_id)
        # The index's order depends on history (a restored replica rebuilds it in snapshot
        # order): sort, so every replica hands the scheduler the same list.
        found.sort(key=_claim_order)
        return found

    def held_task_ids(self, node_id: str, tasks: Mapping[str, Task]) -> list[str]:
        """Tasks whose ports are held on ``node_id`` until its container is seen gone."""
        return sorted(
            task_id
            for task_id in self._holds.get(node_id, ())
            if any(h.kind == "held" and h.node_id == node_id for h in tasks[task_id].port_holds)
        )

    def placement_book(self, nodes: Mapping[str, NodeRecord], tasks: Mapping[str, Task]) -> IndexedBook:
        """What one AssignTasks batch checks its placements against."""
        return IndexedBook(self, nodes, tasks)


class IndexedBook:
    """The state's claims read through the index, plus the ports a batch has given so far:
    the ``conflict``/``claim`` part of a PortBook without building one from every task."""

    def __init__(self, index: PortIndex, nodes: Mapping[str, NodeRecord], tasks: Mapping[str, Task]) -> None:
        self._index = index
        self._nodes = nodes
        self._tasks = tasks
        self._batch = PortBook()

    def conflict(self, space: str, host_ip: str, port: int, protocol: str) -> PortClaim | None:
        return self._batch.conflict(space, host_ip, port, protocol) or self._index.conflict(
            space, host_ip, port, protocol, self._nodes, self._tasks
        )

    def claim(self, space: str, host_ip: str, node_id: str, task_id: str, ports: Mapping[str, int]) -> None:
        self._batch.claim(space, host_ip, node_id, task_id, ports)


def _claim_order(claim: PortClaim) -> tuple[int, str, str, str, str, float]:
    return claim.port, claim.protocol, claim.host_ip, claim.kind, claim.task_id, claim.until


def _discard(index: dict[Any, dict[str, None]], key: Any, task_id: str) -> None:
    entries = index.get(key)
    if entries is not None:
        entries.pop(task_id, None)
        if not entries:
            del index[key]
