"""The scheduler's working copy of a snapshot: free resources per node, debited as it places.

Nodes are kept in parallel lists indexed by position, because the placement loop reads them
millions of times and list indexing is the cheapest lookup CPython has. Positions follow a
shuffle seeded by the caller, so "first best node" breaks ties fairly and replayably.

Capacity rules (decided here, relied on by the filters and the reasons):
- memory and CPU: a capacity of 0 means the node offers none; only a task needing 0 fits.
- disk: a capacity of 0 means the node did not report its disk; it is treated as unlimited,
  because many hosts cannot tell, and refusing every disk request on them would be worse.
- host ports: taken per port space, not per node (orion/scheduler/ports.py): the claims of
  every node, alive or not, are booked, since a dead node's containers may still hold theirs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from orion.model import NodeStatus, Task
from orion.scheduler.ports import DEFAULT_DYNAMIC_PORTS, Blocker, PortBook, PortRequest, port_space
from orion.scheduler.types import NodeView

SelectorKey = tuple[tuple[str, str], ...]


def selector_key(task: Task) -> SelectorKey:
    return tuple(sorted(task.node_selectors.items()))


CPU_DIGITS = 9


class Fleet:
    def __init__(
        self,
        nodes: Sequence[NodeView],
        seed: int,
        now: float = 0.0,
        dynamic_ports: tuple[int, int] = DEFAULT_DYNAMIC_PORTS,
    ) -> None:
        # Sort first so that the outcome depends on the seed only, not on the caller's order.
        ordered = sorted(nodes, key=lambda node: node.id)
        random.Random(seed).shuffle(ordered)
        self.nodes: list[NodeView] = ordered
        self.ids = [node.id for node in ordered]
        self.free_memory = [node.meta.memory_total - node.allocated_memory for node in ordered]
        # Cores are rounded to nano-cores (Docker's unit) after every subtraction: in binary
        # floating point 1.0 - 0.9 is just under 0.1, and a 0.1-core task would not fit.
        self.free_cpu = [round(node.meta.cpu_total - node.allocated_cpu, CPU_DIGITS) for node in ordered]
        self.free_disk = [
            math.inf if node.meta.disk_total == 0 else node.meta.disk_total - node.allocated_disk
            for node in ordered
        ]
        # Inverse capacities turn "utilisation after placement" into one multiply per node.
        self.inverse_memory = [1.0 / n.meta.memory_total if n.meta.memory_total else 0.0 for n in ordered]
        self.inverse_cpu = [1.0 / n.meta.cpu_total if n.meta.cpu_total else 0.0 for n in ordered]
        self.usable: list[int] = []
        self._candidates: dict[SelectorKey, list[int]] = {}
        self._unmatched: dict[SelectorKey, dict[str, int]] = {}
        # Rejections that no placement can change, counted once per batch.
        self.not_alive = self.draining = self.not_eligible = 0
        self._find_usable()
        self.placements = 0  # bumped on every placement: tells when a cached reason is stale
        self.dynamic_ports = dynamic_ports
        self.port_spaces = [port_space(node.meta) for node in ordered]
        self.host_ips = [node.meta.host_ip for node in ordered]
        self.ports = PortBook(now)
        for space, node in zip(self.port_spaces, ordered, strict=True):
            self.ports.add_all(space, node.ports)

    def __len__(self) -> int:
        return len(self.nodes)

    def set_node(self, index: int, node: NodeView) -> None:
        """Replace the node at ``index`` by a newer view of the same node, for a fleet kept
        between placements (the leader's submit placer) instead of rebuilt from every node.

        Free resources and capacities follow the view. A change of what decides who is usable
        (status, eligibility, drain, tags) redoes the usable list and the selector caches, an
        O(N) step that only a node's change of state pays. Host ports are not updated (a
        ``PortBook`` only adds): a kept fleet serves tasks that bind none."""
        old = self.nodes[index]
        if node.id != old.id:
            raise ValueError(f"set_node: position {index} holds {old.id!r}, not {node.id!r}")
        self.nodes[index] = node
        meta = node.meta
        self.free_memory[index] = meta.memory_total - node.allocated_memory
        self.free_cpu[index] = round(meta.cpu_total - node.allocated_cpu, CPU_DIGITS)
        self.free_disk[index] = math.inf if meta.disk_total == 0 else meta.disk_total - node.allocated_disk
        self.inverse_memory[index] = 1.0 / meta.memory_total if meta.memory_total else 0.0
        self.inverse_cpu[index] = 1.0 / meta.cpu_total if meta.cpu_total else 0.0
        self.port_spaces[index] = port_space(meta)
        self.host_ips[index] = meta.host_ip
        if (node.status, node.eligible, node.draining, meta.tags) != (
            old.status,
            old.eligible,
            old.draining,
            old.meta.tags,
        ):
            self._find_usable()

    def _find_usable(self) -> None:
        nodes = self.nodes
        self.usable[:] = [
            index for index, node in enumerate(nodes) if node.status == NodeStatus.ALIVE and node.eligible
        ]
        self._candidates = {(): self.usable}
        self._unmatched = {(): {}}
        self.not_alive = sum(1 for node in nodes if node.status != NodeStatus.ALIVE)
        held_back = [node for node in nodes if node.status == NodeStatus.ALIVE and not node.eligible]
        self.draining = sum(1 for node in held_back if node.draining)
        self.not_eligible = len(held_back) - self.draining

    def candidates(self, selectors: SelectorKey) -> list[int]:
        """Usable node positions whose tags match every selector, in shuffled order (cached)."""
        found = self._candidates.get(selectors)
        if found is None:
            found = [
                index
                for index in self.usable
                if all(self.nodes[index].meta.tags.get(key) == value for key, value in selectors)
            ]
            self._candidates[selectors] = found
        return found

    def unmatched(self, selectors: SelectorKey) -> dict[str, int]:
        """Usable nodes rejected by the selectors, counted under the first one each fails
        ("zone=b" -> 2), for pending reasons (cached: tags do not change within a batch)."""
        found = self._unmatched.get(selectors)
        if found is None:
            found = {}
            for index in self.usable:
                tags = self.nodes[index].meta.tags
                failed = next((f"{k}={v}" for k, v in selectors if tags.get(k) != v), None)
                if failed is not None:
                    found[failed] = found.get(failed, 0) + 1
            self._unmatched[selectors] = found
        return found

    def fit_ports(
        self, index: int, requests: list[PortRequest]
    ) -> tuple[dict[str, int] | None, Blocker | None]:
        """Host ports for ``requests`` on the node at ``index``, or what blocks them there."""
        return self.ports.fit(self.port_spaces[index], self.host_ips[index], requests, self.dynamic_ports)

    def place(self, index: int, task: Task, host_ports: dict[str, int] | None = None) -> None:
        """Debit the node at once, so the next task of the same batch sees what is left."""
        self.free_memory[index] -= task.memory
        self.free_cpu[index] = round(self.free_cpu[index] - task.cpu, CPU_DIGITS)
        self.free_disk[index] -= task.disk
        if host_ports:
            self.ports.claim(
                self.port_spaces[index], self.host_ips[index], self.ids[index], task.id, host_ports
            )
        self.placements += 1
