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

This module is the pure part a member's Raft thread hosts (``orion.cluster.feed_host``): it
learns which nodes each applied entry touched and tells the host which parked watches to
answer; the host builds the answers from its FSM. The host learns the touched nodes from every
task version the FSM stores (``task_nodes``): the events of ``orion.fsm.events`` leave out
bookkeeping a worker needs (a port hold released, an overlay address), and a worker that
never saw its release go through would send it again. ``on_applied`` derives them from events
instead, for the fan-out model (``tools/bench/scale_fanout.py``).
No clock, no I/O: time comes in as an argument.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orion.fsm.events import Event
from orion.model import Task


def task_nodes(old: Task | None, new: Task | None) -> set[str]:
    """The nodes whose view (their tasks, the port holds they must release) a task's change
    from ``old`` to ``new`` (None: created, removed) may change."""
    nodes = {task.node_id for task in (old, new) if task is not None and task.node_id}
    old_holds = old.port_holds if old is not None else []
    new_holds = new.port_holds if new is not None else []
    if old_holds != new_holds:
        nodes.update(claim.node_id for claim in (*old_holds, *new_holds) if claim.node_id)
    return nodes


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
    before it cannot be vouched for (changes may have been missed) and is answered at once.
    ``max_parked_total``: beyond it ``full`` is True and the host refuses new watches."""

    def __init__(
        self, start_index: int, max_parked_per_node: int = 4, max_parked_total: int = 100_000
    ) -> None:
        self.start_index = start_index
        self.applied_index = start_index
        self._node_of: dict[str, str] = {}  # task id -> node it was last seen on (on_applied only)
        self._changed_at: dict[str, int] = {}  # node id -> index of the last change concerning it
        self._parked: dict[str, list[Watch]] = {}
        self._count = 0  # watches parked
        # (deadline, sequence, watch) of every watch parked; answered ones stay until met.
        self._deadlines: list[tuple[float, int, Watch]] = []
        self._sequence = itertools.count()
        self._max_parked = max_parked_per_node
        self._max_total = max_parked_total

    # ------------------------------------------------------------------ applied entries
    def on_applied(
        self, index: int, events: Iterable[Event], task_node: Callable[[str], str | None]
    ) -> list[Due]:
        """Entry ``index`` was applied with ``events``; ``task_node(task_id)`` says where a task
        is now (None: removed). Returns the parked watches this entry answers."""
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
        return self.on_touched(index, touched)

    def on_touched(self, index: int, nodes: Iterable[str]) -> list[Due]:
        """Entry ``index`` was applied and changed what ``nodes`` see (none: the feed's index
        still moves on). Returns the parked watches it answers."""
        if index <= self.applied_index:
            raise ValueError(f"on_applied: index {index} after {self.applied_index}: entries go in order")
        self.applied_index = index
        due: list[Due] = []
        for node in nodes:
            self._changed_at[node] = index
            due.extend(Due(watch, True) for watch in self._take(node))
        return due

    def seed(self, tasks: Iterable[tuple[str, str]]) -> None:
        """Where each task is at ``start_index`` (task id, node id): read once from the FSM."""
        for task_id, node_id in tasks:
            if node_id:
                self._node_of[task_id] = node_id

    # ------------------------------------------------------------------ watches
    def changed_since(self, node_id: str, since: int) -> bool:
        """Must a watch from ``since`` get the node's whole list now? Yes when something of
        it changed after ``since``, or ``since`` is before what this feed vouches for, or
        ahead of it (the worker last heard a member further on): send all."""
        if since < self.start_index or since > self.applied_index:
            return True
        return self._changed_at.get(node_id, 0) > since

    def watch(self, node_id: str, since: int, deadline: float, reply_to: object) -> Due | None:
        """A worker's watch: answered now (returned), or parked until a change or ``deadline``.
        A node's older parked watches beyond the limit are answered at once (a worker that
        re-sent is waiting on the newest one)."""
        if self.changed_since(node_id, since):
            return Due(Watch(node_id, since, deadline, reply_to), True)
        watch = Watch(node_id, since, deadline, reply_to)
        parked = self._parked.setdefault(node_id, [])
        parked.append(watch)
        self._count += 1
        heapq.heappush(self._deadlines, (deadline, next(self._sequence), watch))
        if len(parked) > self._max_parked:
            self._count -= 1
            return Due(parked.pop(0), False)
        return None

    def expire(self, now: float) -> list[Due]:
        """Watches whose deadline passed: answered with nothing new."""
        due: list[Due] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            watch = heapq.heappop(heap)[2]
            if self._unpark(watch):
                due.append(Due(watch, False))
        return due

    def next_deadline(self) -> float | None:
        """The earliest deadline of a parked watch (None: none parked)."""
        heap = self._deadlines
        while heap and not self._is_parked(heap[0][2]):
            heapq.heappop(heap)  # answered before its deadline
        return heap[0][0] if heap else None

    def release(self, node_id: str) -> list[Due]:
        """Answer a node's parked watches now with nothing new: what the answer says beside
        its tasks changed (the node joined or left the configuration)."""
        return [Due(watch, False) for watch in self._take(node_id)]

    def cancel_all(self) -> list[Due]:
        """Answer everyone, unchanged: this member stops serving (it lost its FSM, or stops),
        or the leader changed (the workers' writes go elsewhere now)."""
        due = [Due(w, False) for watches in self._parked.values() for w in watches]
        self._parked.clear()
        self._deadlines.clear()
        self._count = 0
        return due

    @property
    def parked(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        """As many watches parked as allowed: the host refuses the next that would park."""
        return self._count >= self._max_total

    def _take(self, node_id: str) -> list[Watch]:
        watches = self._parked.pop(node_id, [])
        self._count -= len(watches)
        return watches

    def _is_parked(self, watch: Watch) -> bool:
        return any(w is watch for w in self._parked.get(watch.node_id, ()))

    def _unpark(self, watch: Watch) -> bool:
        parked = self._parked.get(watch.node_id)
        if parked is None:
            return False
        for i, w in enumerate(parked):
            if w is watch:
                del parked[i]
                self._count -= 1
                if not parked:
                    del self._parked[watch.node_id]
                return True
        return False
