"""The overlay's part of the cluster state: each node's subnet and each task's overlay address.

Part of ``ClusterState`` (orion/fsm/state.py), kept apart for size. A node's subnet lives in its
``NodeRecord`` (so the nodes table of a snapshot carries it, and removing the node releases it);
a task's overlay address lives in the ``Task``. Deterministic: the lowest free subnet is chosen
by orion/network/ipam.py from what the state holds, never from a clock or the proposer's view.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from orion.fsm.commands import AllocateSubnet, CommandError, Refusal, ReleaseSubnet, ReportOverlayAddress
from orion.fsm.results import ApplyResult
from orion.fsm.tables import NodeRecord
from orion.model import ACTIVE_STATES, Desired, Task
from orion.network.ipam import IpamError, allocate, subnet_index


def allocate_subnet(nodes: dict[str, NodeRecord], cmd: AllocateSubnet) -> ApplyResult:
    """Apply ``AllocateSubnet`` to the nodes table (``nodes`` is changed in place)."""
    node = nodes.get(cmd.node_id)
    if node is None:
        return CommandError(Refusal.NOT_FOUND, f"no node with id {cmd.node_id}")
    try:
        if node.subnet and subnet_index(cmd.cluster_cidr, node.subnet) is not None:
            return node  # a repeated proposal: the node keeps its subnet
        taken = [other.subnet for other in nodes.values() if other.subnet and other.id != node.id]
        subnet = allocate(cmd.cluster_cidr, taken)
    except IpamError as exc:
        return CommandError(Refusal.CONFLICT if "no free" in str(exc) else Refusal.INVALID, str(exc))
    record = msgspec.structs.replace(node, subnet=subnet, updated_at=cmd.at)
    nodes[node.id] = record
    return record


def release_subnet(nodes: dict[str, NodeRecord], cmd: ReleaseSubnet) -> ApplyResult:
    """Apply ``ReleaseSubnet``: the node keeps its record, without a subnet."""
    node = nodes.get(cmd.node_id)
    if node is None:
        return CommandError(Refusal.NOT_FOUND, f"no node with id {cmd.node_id}")
    if not node.subnet:
        return node
    record = msgspec.structs.replace(node, subnet="", updated_at=cmd.at)
    nodes[node.id] = record
    return record


def report_overlay_address(
    tasks: Mapping[str, Task], cmd: ReportOverlayAddress, store: Callable[[Task, Task], None]
) -> ApplyResult:
    """Apply ``ReportOverlayAddress``: bookkeeping of the task (no history line, no new
    ``updated_at``), stored with ``store(old, new)``."""
    task = tasks.get(cmd.task_id)
    if task is None:
        return CommandError(Refusal.NOT_FOUND, f"no task with id {cmd.task_id}")
    if cmd.overlay_ip:
        try:
            ipaddress.IPv4Address(cmd.overlay_ip)
        except ValueError:
            return CommandError(Refusal.INVALID, f"overlay_ip: not an IPv4 address: {cmd.overlay_ip!r}")
    if task.node_id != cmd.node_id or task.state not in ACTIVE_STATES or task.desired != Desired.RUN:
        return CommandError(
            Refusal.INVALID,
            f"stale overlay address for task {task.id} from {cmd.node_id}: it is {task.state} "
            f"on {task.node_id or 'no node'}",
        )
    if task.overlay_ip == cmd.overlay_ip:
        return task
    new = msgspec.structs.replace(task, overlay_ip=cmd.overlay_ip)
    store(task, new)
    return new


def overlay_ip_after(task: Task, changes: dict[str, Any]) -> str:
    """A task's overlay address after ``changes``: an address belongs to one node's running
    container, so it goes when the task leaves that node or stops being Scheduled or Running."""
    node_id = changes.get("node_id", task.node_id)
    state = changes.get("state", task.state)
    return task.overlay_ip if node_id == task.node_id and state in ACTIVE_STATES else ""
