"""Service tasks spread out (Swarm's placement preferences, Nomad's ``spread``).

A task of a service is placed, among the nodes it fits, on the node whose value of the
service's spread tag (``placement.spread``, e.g. ``zone``) holds the fewest tasks of the
service, then on the node holding the fewest itself, and only then by the strategy's score
(binpack or spread). Without a spread tag, nodes are the groups. Nodes lacking the tag form
one group of their own (value ""), as in Swarm. ``max_per_node`` (0 = no limit) filters out a
node that already holds that many.

Counts are per template version: during a rolling update the new tasks spread among
themselves, so the service ends up spread once the old ones are gone, and a start-first
update can always place its surge task (a node may hold ``max_per_node`` tasks of each
version for the update's length; Swarm's start-first with a per-node maximum deadlocks
instead). Draining and ended tasks do not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orion.model import Task
from orion.scheduler.types import ServiceLayout


class SpreadGroup:
    """One service version's tasks per node position and per spread-tag value, debited as the
    batch places them. Smaller is better: the tag value's count, then the node's
    (orion/scheduler/rank.py ``pick_spread`` compares them)."""

    __slots__ = ("layout", "name", "per_node", "per_value", "values")

    def __init__(
        self,
        name: str,
        layout: ServiceLayout,
        version: int,
        ids: Sequence[str],
        tags: Sequence[dict[str, str]],
    ) -> None:
        self.name = name
        self.layout = layout
        placed = layout.placed.get(version, {})
        self.per_node = [placed.get(node_id, 0) for node_id in ids]
        self.values = [node_tags.get(layout.spread, "") if layout.spread else "" for node_tags in tags]
        self.per_value: dict[str, int] = {}
        if layout.spread:
            for value, count in zip(self.values, self.per_node, strict=True):
                self.per_value[value] = self.per_value.get(value, 0) + count

    def allows(self, index: int) -> bool:
        return not self.layout.max_per_node or self.per_node[index] < self.layout.max_per_node

    def place(self, index: int) -> None:
        self.per_node[index] += 1
        if self.layout.spread:
            value = self.values[index]
            self.per_value[value] = self.per_value.get(value, 0) + 1

    def describe_full(self, count: int) -> str:
        """A pending reason's part for nodes rejected by ``max_per_node``."""
        most = self.layout.max_per_node
        return f"{count} already running {most} task(s) of service {self.name} (max_per_node)"


class SpreadBook:
    """The groups of one batch, made when a service's first task is met."""

    def __init__(
        self, layouts: Mapping[str, ServiceLayout], ids: Sequence[str], tags: Sequence[dict[str, str]]
    ) -> None:
        self._layouts = layouts
        self._ids = ids
        self._tags = tags
        self._groups: dict[tuple[str, int], SpreadGroup] = {}

    def group(self, task: Task) -> SpreadGroup | None:
        """The task's group, or None for a task of no service."""
        if not task.service:
            return None
        key = (task.service, task.version)
        found = self._groups.get(key)
        if found is None:
            layout = self._layouts.get(task.service, ServiceLayout())
            found = SpreadGroup(task.service, layout, task.version, self._ids, self._tags)
            self._groups[key] = found
        return found
