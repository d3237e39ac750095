"""A service as the scheduler sees it (``ServiceLayout``, orion/scheduler/types.py): its
placement rules and where its tasks run. Built here, beside the service records, so the
scheduler never imports them."""

from __future__ import annotations

from collections.abc import Iterable

from orion.model import ACTIVE_STATES, Desired, Task
from orion.scheduler.types import ServiceLayout
from orion.services.spec import Service


def service_layout(service: Service, tasks: Iterable[Task]) -> ServiceLayout:
    """What the scheduler needs to know of ``service``: its placement rules, and where its
    active, serving tasks run (``tasks``: the service's tasks, any state)."""
    placed: dict[int, dict[str, int]] = {}
    for task in tasks:
        if task.state in ACTIVE_STATES and task.desired == Desired.RUN and not task.drain_at and task.node_id:
            on_node = placed.setdefault(task.version, {})
            on_node[task.node_id] = on_node.get(task.node_id, 0) + 1
    placement = service.spec.placement
    return ServiceLayout(spread=placement.spread, max_per_node=placement.max_per_node, placed=placed)
