"""The FSM's tasks by id, most of them stored without a record of their own (issue 16 item 5).

A ``Task`` record has 33 slots: 280 bytes, whatever it holds. Most tasks of a big state differ
only in their id, name, times and history: 100k tasks from one loadgen run, or the replicas of a
service on one node, hold the same image, resources, selectors, state, node and reason. The
table stores such a task as a ``PackedTask`` (64 bytes): its own id, name, created_at,
updated_at and history, and a reference to a *shape*, one ``Task`` with those five fields
blanked that every task equal in its other 28 fields points at. The history line every task
starts with (Pending at ``created_at`` on no node) is kept as its reason alone: a string the
state interns, shared by every task submitted the same way.

Reading a task builds its record again (``msgspec.structs.replace`` of the shape, a few hundred
nanoseconds): every read gives an equal ``Task``, not the same object twice, and stored
records are never mutated, as before. A task whose shape was not seen before is stored whole;
its shape is remembered for the next task like it.

A name made of a prefix ending in "-" and the first 8 characters of the task's id (the default
``task-<id8>``, loadgen's ``loadgen-<id8>``) is not kept either: the shape holds the prefix
(tasks of different prefixes have different shapes) and reading the task joins the two again.
72 bytes a task; ``ClusterState`` leaves such names out of its name index too
(``derived_name``).

Shapes are found by the msgpack encoding of the 28 shared values: equal bytes mean equal values
of the same types (0 and 0.0, -0.0 and 0.0, dict orders all encode differently), so a rebuilt
task encodes exactly as the stored one did, and snapshots stay byte-identical on every replica
whatever each one's cache holds. The cache holds at most ``capacity`` shapes, then starts over
(stored tasks keep the shape they point at).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Mapping

import msgspec

from orion.fsm.compact import EMPTY_LIST, Compactor, shared
from orion.model import Task, TaskEvent, TaskState

_OWN_FIELDS = ("id", "name", "created_at", "updated_at", "history")
_SHAPE_POSITIONS = tuple(i for i, name in enumerate(Task.__struct_fields__) if name not in _OWN_FIELDS)
_shape_values = operator.itemgetter(*_SHAPE_POSITIONS)  # a tuple of the shared values, made in C
_encode = msgspec.msgpack.Encoder().encode
_replace = msgspec.structs.replace
_astuple = msgspec.structs.astuple
_PENDING = shared(TaskState.PENDING.value)
ID_PREFIX = 8  # a derived name's tail: as many characters of the id as the default name takes


def derived_name(name: str, task_id: str) -> bool:
    """True when ``name`` is a prefix ending in "-" followed by the first ``ID_PREFIX``
    characters of ``task_id`` (the default ``task-<id8>`` among them)."""
    return (
        len(name) > ID_PREFIX
        and len(task_id) >= ID_PREFIX
        and name[-ID_PREFIX - 1] == "-"
        and name.endswith(task_id[:ID_PREFIX])
    )


class PackedTask(msgspec.Struct, frozen=True, gc=False):
    """A stored task that shares ``shape`` with others. ``name`` None: the shape's name (a
    prefix) and the first ``ID_PREFIX`` characters of the id. ``history`` as a string: the
    reason of its only line, Pending at ``created_at`` on no node. gc=False: strings, floats, a
    list of frozen events and an untracked record cannot form a cycle."""

    id: str
    name: str | None
    created_at: float
    updated_at: float
    history: list[TaskEvent] | str
    shape: Task


StoredTask = Task | PackedTask


def unpack(row: StoredTask) -> Task:
    """The ``Task`` a stored row stands for."""
    if type(row) is Task:
        return row
    assert type(row) is PackedTask
    history = row.history
    if type(history) is str:
        history = [TaskEvent(at=row.created_at, state=_PENDING, reason=history)]
    name = row.name
    if name is None:
        name = row.shape.name + row.id[:ID_PREFIX]
    return _replace(
        row.shape,
        id=row.id,
        name=name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        history=history,
    )


def _same_float(a: float, b: float) -> bool:
    """Equal and encoded alike (not 0.0 against -0.0; both floats)."""
    return type(a) is float and type(b) is float and a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _opening_reason(task: Task) -> str | None:
    """The reason of ``task``'s only history line when that line is the one a task starts with
    (Pending at ``created_at``, on no node), else None."""
    if len(task.history) != 1:
        return None
    first = task.history[0]
    if (
        type(first.state) is str
        and first.state == _PENDING
        and first.node_id == ""
        and type(first.reason) is str
        and _same_float(first.at, task.created_at)
    ):
        return shared(first.reason)
    return None


class TaskTable(Mapping[str, Task]):
    """Tasks by id in insertion order; reads give ``Task`` records, ``put`` stores one."""

    __slots__ = ("_rows", "_shapes", "capacity")

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._rows: dict[str, StoredTask] = {}
        self._shapes: dict[bytes, Task] = {}

    def __getitem__(self, task_id: str) -> Task:
        return unpack(self._rows[task_id])

    def get(self, task_id: str, default: Task | None = None) -> Task | None:  # type: ignore[override]
        row = self._rows.get(task_id)
        return default if row is None else unpack(row)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def all(self) -> list[Task]:
        """Every task, in insertion order."""
        return [unpack(row) for row in self._rows.values()]

    def states(self) -> Iterator[str]:
        """Each task's state, in insertion order, without building the records."""
        return (row.state if type(row) is Task else row.shape.state for row in self._rows.values())  # type: ignore[union-attr]

    def named(self, name: str) -> list[str]:
        """Ids of the tasks whose name is ``name`` and derived from their id (``derived_name``),
        in insertion order: a walk over every id for those that start as the name ends (~7 ms of CPU
        at 100k)."""
        if len(name) <= ID_PREFIX or name[-ID_PREFIX - 1] != "-":
            return []
        head = name[-ID_PREFIX:]
        return [
            task_id
            for task_id in self._rows
            if task_id.startswith(head) and _row_name(self._rows[task_id]) == name
        ]

    def in_order(self, task_ids: set[str]) -> list[str]:
        """``task_ids`` (stored ones) in insertion order: a walk over every id."""
        return [task_id for task_id in self._rows if task_id in task_ids]

    def rows(self) -> list[StoredTask]:
        """The stored rows in insertion order (``unpack`` each): a snapshot's capture, without
        building 100k records on the thread that applies entries."""
        return list(self._rows.values())

    def put(self, task: Task, compactor: Compactor | None = None) -> None:
        """Store ``task`` (never mutated afterwards, by anyone) under its id. With ``compactor``
        (a new task, as decoded), what the table keeps of it is compacted first: the whole task
        when it is stored whole (its shape is new), else its history if it keeps one. A task
        stored as a ``PackedTask`` keeps none of its 28 shared values (the shape's stand for
        them), so compacting them would be work thrown away: ~40% of applying a submit."""
        self._rows[task.id] = self._pack(task, compactor)

    def pop(self, task_id: str) -> Task:  # type: ignore[override]
        return unpack(self._rows.pop(task_id))

    def clear(self) -> None:
        self._rows.clear()
        self._shapes.clear()

    def shapes(self) -> int:
        """How many shapes the cache holds (for tests and benchmarks)."""
        return len(self._shapes)

    def _pack(self, task: Task, compactor: Compactor | None = None) -> StoredTask:
        name: str | None = task.name
        prefix = ""
        if type(name) is str and derived_name(name, task.id):
            prefix, name = shared(name[:-ID_PREFIX]), None
        key = _encode(_shape_values(_astuple(task)))
        if prefix:
            key += prefix.encode()  # the values' encoding is one msgpack array: nothing follows it
        shape = self._shapes.get(key)
        if shape is None:
            if compactor is not None:
                task = compactor.task(task)  # equal values of the same types: the key holds
            if len(self._shapes) >= self.capacity:
                self._shapes.clear()
            self._shapes[key] = _replace(
                task, id="", name=prefix, created_at=0.0, updated_at=0.0, history=EMPTY_LIST
            )
            return task
        opening = _opening_reason(task)
        history: list[TaskEvent] | str
        if opening is not None:
            history = opening
        elif compactor is not None:
            history = compactor.history(task.history)
        else:
            history = task.history
        return PackedTask(
            id=task.id,
            name=name,
            created_at=task.created_at,
            updated_at=task.updated_at,
            history=history,
            shape=shape,
        )


def _row_name(row: StoredTask) -> str:
    if type(row) is Task or row.name is not None:
        return row.name  # type: ignore[return-value]
    return row.shape.name + row.id[:ID_PREFIX]  # type: ignore[union-attr]
