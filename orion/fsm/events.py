"""What each committed command changed, as events carrying the Raft index (``orion events``).

``EventRecorder`` is fed by ``ClusterState`` while it applies one entry: every stored task
version (created, changed, removed), and the node records and services the command names,
compared before and after. It reads no clock and no random source, so every replica derives
the same events from the same entry, in the same order: any node can serve the stream, and a
client that moves to another node resumes from an index without a gap or a duplicate.

Only changes someone watches are events: a task's state, node, reason, desired state, health
or drain; a node's status, eligibility or drain; a service's version, replicas or update
state. Bookkeeping (port holds, a node's gossip figures) is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from orion.fsm.tables import NodeRecord
from orion.model import Task
from orion.services.spec import Service
from orion.volumes.spec import Volume

EVENT_TYPES = ("task", "node", "service")
_TASK_FIELDS = ("state", "node_id", "reason", "desired", "health", "drain_at")


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One change: ``type`` task/node/service, ``action`` created/changed/removed, ``id`` the
    task id, node id or service name; ``state`` after and ``previous`` before (a task's state,
    a node's status, a service's update state); ``changed`` the watched fields that changed,
    with their new values as text."""

    index: int  # the Raft index of the entry that made the change
    at: float  # the command's time (chosen by the proposer, so the same on every replica)
    type: str
    action: str
    id: str
    state: str = ""
    previous: str = ""
    changed: dict[str, str] = {}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "0" if value == 0 else repr(value)
    return str(value)


def task_event(index: int, at: float, old: Task | None, new: Task) -> Event | None:
    if old is None:
        changed = {"name": new.name, "image": new.image}
        if new.service:
            changed["service"] = new.service
        for field in ("node_id", "reason"):
            if getattr(new, field):
                changed[field] = getattr(new, field)
        return Event(
            index=index, at=at, type="task", action="created", id=new.id, state=new.state, changed=changed
        )
    changed = {f: _text(getattr(new, f)) for f in _TASK_FIELDS if getattr(old, f) != getattr(new, f)}
    if not changed:
        return None
    return Event(
        index=index,
        at=at,
        type="task",
        action="changed",
        id=new.id,
        state=new.state,
        previous=old.state,
        changed=changed,
    )


def node_event(index: int, at: float, old: NodeRecord | None, new: NodeRecord | None) -> Event | None:
    if new is None:
        if old is None:
            return None
        return Event(index=index, at=at, type="node", action="removed", id=old.id, previous=old.status)
    drain = "" if new.drain is None else "draining"
    if old is None:
        changed = {"address": new.meta.address, "eligible": _text(new.eligible)}
        return Event(
            index=index, at=at, type="node", action="created", id=new.id, state=new.status, changed=changed
        )
    changed = {}
    if old.status != new.status:
        changed["status"] = new.status
    if old.eligible != new.eligible:
        changed["eligible"] = _text(new.eligible)
    if old.drain != new.drain:
        changed["drain"] = drain
        if new.drain is not None and new.drain.deadline is not None:
            changed["drain_deadline"] = repr(new.drain.deadline)
    if not changed:
        return None
    return Event(
        index=index,
        at=at,
        type="node",
        action="changed",
        id=new.id,
        state=new.status,
        previous=old.status,
        changed=changed,
    )


def service_event(index: int, at: float, old: Service | None, new: Service | None) -> Event | None:
    if new is None:
        if old is None:
            return None
        return Event(
            index=index, at=at, type="service", action="removed", id=old.name, previous=old.update.state
        )
    watched = {
        "version": _text(new.version),
        "replicas": _text(new.spec.replicas),
        "template_version": _text(new.template_version),
        "update": new.update.state,
    }
    if old is None:
        return Event(
            index=index,
            at=at,
            type="service",
            action="created",
            id=new.name,
            state=new.update.state,
            changed=watched,
        )
    before = {
        "version": _text(old.version),
        "replicas": _text(old.spec.replicas),
        "template_version": _text(old.template_version),
        "update": old.update.state,
    }
    changed = {k: v for k, v in watched.items() if before[k] != v}
    if new.update.message != old.update.message and new.update.message:
        changed["message"] = new.update.message
    if not changed:
        return None
    return Event(
        index=index,
        at=at,
        type="service",
        action="changed",
        id=new.name,
        state=new.update.state,
        previous=old.update.state,
        changed=changed,
    )


def command_subjects(command: Any) -> tuple[str, str]:
    """(node id, service name) a command names, "" when none: their records are compared
    before and after it is applied. Task changes are seen as they are stored instead."""
    node_id = getattr(command, "node_id", "") or ""
    meta = getattr(command, "meta", None)
    if meta is not None and not node_id:
        node_id = getattr(meta, "id", "") or ""
    name = getattr(command, "name", "") or ""
    spec = getattr(command, "spec", None)
    if spec is not None and not name:
        name = getattr(spec, "name", "") or ""
    return (node_id if isinstance(node_id, str) else ""), (name if isinstance(name, str) else "")


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    """``events`` after the asked cursor; ``cursor`` to ask with next (never behind the asked
    one); ``horizon`` the newest index this node may miss events of; ``applied`` its applied
    index."""

    events: list[Event] = []
    cursor: int = 0
    horizon: int = 0
    applied: int = 0


class EventRecorder:
    """Collects the events of the entries being applied; ``take`` hands them over once.

    Off until ``enabled`` is set (by the node's Raft actor, which takes them after every
    burst): a state nobody reads events from (the simulator, tools) keeps none."""

    def __init__(self) -> None:
        self.enabled = False
        self._index = 0  # 0: not applying an entry (a restore stores tasks silently)
        self._at = 0.0
        self._events: list[Event] = []
        # Told (index, old, new) of every task version stored while applying entry ``index``
        # (None: created or removed), watched fields or not: the worker feed's host learns
        # from it which nodes an entry touched (orion/cluster/feed_host.py). Set or not,
        # independently of ``enabled``.
        self.on_task: Callable[[int, Task | None, Task | None], None] | None = None
        self._entry = 0  # the entry being applied (0: none), for on_task
        # Told (index, old, new) of every volume record a volume command changed (None:
        # created or deleted): a worker's answer carries the volumes its node needs.
        self.on_volume: Callable[[int, Volume | None, Volume | None], None] | None = None

    def begin(self, index: int, at: float) -> None:
        self._index = index if self.enabled else 0
        self._entry = index
        self._at = at

    def end(self) -> None:
        self._index = 0
        self._entry = 0

    def add(self, event: Event | None) -> None:
        if event is not None and self._index:
            self._events.append(event)

    def task(self, old: Task | None, new: Task) -> None:
        if self._entry and self.on_task is not None:
            self.on_task(self._entry, old, new)
        if self._index:
            self.add(task_event(self._index, self._at, old, new))

    def task_removed(self, task: Task) -> None:
        if self._entry and self.on_task is not None:
            self.on_task(self._entry, task, None)
        if self._index:
            self.add(
                Event(
                    index=self._index,
                    at=self._at,
                    type="task",
                    action="removed",
                    id=task.id,
                    previous=task.state,
                )
            )

    def volume(self, old: Volume | None, new: Volume | None) -> None:
        if self._entry and self.on_volume is not None and old is not new:
            self.on_volume(self._entry, old, new)

    def node(self, old: NodeRecord | None, new: NodeRecord | None) -> None:
        if self._index and old is not new:
            self.add(node_event(self._index, self._at, old, new))

    def service(self, old: Service | None, new: Service | None) -> None:
        if self._index and old is not new:
            self.add(service_event(self._index, self._at, old, new))

    @property
    def applying(self) -> int:
        return self._index

    def take(self) -> list[Event]:
        events, self._events = self._events, []
        return events
