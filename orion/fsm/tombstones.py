"""What the cluster state remembers of removed tasks and services, so a late duplicate of the
request that made one cannot make it again.

A client chooses a task's id and retries a submit that got no answer; the first attempt may
still be on its way (parked in a paused follower that forwards it later). If the task was
removed (``orion task rm``) or garbage-collected meanwhile, that late attempt would create it
again and run it again. A service's create has the same hole, and a service created again
would restart its versions at 1, so an ``expected_version`` read from the old one could match
the new one. ``Tombstones`` keeps, for a while:

- the ids of removed one-off tasks (service tasks are made by ``ServiceStep``, whose version
  check already refuses a late one), with when they were removed;
- removed services: name, last version and the request id of the create that made it;
- the create request id of every live service (what its tombstone will carry).

Deterministic like the rest of the state: times are the commands' ``at``, never a clock.
``expire(at)`` runs before every command, so what a submit finds depends only on the log.

Retention: ``TOMBSTONE_RETENTION_S``, a constant of the FSM rather than ``[scheduler]
task_retention``. That setting is a node's configuration, not replicated state: two replicas
configured differently (or a log replayed after the setting changed) would decide the same
late submit differently and diverge. It is also the wrong measure: it says how long a finished
task stays visible, while a tombstone must outlive the longest delay of a duplicate (a client's
retries and a forwarded request's deadline take seconds; a paused node, minutes), so one hour,
the default retention, is ample. ``CollectGarbage`` is only proposed when there is garbage,
and services have no garbage collection, so neither could carry the window either. The counts
are bounded too, the oldest dropped first: tasks at ``MAX_TASK_TOMBSTONES`` (about 150 bytes
each, under 8 MB at the bound), services at ``MAX_SERVICE_TOMBSTONES``. After a tombstone
expires its id may be used again, and a service made again starts at version 1 again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from orion.raft.types import Table

TOMBSTONE_RETENTION_S = 3600.0  # how long a removal is remembered after its command's ``at``
MAX_TASK_TOMBSTONES = 50_000
MAX_SERVICE_TOMBSTONES = 1_000

TASK_KIND = "task"
SERVICE_KIND = "service"
TOMBSTONE_COLUMNS = ["kind", "key", "removed_at", "version", "request_id"]
TOMBSTONE_TYPES = ["VARCHAR", "VARCHAR", "DOUBLE", "BIGINT", "VARCHAR"]
CREATOR_COLUMNS = ["name", "request_id"]
CREATOR_TYPES = ["VARCHAR", "VARCHAR"]
_REMOVED_TASK = "task {id} was removed at "


class ServiceTombstone(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int  # the removed service's last version: a new one of this name continues after it
    request_id: str  # of the create that made it ("" from callers that send none)
    removed_at: float


@dataclass(frozen=True, slots=True)
class TombstoneSource:
    """The tombstones at one applied index, for a snapshot: copies of the containers (their
    values are immutable), in the order they were recorded, which is also pruning order."""

    task_removed_at: dict[str, float] = field(default_factory=dict)
    services: list[ServiceTombstone] = field(default_factory=list)
    creators: dict[str, str] = field(default_factory=dict)  # live service name -> create request id


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def removed_task_message(task_id: str, removed_at: float) -> str:
    return f"{_REMOVED_TASK.format(id=task_id)}{_when(removed_at)}; choose a new id"


def is_removed_task_message(message: str, task_id: str) -> bool:
    """True for the refusal of a submit whose id belongs to a removed task (the client tells it
    from other conflicts: after a lost answer it means its own submit was applied)."""
    return message.startswith(_REMOVED_TASK.format(id=task_id))


def late_create_message(name: str, removed_at: float) -> str:
    return (
        f"service {name} was removed at {_when(removed_at)}; this is a late retry of the create that made it"
    )


class Tombstones:
    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        # Insertion order is removal order: each id is in the deque once while it is in the dict.
        self._task_removed_at: dict[str, float] = {}
        self._task_order: deque[str] = deque()
        self._services: deque[ServiceTombstone] = deque()
        self._service_by_name: dict[str, ServiceTombstone] = {}  # the newest removal of a name
        self._service_by_request: dict[str, ServiceTombstone] = {}
        self._creators: dict[str, str] = {}

    # -- reading -----------------------------------------------------------------------------

    def task_removed_at(self, task_id: str) -> float | None:
        return self._task_removed_at.get(task_id)

    def late_create(self, request_id: str) -> ServiceTombstone | None:
        """The tombstone of the service that the create ``request_id`` made, if removed."""
        return self._service_by_request.get(request_id) if request_id else None

    def first_service_version(self, name: str) -> int:
        """The version a service named ``name`` starts at: after the last one's, if removed."""
        removed = self._service_by_name.get(name)
        return 1 if removed is None else removed.version + 1

    def creator(self, name: str) -> str:
        """The create request id of the live service ``name`` ("" if none was given)."""
        return self._creators.get(name, "")

    # -- recording ---------------------------------------------------------------------------

    def task_removed(self, task_id: str, at: float) -> None:
        if task_id in self._task_removed_at:
            return  # cannot happen (a tombstoned id is never created again); keep one entry
        self._task_removed_at[task_id] = float(at)
        self._task_order.append(task_id)
        while len(self._task_order) > MAX_TASK_TOMBSTONES:
            del self._task_removed_at[self._task_order.popleft()]

    def service_created(self, name: str, request_id: str) -> None:
        if request_id:
            self._creators[name] = request_id

    def service_removed(self, name: str, version: int, at: float) -> None:
        tombstone = ServiceTombstone(
            name=name, version=version, request_id=self._creators.pop(name, ""), removed_at=at
        )
        self._add_service(tombstone)
        while len(self._services) > MAX_SERVICE_TOMBSTONES:
            self._drop_oldest_service()

    def expire(self, at: float) -> None:
        """Forget what was removed at or before ``at - TOMBSTONE_RETENTION_S``, oldest first.
        Proposers' clocks differ a little, so removal times are not quite sorted: one
        recorded later may go a little after its time, never before it."""
        horizon = at - TOMBSTONE_RETENTION_S
        order, removed_at = self._task_order, self._task_removed_at
        while order and removed_at[order[0]] <= horizon:
            del removed_at[order.popleft()]
        while self._services and self._services[0].removed_at <= horizon:
            self._drop_oldest_service()

    def _add_service(self, tombstone: ServiceTombstone) -> None:
        self._services.append(tombstone)
        self._service_by_name[tombstone.name] = tombstone
        if tombstone.request_id:
            self._service_by_request[tombstone.request_id] = tombstone

    def _drop_oldest_service(self) -> None:
        oldest = self._services.popleft()
        if self._service_by_name.get(oldest.name) is oldest:
            del self._service_by_name[oldest.name]
        if self._service_by_request.get(oldest.request_id) is oldest:
            del self._service_by_request[oldest.request_id]

    # -- snapshots -----------------------------------------------------------------------------

    def source(self) -> TombstoneSource:
        return TombstoneSource(dict(self._task_removed_at), list(self._services), dict(self._creators))

    def restore(self, source: TombstoneSource) -> None:
        self._clear()
        for task_id, at in source.task_removed_at.items():
            self._task_removed_at[task_id] = at
            self._task_order.append(task_id)
        for tombstone in source.services:
            self._add_service(tombstone)
        self._creators.update(source.creators)


def tombstone_tables(source: TombstoneSource) -> dict[str, Table]:
    """The snapshot tables ``tombstones`` (tasks then services, each in removal order) and
    ``service_creators``."""
    rows: list[list[str | float | int]] = [
        [TASK_KIND, task_id, at, 0, ""] for task_id, at in source.task_removed_at.items()
    ]
    rows.extend([SERVICE_KIND, t.name, t.removed_at, t.version, t.request_id] for t in source.services)
    creators: list[list[str | float | int]] = [[name, rid] for name, rid in source.creators.items()]
    return {
        "tombstones": Table(columns=TOMBSTONE_COLUMNS, types=TOMBSTONE_TYPES, rows=rows),
        "service_creators": Table(columns=CREATOR_COLUMNS, types=CREATOR_TYPES, rows=creators),
    }


def tombstones_from_tables(tables: dict[str, Table]) -> TombstoneSource:
    """The tombstones of a snapshot's tables; none from a snapshot taken before they existed.
    ``ValueError`` naming the problem on a malformed row."""
    source = TombstoneSource()
    table = tables.get("tombstones")
    if table is not None:
        _check_columns(table, TOMBSTONE_COLUMNS, "tombstones")
        for row in table.rows:
            kind, key, removed_at, version, request_id = row[: len(TOMBSTONE_COLUMNS)]
            if not (isinstance(key, str) and key and isinstance(removed_at, float | int)):
                raise ValueError(f"tombstones: bad row {row!r}")
            if kind == TASK_KIND:
                source.task_removed_at[key] = float(removed_at)
            elif kind == SERVICE_KIND and isinstance(version, int) and isinstance(request_id, str):
                source.services.append(
                    ServiceTombstone(
                        name=key, version=version, request_id=request_id, removed_at=float(removed_at)
                    )
                )
            else:
                raise ValueError(f"tombstones: bad row {row!r}")
    table = tables.get("service_creators")
    if table is not None:
        _check_columns(table, CREATOR_COLUMNS, "service_creators")
        for row in table.rows:
            name, request_id = row[: len(CREATOR_COLUMNS)]
            if not (isinstance(name, str) and isinstance(request_id, str)):
                raise ValueError(f"service_creators: bad row {row!r}")
            source.creators[name] = request_id
    return source


def _check_columns(table: Table, expected: list[str], name: str) -> None:
    # A later version may add columns at the end: the known ones must lead.
    if table.columns[: len(expected)] != expected:
        raise ValueError(f"{name}: unexpected snapshot columns {table.columns}")
