"""Stored tasks without duplicate copies of what many tasks share.

A decoded task owns a fresh empty dict or list for every container field it leaves empty
(msgspec copies mutable defaults per instance), and its own copy of every string: the image,
the node id, the pending reason, the selector and command words, repeated across thousands of
tasks. In a state of 100k tasks that was about half of the FSM's memory. Before a task is
stored, ``compact_task`` points its empty containers at one shared empty dict or list and its
short strings at one interned copy (``sys.intern``: a string no task uses any more is freed).

Non-empty containers equal item for item, in the same order (the selectors and command of
loadgen's tasks, the env and ports of one service's replicas), are shared too: a ``Compactor``
(one per ClusterState, bounded) hands out the first copy it saw. Order is part of the key, so a
shared dict encodes exactly as the task's own did: snapshots stay byte-identical on every
replica whatever each one's cache holds.

Sharing is safe only because stored records are never mutated (orion/fsm/state.py's rule for
every reader too): a change builds a new record. Values are equal before and after, so
snapshots, encodings and comparisons are unchanged.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import msgspec

from orion.model import Task, TaskEvent

# Shared by every stored task that leaves the field empty. Never mutate them (nobody may
# mutate a stored record's fields).
EMPTY_DICT: dict[Any, Any] = {}
EMPTY_LIST: list[Any] = []

INTERN_MAX = 128  # longer strings (env values, long commands) are rarely shared: not worth hashing

_LIST_FIELDS = ("port_holds", "restart_times")  # per-task values: only the empty one shared
_SHARED_LISTS = ("command", "volumes")  # equal lists shared (command None stays None)
_STRING_FIELDS = ("image", "state", "reason", "node_id", "host_ip", "desired", "service", "health")
_WORD_DICTS = ("node_selectors", "port_bindings", "env")  # keys and short values interned
# Numbers decoded from a command are new objects per task (msgspec has no float cache, and
# ints past 256 are not cached): 0.0 for cpu and drain_at was 48 bytes of every stored task.
_NUMBER_FIELDS = ("memory", "cpu", "disk", "drain_at", "stop_grace")
ZERO = 0.0


def shared(value: str) -> str:
    """The interned copy of a short string (long ones, and enum members, which are shared
    already and cannot be interned, are returned as they are)."""
    return sys.intern(value) if type(value) is str and len(value) <= INTERN_MAX else value


def _number(value: Any) -> Any:
    """``value`` itself, or 0.0 as the one shared object (not -0.0: it encodes differently)."""
    if type(value) is float and value == 0.0 and value is not ZERO and math.copysign(1.0, value) > 0:
        return ZERO
    return value


def _words(values: dict[str, str]) -> dict[str, str]:
    return {shared(key): shared(value) for key, value in values.items()}


class Compactor:
    """Compacts tasks before they are stored, sharing equal containers among them. Holds at
    most ``capacity`` distinct containers (then starts over: tasks keep what they were given)."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._known: dict[tuple[Any, ...], Any] = {}

    def _first(self, key: tuple[Any, ...], value: Any) -> Any:
        known = self._known.get(key)
        if known is not None:
            return known
        if len(self._known) >= self.capacity:
            self._known.clear()
        self._known[key] = value
        return value

    def words(self, name: str, values: dict[str, str]) -> dict[str, str]:
        """A str -> str dict with interned short keys and values, shared with equal ones."""
        if not values:
            return EMPTY_DICT
        interned = _words(values)
        return self._first((name, *interned.items()), interned)

    def items(self, name: str, values: list[Any]) -> list[Any]:
        """A list of words or frozen records, shared with an equal one (same order)."""
        if not values:
            return EMPTY_LIST
        interned = [shared(value) if isinstance(value, str) else value for value in values]
        try:
            return self._first((name, *interned), interned)
        except TypeError:  # an unhashable element: kept as it is
            return interned

    def number(self, value: Any) -> Any:
        """A shared copy of a float or a big int equal to ``value`` and of the same type (so it
        encodes the same): 0.0 always, others through the cache (many tasks ask for the same
        memory and cpu)."""
        kind = type(value)
        if kind is float:
            if value == 0.0:
                return _number(value)
            if math.isnan(value):
                return value  # NaN != NaN: never found in the cache, and never shared
        elif kind is not int or -5 <= value <= 256:  # small ints are shared by Python already
            return value
        return self._first((kind, value), value)

    def task(self, task: Task) -> Task:
        """``task`` with shared containers and interned short strings (a new record if
        anything changed; the input is not modified)."""
        changes: dict[str, Any] = {}
        for name in _WORD_DICTS:
            values = getattr(task, name)
            compact = self.words(name, values)
            if compact is not values:
                changes[name] = compact
        if task.host_ports is not EMPTY_DICT and not task.host_ports:
            changes["host_ports"] = EMPTY_DICT
        for name in _SHARED_LISTS:
            values = getattr(task, name)
            if values is not None:
                compact = self.items(name, values)
                if compact is not values:
                    changes[name] = compact
        for name in _LIST_FIELDS:
            values = getattr(task, name)
            if not values and values is not EMPTY_LIST:
                changes[name] = EMPTY_LIST
        for name in _STRING_FIELDS:
            value = getattr(task, name)
            interned = shared(value)
            if interned is not value:
                changes[name] = interned
        for name in _NUMBER_FIELDS:
            value = getattr(task, name)
            number = self.number(value)
            if number is not value:
                changes[name] = number
        if task.history:
            history = self.history(task.history)
            if history is not task.history:
                changes["history"] = history
        return msgspec.structs.replace(task, **changes) if changes else task

    @staticmethod
    def history(events: list[TaskEvent]) -> list[TaskEvent]:
        """``events`` with interned strings (the same list if every line was so already)."""
        history = [compact_event(event) for event in events]
        if any(new is not old for new, old in zip(history, events, strict=True)):
            return history
        return events


def compact_task(task: Task) -> Task:
    """``task`` compacted on its own (no containers shared with other tasks)."""
    return Compactor().task(task)


def compact_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The values of a ``change_task`` in place: empty containers shared, strings interned."""
    for name, value in changes.items():
        if isinstance(value, str):
            changes[name] = shared(value)
        elif not value and isinstance(value, dict):
            changes[name] = EMPTY_DICT
        elif not value and isinstance(value, list):
            changes[name] = EMPTY_LIST
    return changes


def compact_event(event: TaskEvent) -> TaskEvent:
    """A history line with interned strings."""
    state, node_id, reason = shared(event.state), shared(event.node_id), shared(event.reason)
    if state is event.state and node_id is event.node_id and reason is event.reason:
        return event
    return TaskEvent(at=event.at, state=state, node_id=node_id, reason=reason)
