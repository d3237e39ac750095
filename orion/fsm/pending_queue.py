"""The ids of the Pending tasks that should run, in the order they became Pending (issue 16 item 5).

It was a ``dict[str, None]``: ~52 bytes per Pending task at 100k (the table's slots and its
room to grow), 5 MB of a node holding 100k unplaceable tasks. Here the ids are a list (8
bytes each) that an id leaving does not shorten at once: the id is only counted in
``_left`` (its earliest occurrences are the stale ones: an id is appended again only after it
left), and the list is rewritten without stale entries once they are as many as the live ones
(amortized O(1) per change). Membership is the caller's to know (``ClusterState``: a task is
here exactly when its stored record is Pending with desired Run): the queue keeps no set.

Iteration gives the live ids in the order they were added, as the dict did, and so does
every replica given the same changes: the rewrite keeps that order and is decided by the
counts alone. ``version`` changes with every add, discard and rewrite, so a reader holding an
iterator across calls (``ClusterState.pending_window``) knows when to start again.
"""

from __future__ import annotations

from collections.abc import Iterator

REWRITE_MIN = 64  # stale entries below this never cost a rewrite


class PendingQueue:
    __slots__ = ("_left", "_live", "_order", "_stale", "version")

    def __init__(self) -> None:
        self._order: list[str] = []
        self._left: dict[str, int] = {}  # id -> how many of its occurrences are stale
        self._live = 0
        self._stale = 0
        self.version = 0

    def __len__(self) -> int:
        return self._live

    def __iter__(self) -> Iterator[str]:
        order, left = self._order, self._left
        if not left:
            return iter(order)
        return _live_ids(order, dict(left))

    def add(self, task_id: str) -> None:
        """Append ``task_id``, which must not be in the queue now."""
        self._order.append(task_id)
        self._live += 1
        self.version += 1

    def discard(self, task_id: str) -> None:
        """Take out ``task_id``, which must be in the queue now."""
        self._left[task_id] = self._left.get(task_id, 0) + 1
        self._live -= 1
        self._stale += 1
        self.version += 1
        if self._stale >= REWRITE_MIN and self._stale >= self._live:
            self._order = list(iter(self))
            self._left = {}
            self._stale = 0

    def clear(self) -> None:
        self._order = []
        self._left = {}
        self._live = self._stale = 0
        self.version += 1


def _live_ids(order: list[str], left: dict[str, int]) -> Iterator[str]:
    """The ids of ``order`` but the first ``left[id]`` occurrences of each (``left`` is the
    caller's copy: it is used up)."""
    for task_id in order:
        stale = left.get(task_id)
        if stale:
            left[task_id] = stale - 1
            continue
        yield task_id
