"""Why a task fits nowhere: every node counted once, under the first filter it fails.

The filters run in a fixed chain (alive, eligible, node selectors, a service's max per node,
memory, CPU, disk, host ports), so a dead node is counted as "not alive" even if it is also
full. The reason lists the resource shortages first because they are what a user can act on,
then taken ports (and a service's max per node), then selectors, then node health:
``0/4 nodes fit: 2 insufficient memory (need 100.0 GiB, largest free 15.9 GiB), 1 port
8080/tcp in use on node1, 1 not alive``. A port rejection names what
holds the port (see ``orion.scheduler.ports.describe_claim``); nodes sharing one Docker engine
are all rejected by the one task that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from orion.model import NodeMeta, Task
from orion.scheduler.fleet import CPU_DIGITS, Fleet, selector_key
from orion.scheduler.ports import describe_blocker, port_requests
from orion.scheduler.spread import SpreadGroup
from orion.units import format_size


@dataclass
class _Shortage:
    """Nodes rejected for one resource, and the most that any of them had free."""

    count: int
    largest_free: float


def _cores(value: float) -> str:
    return f"{max(value, 0.0):.1f} cores"


def _bytes(value: float) -> str:
    return format_size(max(value, 0))


def explain(fleet: Fleet, task: Task, group: SpreadGroup | None = None) -> str:
    """The pending reason for ``task`` against the fleet as it stands now (``group``: the
    task's service version, whose ``max_per_node`` rejects nodes before resources do).

    Health and selector rejections are counted once per batch by the fleet; only the resource
    check walks the candidates, in one tight loop, because it is redone for every task that
    fits nowhere.
    """
    selectors = selector_key(task)
    free_memory, free_cpu, free_disk = fleet.free_memory, fleet.free_cpu, fleet.free_disk
    need_memory, need_cpu, need_disk = task.memory, task.cpu, task.disk
    inf = float("inf")
    requests = port_requests(task)
    port_blocked: dict[str, int] = {}  # what holds the port -> nodes rejected for it
    fits = short_memory = short_cpu = short_disk = at_max = 0
    most_memory = most_cpu = most_disk = -inf  # the most any node rejected for it had free
    for i in fleet.candidates(selectors):
        if group is not None and not group.allows(i):
            at_max += 1
            continue
        free = free_memory[i]
        if free < need_memory:
            short_memory += 1
            most_memory = free if free > most_memory else most_memory
            continue
        free = free_cpu[i]
        if free < need_cpu:
            short_cpu += 1
            most_cpu = free if free > most_cpu else most_cpu
            continue
        free = free_disk[i]
        if free < need_disk:
            short_disk += 1
            most_disk = free if free > most_disk else most_disk
            continue
        if requests:
            _, blocker = fleet.fit_ports(i, requests)
            if blocker is not None:
                text = describe_blocker(blocker)
                port_blocked[text] = port_blocked.get(text, 0) + 1
                continue
        fits += 1
    memory = _Shortage(short_memory, most_memory)
    cpu = _Shortage(short_cpu, most_cpu)
    disk = _Shortage(short_disk, most_disk)
    parts: list[str] = []
    if memory.count:
        parts.append(
            f"{memory.count} insufficient memory (need {_bytes(need_memory)}, "
            f"largest free {_bytes(memory.largest_free)})"
        )
    if cpu.count:
        parts.append(
            f"{cpu.count} insufficient cpu (need {_cores(need_cpu)}, largest free {_cores(cpu.largest_free)})"
        )
    if disk.count:
        parts.append(
            f"{disk.count} insufficient disk (need {_bytes(need_disk)}, "
            f"largest free {_bytes(disk.largest_free)})"
        )
    for text, count in sorted(port_blocked.items()):
        parts.append(f"{count} {text}")
    if at_max and group is not None:
        parts.append(group.describe_full(at_max))
    for text, count in sorted(fleet.unmatched(selectors).items()):
        parts.append(f"{count} node selector {text} not matched")
    if fleet.draining:
        parts.append(f"{fleet.draining} draining")
    if fleet.not_eligible:
        parts.append(f"{fleet.not_eligible} not eligible")
    if fleet.not_alive:
        parts.append(f"{fleet.not_alive} not alive")
    if not parts:
        parts.append("no nodes in the cluster")
    return f"{fits}/{len(fleet)} nodes fit: " + ", ".join(parts)


def shortage(meta: NodeMeta, allocated: tuple[int, float, int], task: Task) -> str:
    """Why ``task`` no longer fits ``meta``'s node with ``allocated`` (memory, cores, disk) taken
    there, by the same capacity rules as the fleet's ("" when it fits): what the state machine
    checks a placement decided on an older view against."""
    memory, cpu, disk = allocated
    free_memory = meta.memory_total - memory
    if free_memory < task.memory:
        return f"insufficient memory (need {_bytes(task.memory)}, free {_bytes(free_memory)})"
    free_cpu = round(meta.cpu_total - cpu, CPU_DIGITS)
    if free_cpu < task.cpu:
        return f"insufficient cpu (need {_cores(task.cpu)}, free {_cores(free_cpu)})"
    free_disk = meta.disk_total - disk
    if meta.disk_total and free_disk < task.disk:
        return f"insufficient disk (need {_bytes(task.disk)}, free {_bytes(free_disk)})"
    for key, value in task.node_selectors.items():
        if meta.tags.get(key) != value:
            return f"node selector {key}={value} not matched"
    return ""
