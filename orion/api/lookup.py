"""How the node finds what a request names: a task by id, id prefix or name; the tasks a
``ListTasks`` filter keeps; the drain and eligibility shown with each node.

Every front end (ZeroMQ client and CLI, REST) sends what the user typed; the node resolves it
here, once, on the state it reads (linearizably, through the leader), so all of them accept
the same things and refuse them with the same words. A write that names a task (stop, remove)
reads first and proposes the resolved id.

A task reference is, in this order (as ``docker`` resolves a container):
1. a task's full id;
2. a task's name (several tasks may share one: a service slot being replaced, a name reused;
   the most recent active one is meant, ``ClusterState.task_by_name``);
3. a prefix of at least ``MIN_PREFIX`` characters of exactly one task's id. A prefix of
   several is refused (``invalid``), listing them, so a stop never hits the wrong task.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from orion.api.protocol import DrainInfo, ErrorCode, NodeInfo, Refused
from orion.fsm.state import ClusterState
from orion.model import Task

MIN_PREFIX = 4
MAX_LISTED = 10  # matches named in an ambiguity error


def resolve_task(fsm: ClusterState, ref: str) -> Task:
    """The task ``ref`` names; LookupError when none, Refused(invalid) when ambiguous."""
    task = fsm.task(ref)
    if task is not None:
        return task
    task = fsm.task_by_name(ref)
    if task is not None:
        return task
    if len(ref) < MIN_PREFIX:
        raise LookupError(
            f"no task with id {ref} (nor named so; an id prefix needs at least {MIN_PREFIX} characters)"
        )
    matches = [t for t in fsm.tasks() if t.id.startswith(ref)]
    if not matches:
        raise LookupError(f"no task with id {ref} (nor named so, nor an id starting so)")
    if len(matches) > 1:
        raise Refused(ErrorCode.INVALID, ambiguous_message(ref, matches))
    return matches[0]


def ambiguous_message(ref: str, matches: list[Task]) -> str:
    shown = ", ".join(f"{t.id} ({t.name})" for t in matches[:MAX_LISTED])
    more = f" and {len(matches) - MAX_LISTED} more" if len(matches) > MAX_LISTED else ""
    return f"task id prefix {ref!r} is ambiguous: it matches {len(matches)} tasks: {shown}{more}"


def filtered_tasks(fsm: ClusterState, states: Iterable[str], node: str, service: str) -> list[Task]:
    """The tasks a ListTasks keeps, from the narrowest index the filters allow."""
    if service:
        tasks = fsm.service_tasks(service)
    elif node:
        tasks = fsm.tasks_on_node(node)
    else:
        tasks = fsm.tasks()
    wanted = set(states)
    return [
        t
        for t in tasks
        if (not wanted or t.state in wanted)
        and (not node or t.node_id == node)
        and (not service or t.service == service)
    ]


def with_node_state(infos: list[NodeInfo], fsm: ClusterState) -> list[NodeInfo]:
    """``infos`` with each node's eligibility and drain (with the tasks it still runs) from
    the replicated state."""
    shown = []
    for info in infos:
        record = fsm.node(info.id)
        if record is None:
            shown.append(info)
            continue
        drain = None
        if record.drain is not None:
            drain = DrainInfo(
                started_at=record.drain.started_at,
                deadline=record.drain.deadline,
                remaining=fsm.live_tasks_on_node(info.id),
            )
        shown.append(msgspec.structs.replace(info, eligible=record.eligible, drain=drain))
    return shown
