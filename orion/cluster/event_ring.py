"""A node's bounded window of recent events, read by Raft index (``orion events``).

Every node applies the same log, so every node derives the same events (orion/fsm/events.py)
and any node can serve the stream. A reader holds a cursor: the Raft index up to which it has
seen every event. ``page(since)`` answers the events after ``since``, whole entries at a time
(the events of one index are never split), and the cursor to ask with next. The cursor moves
past entries without (matching) events too, so a reader that moves to another node resumes
exactly there: no gap, no duplicate.

The window starts where this node began to apply entries itself (after a restored snapshot,
or when the node started) and its oldest entries are dropped when it is full: the
``horizon`` is the newest index whose events may be missing. A cursor before it cannot be
served, like Kubernetes' "resource version too old": ``EventGap``.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection

from orion.fsm.events import Event, EventPage

DEFAULT_CAPACITY = 10_000  # events kept per node


class EventGap(Exception):
    """The events after the reader's cursor are partly gone from this node's window."""

    def __init__(self, since: int, horizon: int) -> None:
        super().__init__(
            f"gap: events before index {horizon + 1} are no longer kept on this node "
            f"(asked for those after {since}); start again from a fresh listing"
        )
        self.since = since
        self.horizon = horizon


class EventRing:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity}")
        self.capacity = capacity
        self._events: list[Event] = []
        self._head = 0  # the oldest kept event is _events[_head]; dropped ones are compacted away
        self._indexes: list[int] = []  # Raft index of each event in _events (for bisect)
        self.horizon = 0
        self.applied = 0

    def __len__(self) -> int:
        return len(self._events) - self._head

    def reset(self, index: int) -> None:
        """Start over at ``index`` (a snapshot was installed, or the node started there):
        nothing at or before it is known."""
        self._events.clear()
        self._indexes.clear()
        self._head = 0
        self.horizon = index
        self.applied = index

    def add(self, events: list[Event], applied: int) -> None:
        """The events of entries applied up to ``applied``, oldest first."""
        for event in events:
            self._events.append(event)
            self._indexes.append(event.index)
        self.applied = max(self.applied, applied, *(e.index for e in events[-1:]))
        if len(self) > self.capacity:
            self._drop(len(self) - self.capacity)

    def _drop(self, count: int) -> None:
        # Drop whole entries: a reader then never gets half of an index's events.
        cut = self._head + count
        self.horizon = max(self.horizon, self._indexes[cut - 1])
        cut = bisect.bisect_right(self._indexes, self.horizon, lo=self._head)
        self._head = cut
        if self._head > self.capacity:  # compact now and then, not on every drop
            del self._events[: self._head]
            del self._indexes[: self._head]
            self._head = 0

    def page(self, since: int | None, types: Collection[str] = (), limit: int = 1000) -> EventPage:
        """Events after ``since`` (None: everything kept), only of ``types`` if given, at most
        about ``limit`` (an entry's events are never split); EventGap when ``since`` is before
        the horizon."""
        start = self.horizon if since is None else since
        if start < self.horizon:
            raise EventGap(start, self.horizon)
        position = bisect.bisect_right(self._indexes, start, lo=self._head)
        found: list[Event] = []
        cursor = max(start, self.applied)
        for i in range(position, len(self._events)):
            event = self._events[i]
            if len(found) >= limit and event.index != found[-1].index:
                cursor = found[-1].index
                break
            if not types or event.type in types:
                found.append(event)
        return EventPage(events=found, cursor=cursor, horizon=self.horizon, applied=self.applied)
