"""Why a task fits nowhere: every node counted once, under the first filter it fails.

The filters run in a fixed chain (alive, eligible, node selectors, memory, CPU, disk), so a
dead node is counted as "not alive" even if it is also full. The reason lists the resource
shortages first because they are what a user can act on, then selectors, then node health:
``0/4 nodes fit: 2 insufficient memory (need 100.0 GiB, largest free 15.9 GiB),
1 node selector zone=b not matched, 1 not alive``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orion.model import Task
from orion.scheduler.fleet import Fleet, selector_key
from orion.scheduler.types import ALIVE
from orion.units import format_size


@dataclass
class _Shortage:
    """Nodes rejected for one resource, and the most that any of them had free."""

    count: int = 0
    largest_free: float = float("-inf")

    def add(self, free: float) -> None:
        self.count += 1
        self.largest_free = max(self.largest_free, free)


@dataclass
class _Tally:
    memory: _Shortage = field(default_factory=_Shortage)
    cpu: _Shortage = field(default_factory=_Shortage)
    disk: _Shortage = field(default_factory=_Shortage)
    selectors: dict[str, int] = field(default_factory=dict)  # "zone=b" -> nodes
    not_eligible: int = 0
    not_alive: int = 0


def _cores(value: float) -> str:
    return f"{max(value, 0.0):.1f} cores"


def _bytes(value: float) -> str:
    return format_size(max(value, 0))


def explain(fleet: Fleet, task: Task) -> str:
    """The pending reason for ``task`` against the fleet as it stands now (O(nodes))."""
    tally = _Tally()
    selectors = selector_key(task)
    fits = 0
    for index, node in enumerate(fleet.nodes):
        if node.status != ALIVE:
            tally.not_alive += 1
            continue
        if not node.eligible:
            tally.not_eligible += 1
            continue
        unmatched = next((f"{k}={v}" for k, v in selectors if node.meta.tags.get(k) != v), None)
        if unmatched is not None:
            tally.selectors[unmatched] = tally.selectors.get(unmatched, 0) + 1
            continue
        if fleet.free_memory[index] < task.memory:
            tally.memory.add(fleet.free_memory[index])
        elif fleet.free_cpu[index] < task.cpu:
            tally.cpu.add(fleet.free_cpu[index])
        elif fleet.free_disk[index] < task.disk:
            tally.disk.add(fleet.free_disk[index])
        else:
            fits += 1
    parts: list[str] = []
    if tally.memory.count:
        parts.append(
            f"{tally.memory.count} insufficient memory (need {_bytes(task.memory)}, "
            f"largest free {_bytes(tally.memory.largest_free)})"
        )
    if tally.cpu.count:
        parts.append(
            f"{tally.cpu.count} insufficient cpu (need {_cores(task.cpu)}, "
            f"largest free {_cores(tally.cpu.largest_free)})"
        )
    if tally.disk.count:
        parts.append(
            f"{tally.disk.count} insufficient disk (need {_bytes(task.disk)}, "
            f"largest free {_bytes(tally.disk.largest_free)})"
        )
    parts.extend(
        f"{count} node selector {text} not matched" for text, count in sorted(tally.selectors.items())
    )
    if tally.not_eligible:
        parts.append(f"{tally.not_eligible} not eligible")
    if tally.not_alive:
        parts.append(f"{tally.not_alive} not alive")
    if not parts:
        parts.append("no nodes in the cluster")
    return f"{fits}/{len(fleet)} nodes fit: " + ", ".join(parts)
