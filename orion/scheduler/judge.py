"""The Judge: a pure, deterministic function from a snapshot and pending tasks to a plan.

It reads, never writes: the leader commits the plan through Raft. Given the same nodes, tasks,
strategy, seed, time and dynamic port range it returns the same plan, so any decision can be
replayed from the log.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from orion.model import Task
from orion.scheduler.feasible import explain
from orion.scheduler.fleet import Fleet, SelectorKey, selector_key
from orion.scheduler.ports import DEFAULT_DYNAMIC_PORTS, port_requests
from orion.scheduler.rank import NONE, pick_exact, pick_limited, pick_spread
from orion.scheduler.spread import SpreadBook
from orion.scheduler.types import STRATEGIES, NodeView, Plan, ServiceLayout
from orion.scheduler.volumes import VolumeClaims, VolumeView

_Shape = tuple[int, float, int, SelectorKey, tuple[tuple[str, str], ...], tuple[str, int]]


def nomad_limit(node_count: int) -> int:
    """Nomad's sample size for service jobs: log2 of the cluster, at least 2."""
    return max(2, math.ceil(math.log2(node_count))) if node_count > 1 else 2


def schedule(
    nodes: Sequence[NodeView],
    pending: Sequence[Task],
    strategy: str,
    seed: int,
    limit: int | None = None,
    *,
    now: float = 0.0,
    dynamic_ports: tuple[int, int] = DEFAULT_DYNAMIC_PORTS,
    services: Mapping[str, ServiceLayout] | None = None,
    volumes: Mapping[str, VolumeView] | None = None,
) -> Plan:
    """Place ``pending`` tasks, in order, on ``nodes``.

    ``limit=None`` scores every feasible node (exact; right for small clusters); an int scores
    only that many feasible nodes per task, walking the shuffled fleet round-robin (Nomad's
    limit, e.g. ``nomad_limit(len(nodes))``), which keeps large clusters fast. Either way a task
    that fits on some node is placed, and each placement is debited before the next task.

    Host ports are filtered before scoring, on the candidates only: a task without
    ``port_bindings`` pays nothing for them. ``now`` decides which foreign port blocks have
    lapsed; dynamic ports are picked lowest-first from ``dynamic_ports``.

    Tasks of a service (``task.service``) are spread (orion/scheduler/spread.py) by the
    ``services`` layouts (a service missing there spreads over nodes, counting only this
    batch); every candidate is looked at for them, whatever ``limit`` says, since spreading
    needs the whole picture, but only those whose spread key can still win are scored.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    fleet = Fleet(nodes, seed, now, dynamic_ports)
    spread = SpreadBook(services or {}, fleet.ids, [node.meta.tags for node in fleet.nodes])
    plan = Plan(assignments=[], pending_reasons={}, host_ports={})
    claims = VolumeClaims(volumes or {}, nodes)  # tasks with volumes: orion/scheduler/volumes.py
    walk_start: dict[SelectorKey, int] = {}
    # Within one batch free resources only shrink, so a shape that fitted nowhere still fits
    # nowhere: remember it and skip the search. The reason is recomputed only if something
    # was placed since, because the counts and "largest free" may have moved.
    failed: dict[_Shape, tuple[int, str]] = {}
    for task in pending:
        selectors = selector_key(task)
        group = spread.group(task)
        # Ports, like resources, are only taken within a batch: a port shape that fitted
        # nowhere still fits nowhere. So are a service version's places (max_per_node).
        ports_key = tuple(sorted(task.port_bindings.items())) if task.port_bindings else ()
        shape = (task.memory, task.cpu, task.disk, selectors, ports_key, (task.service, task.version))
        pin = ""
        if task.volumes:
            pin, why = claims.pin(task)
            if why:
                plan.pending_reasons[task.id] = why
                continue
        known = None if task.volumes else failed.get(shape)
        if known is not None:
            placements_then, reason = known
            if placements_then != fleet.placements:
                reason = explain(fleet, task, group)
                failed[shape] = (fleet.placements, reason)
            plan.pending_reasons[task.id] = reason
            continue
        candidates = fleet.candidates(selectors)
        if pin:
            candidates = [index for index in candidates if fleet.ids[index] == pin]
        ports_by_node: dict[int, dict[str, int]] = {}
        if task.port_bindings:
            requests = port_requests(task)
            for index in candidates:
                ports, _ = fleet.fit_ports(index, requests)
                if ports is not None:
                    ports_by_node[index] = ports
            candidates = [index for index in candidates if index in ports_by_node]
        if group is not None:
            if group.layout.max_per_node:
                candidates = [index for index in candidates if group.allows(index)]
            best = pick_spread(fleet, candidates, task, strategy, group)
        elif limit is None:
            best = pick_exact(fleet, candidates, task, strategy)
        else:
            best, walk_start[selectors] = pick_limited(
                fleet, candidates, task, strategy, limit, walk_start.get(selectors, 0)
            )
        if best == NONE:
            reason = explain(fleet, task, group)
            if pin:
                reason = f"its volumes live on {pin}, where it does not fit ({reason})"
            elif not task.volumes:
                failed[shape] = (fleet.placements, reason)
            plan.pending_reasons[task.id] = reason
            continue
        host_ports = ports_by_node.get(best)
        fleet.place(best, task, host_ports)
        if group is not None:
            group.place(best)
        plan.assignments.append((task.id, fleet.ids[best]))
        if task.volumes:
            claims.place(task, fleet.ids[best])
        if host_ports:
            plan.host_ports[task.id] = host_ports
    return plan
