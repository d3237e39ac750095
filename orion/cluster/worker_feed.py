"""What a worker needs of the replicated state, served as a resumable watch (issue 20, item 3).

Today every node replicates the whole Raft log: at N nodes the leader sends every entry N - 1
times and every node applies every entry. The fix the scale curve calls for: members beyond
the voters and a few standbys are *workers*. They are not in the Raft configuration; they
watch, from any voter, only what concerns them, as Nomad clients (blocking queries on their
allocations with a minimum index) and kubelets (a watch from a resourceVersion) do:

- a worker sends ``watch(node_id, since)``: ``since`` is the index of the last answer it
  holds (0: none yet);
- the voter answers at once if anything of that node changed after ``since`` (a task placed
  on it, moved away, stopped, its state reported), or if ``since`` is older than what this
  voter can vouch for (its feed started later: a restart, a new leader); otherwise it parks
  the watch and answers when such a change is applied, or with "nothing new" at the deadline
  (which doubles as the worker's sign of life from the voter side);
- an answer is level-triggered: the node's whole task list at the voter's applied index
  (a node runs tens of tasks, not thousands), plus the cluster facts it needs (cluster id,
  leader and its address). A lost answer or a switch to another voter costs one re-send, never
  a gap: the next watch carries the index of the last answer actually received.

This module is the pure part a voter's Raft thread hosts: it learns from the events of each
applied entry (``orion.fsm.events``, the same on every replica) which nodes an entry touched,
and tells the host which parked watches to answer. The host builds the answers from its FSM.
No clock, no I/O: time comes in as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orion.fsm.events import Event


@dataclass(frozen=True, slots=True)
class Watch:
    """A parked watch: answer ``reply_to`` (the host's handle) about ``node_id``."""

    node_id: str
    since: int
    deadline: float
    reply_to: object


@dataclass(frozen=True, slots=True)
class Due:
    """A watch to answer now; ``changed``: False when only its deadline passed."""

    watch: Watch
    changed: bool


class WorkerFeed:
    """``start_index``: the applied index when this feed began watching the FSM; a watch from
    before it cannot be vouched for (changes may have been missed) and is answered at once."""

    def __init__(self, start_index: int, max_parked_per_node: int = 4) -> None:
        self.start_index = start_index
        self.applied_index = start_index
        self._node_of: dict[str, str] = {}  # task id -> node it was last seen on
        self._changed_at: dict[str, int] = {}  # node id -> index of the last change concerning it
        self._parked: dict[str, list[Watch]] = {}
        self._max_parked = max_parked_per_node

    # ------------------------------------------------------------------ applied entries
    def on_applied(
        self, index: int, events: Iterable[Event], task_node: Callable[[str], str | None]
    ) -> list[Due]:
        """Entry ``index`` was applied with ``events``; ``task_node(task_id)`` says where a task
        is now (None: removed). Returns the parked watches this entry answers."""
        if index <= self.applied_index:
            raise ValueError(f"on_applied: index {index} after {self.applied_index}: entries go in order")
        self.applied_index = index
        touched: set[str] = set()
        for event in events:
            if event.type != "task":
                continue
            before = self._node_of.get(event.id, "")
            now = task_node(event.id) or ""
            if now:
                self._node_of[event.id] = now
            else:
                self._node_of.pop(event.id, None)
            touched.update(node for node in (before, now) if node)
        due: list[Due] = []
        for node in touched:
            self._changed_at[node] = index
            due.extend(Due(watch, True) for watch in self._parked.pop(node, []))
        return due

    def seed(self, tasks: Iterable[tuple[str, str]]) -> None:
        """Where each task is at ``start_index`` (task id, node id): read once from the FSM."""
        for task_id, node_id in tasks:
            if node_id:
                self._node_of[task_id] = node_id

    # ------------------------------------------------------------------ watches
    def watch(self, node_id: str, since: int, deadline: float, reply_to: object) -> Due | None:
        """A worker's watch: answered now (returned), or parked until a change or ``deadline``.
        A node's older parked watches beyond the limit are answered at once (a worker that
        re-sent is waiting on the newest one)."""
        if since < self.start_index or since > self.applied_index:
            # Before what this feed vouches for, or from a voter ahead of this one: send all.
            return Due(Watch(node_id, since, deadline, reply_to), True)
        if self._changed_at.get(node_id, 0) > since:
            return Due(Watch(node_id, since, deadline, reply_to), True)
        parked = self._parked.setdefault(node_id, [])
        parked.append(Watch(node_id, since, deadline, reply_to))
        if len(parked) > self._max_parked:
            return Due(parked.pop(0), False)
        return None

    def expire(self, now: float) -> list[Due]:
        """Watches whose deadline passed: answered with nothing new."""
        due: list[Due] = []
        for node in list(self._parked):
            keep = [w for w in self._parked[node] if w.deadline > now]
            due.extend(Due(w, False) for w in self._parked[node] if w.deadline <= now)
            if keep:
                self._parked[node] = keep
            else:
                del self._parked[node]
        return due

    def cancel_all(self) -> list[Due]:
        """This voter stops serving (it lost its FSM, or stops): answer everyone, unchanged."""
        due = [Due(w, False) for watches in self._parked.values() for w in watches]
        self._parked.clear()
        return due

    @property
    def parked(self) -> int:
        return sum(len(watches) for watches in self._parked.values())
