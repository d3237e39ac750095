"""The service controller's vocabulary for a service's tasks (pure, no clock).

- live: the cluster still means to run it (desired run, Pending / Scheduled / Running);
- available: Running, healthy (or without a check), not draining, on a node not known dead:
  the ingress may send it connections;
- draining: live with ``drain_at`` set: out of the ingress, stopped once every node saw that;
- lost: live on a node that is dead or left: stopped and replaced at once (not a failure);
- unhealthy: live and its check failed: stopped and replaced (a failure);
- failed: ended on its own (Failed, or its container exited), was unhealthy, or restarted on
  its node; ``failed_at`` says when, for the update's failure count and the slot's backoff.

A slot (``web.2``) holds at most one task of the current template once settled; while it
changes it may hold a task of an older template too (start-first) or only a draining one
(stop-first). ``SlotKind`` names those situations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from orion.model import Desired, Health, Task, TaskState

LIVE_STATES = frozenset({TaskState.PENDING, TaskState.SCHEDULED, TaskState.RUNNING})
_STATE_RANK = {TaskState.RUNNING: 0, TaskState.SCHEDULED: 1, TaskState.PENDING: 2}


def is_live(task: Task) -> bool:
    return task.desired == Desired.RUN and task.state in LIVE_STATES


def is_draining(task: Task) -> bool:
    return is_live(task) and task.drain_at > 0


def is_lost(task: Task, down_nodes: frozenset[str]) -> bool:
    return is_live(task) and bool(task.node_id) and task.node_id in down_nodes


def is_unhealthy(task: Task) -> bool:
    return is_live(task) and task.health_check is not None and task.health == Health.UNHEALTHY


def is_available(task: Task, down_nodes: frozenset[str] = frozenset()) -> bool:
    """The ingress may send this task connections (services.md's definition), and its node is
    not known to be dead."""
    return (
        task.state == TaskState.RUNNING
        and task.desired == Desired.RUN
        and task.drain_at == 0
        and (task.health_check is None or task.health == Health.HEALTHY)
        and task.node_id not in down_nodes
    )


def ended_in_failure(task: Task) -> bool:
    """Not live any more because it broke: Failed, exited by itself (Stopped while still
    desired to run), or stopped by the controller because it was unhealthy."""
    if task.state == TaskState.FAILED:
        return True
    if task.state == TaskState.STOPPED:
        return task.desired == Desired.RUN or (
            task.health_check is not None and task.health == Health.UNHEALTHY
        )
    return False


def failed_at(task: Task) -> float | None:
    """When the task failed, or None if it never did. A live task that restarted on its node
    counts from its last restart: a crashing image is a failed update long before its node
    gives up restarting it."""
    if ended_in_failure(task) or is_unhealthy(task):
        return task.updated_at
    if task.restarts > 0:
        return task.restart_times[-1] if task.restart_times else task.updated_at
    return None


def preference(task: Task) -> tuple[int, int, float, str]:
    """Sort key, best first: available, then furthest along (Running, Scheduled, Pending),
    then the oldest (it has served longest), then the id so the order is total."""
    return (
        0 if is_available(task) else 1,
        _STATE_RANK.get(TaskState(task.state), 3),
        task.created_at,
        task.id,
    )


class SlotKind(StrEnum):
    EMPTY = "empty"  # nothing live: fill it
    VACATING = "vacating"  # only a draining task: fill it once that one stopped
    STALE = "stale"  # a task of an older template and none of the current one
    # Only a task of the current template on a draining node: a replacement starts elsewhere
    # first, then it drains (``orion node drain``), like a start-first update of one slot.
    EVACUATING = "evacuating"
    STARTING = "starting"  # a task of the current template, not yet available (maybe an old one beside)
    DONE = "done"  # an available task of the current template


@dataclass(frozen=True, slots=True)
class SlotTasks:
    """A slot's tasks, sorted out."""

    number: int
    occupants: tuple[Task, ...] = ()  # live, not draining, lost or unhealthy; best first
    draining: tuple[Task, ...] = ()
    broken: tuple[Task, ...] = ()  # live but lost or unhealthy: to stop now
    ended: tuple[Task, ...] = ()  # no longer live: the slot's history


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a slot keeps and what it lets go, against the current template ``version``."""

    kind: SlotKind
    keep: tuple[Task, ...]  # at most one current and one older task
    retire: tuple[Task, ...]  # duplicates and the tasks a ready replacement made redundant


def group_slots(tasks: Iterable[Task], down_nodes: frozenset[str]) -> dict[int, SlotTasks]:
    occupants: dict[int, list[Task]] = {}
    draining: dict[int, list[Task]] = {}
    broken: dict[int, list[Task]] = {}
    ended: dict[int, list[Task]] = {}
    for task in tasks:
        if not is_live(task):
            bucket = ended
        elif is_lost(task, down_nodes) or is_unhealthy(task):
            bucket = broken
        elif task.drain_at > 0:
            bucket = draining
        else:
            bucket = occupants
        bucket.setdefault(task.slot, []).append(task)
    numbers = occupants.keys() | draining.keys() | broken.keys() | ended.keys()
    return {
        n: SlotTasks(
            number=n,
            occupants=tuple(sorted(occupants.get(n, ()), key=preference)),
            draining=_by_id(draining.get(n, ())),
            broken=_by_id(broken.get(n, ())),
            ended=_by_id(ended.get(n, ())),
        )
        for n in sorted(numbers)
    }


def _by_id(tasks: Sequence[Task]) -> tuple[Task, ...]:
    return tuple(sorted(tasks, key=lambda task: task.id))


def resolve(
    slot: SlotTasks, version: int, down_nodes: frozenset[str], draining_nodes: frozenset[str] = frozenset()
) -> Resolution:
    """Keep the best task of the current template; keep the best older one only until the
    current one is available (that is start-first's overlap); let every other one go.

    A task on a draining node counts as an older one (it is to be replaced), except that
    when it is the slot's only task of the current template the slot is EVACUATING."""
    current = [t for t in slot.occupants if t.version == version and t.node_id not in draining_nodes]
    older = [t for t in slot.occupants if t.version != version or t.node_id in draining_nodes]
    # Of the older ones, one off a draining node is the one to keep serving.
    older.sort(key=lambda t: t.node_id in draining_nodes)
    if not current and older and older[0].version == version:
        return Resolution(SlotKind.EVACUATING, (older[0],), tuple(older[1:]))
    if current:
        best = current[0]
        if is_available(best, down_nodes):
            return Resolution(SlotKind.DONE, (best,), tuple(current[1:] + older))
        return Resolution(SlotKind.STARTING, (best, *older[:1]), tuple(current[1:] + older[1:]))
    if older:
        return Resolution(SlotKind.STALE, (older[0],), tuple(older[1:]))
    return Resolution(SlotKind.VACATING if slot.draining else SlotKind.EMPTY, (), ())
