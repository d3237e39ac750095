"""Who the Raft actor tells what: the other actors of the node learn of its changes here.

Three audiences: actors that act on the state (scheduler, reconciler, ...) are told
``StateChanged`` (with what the applied entries touched: orion/fsm/touched.py) and
``LeadershipChanged``; actors that stamp the cluster's identity on what
they send (gossip, worker, ...) are told ``ClusterIdentity``; the events actor is told the
events of every applied entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pykka

from orion.actors.events_actor import AppliedEvents, EventsReset
from orion.actors.messages import ClusterIdentity, LeadershipChanged, StateChanged
from orion.fsm.state import ClusterState
from orion.fsm.touched import EVERYTHING, Touched, TouchedLog
from orion.model import Task
from orion.volumes.spec import Volume

# How long the events of applied entries may wait to go to the events actor with the next
# ones: one tell (a thread woken) per this interval instead of per Ready. On a follower under
# load that tell was a fifth of the Raft thread's interpreter time (GIL samples at c=16).
EVENTS_HOLD_S = 0.02

# ``wants_state(touched, node_id)`` on a state listener's class: whether a StateChanged with
# ``touched`` may matter to it (``node_id``: this node's). Decided here, on the Raft thread, so a
# loop that would only drop the message is not even woken (a thread switch per burst each).
StateFilter = Callable[[Touched, str], bool]


class RaftListeners:
    def __init__(self, fsm: ClusterState, incarnation: str, node_id: str = "") -> None:
        """``node_id``: this node's; without it every state listener is told every change."""
        self.fsm = fsm
        self.incarnation = incarnation
        self.node_id = node_id
        self.state: list[pykka.ActorRef] = []  # told StateChanged and LeadershipChanged
        # (listener, its class's wants_state or None, told only while this node leads)
        self._state_filters: list[tuple[pykka.ActorRef, StateFilter | None, bool]] = []
        self.is_leader = False
        self.identity: list[pykka.ActorRef] = []  # told ClusterIdentity
        self.event_sink: pykka.ActorRef | None = None  # told AppliedEvents (orion/actors/events_actor.py)
        self.cluster_id = ""
        self._events_held_since: float | None = None  # events applied and not yet told (hold_events)
        # What the entries applied since the last StateChanged touched: fed by ``applied`` and
        # by the state's hooks, which see every task version and volume record stored while an
        # entry applies (after whoever listened before: the submit placer, the feed host).
        self.touched = TouchedLog()
        events = fsm.events
        earlier_task, earlier_volume = events.on_task, events.on_volume

        def on_task(index: int, old: Task | None, new: Task | None) -> None:
            if earlier_task is not None:
                earlier_task(index, old, new)
            self.touched.task(old, new)

        def on_volume(index: int, old: Volume | None, new: Volume | None) -> None:
            if earlier_volume is not None:
                earlier_volume(index, old, new)
            self.touched.volume()

        events.on_task = on_task
        events.on_volume = on_volume

    def add(self, ref: pykka.ActorRef) -> None:
        """A state listener. Its class may say what concerns it: ``wants_state`` (a StateFilter)
        and ``leader_only`` (a loop that acts only on the leader: it is told LeadershipChanged,
        and a round on becoming leader reads everything)."""
        self.state.append(ref)
        actor_class = getattr(ref, "actor_class", None)
        wants = getattr(actor_class, "wants_state", None)
        leader_only = bool(getattr(actor_class, "leader_only", False))
        self._state_filters.append((ref, wants, leader_only))

    def add_identity(self, ref: pykka.ActorRef) -> None:
        self.identity.append(ref)
        ref.tell(ClusterIdentity(self.cluster_id, self.incarnation))

    def set_event_sink(self, ref: pykka.ActorRef) -> None:
        """From now on, tell ``ref`` the events of every applied entry; it starts at the
        applied index (what was applied before is not known as events)."""
        self.event_sink = ref
        self.fsm.events.enabled = True
        self.fsm.take_events()
        self._events_held_since = None
        ref.tell(EventsReset(self.fsm.applied_index))

    def leadership_changed(self, is_leader: bool, leader_id: str | None) -> None:
        self.is_leader = is_leader
        _tell_all(self.state, LeadershipChanged(is_leader, leader_id))

    def cluster_seen(self, cluster_id: str) -> None:
        """Tell the identity listeners once the configuration names another cluster id."""
        if cluster_id != self.cluster_id:
            self.cluster_id = cluster_id
            _tell_all(self.identity, ClusterIdentity(cluster_id, self.incarnation))

    def applied(self, data: bytes, replaced: bool = False) -> None:
        """The Raft actor applied a NORMAL entry with ``data``; ``replaced``: the state dropped
        what it held first (a worker's fed tasks), unseen by the hooks."""
        self.touched.command(data)
        if replaced:
            self.touched.replaced()

    def take_touched(self) -> Touched:
        """What the entries applied since the last call touched (everything if none was told)."""
        return self.touched.take(self.fsm)

    def state_changed(self, touched: Touched = EVERYTHING, now: float | None = None) -> None:
        """Tell the state listeners; without ``touched`` (the worker feed replaced this node's
        tasks), every one of them looks. The events of the entries applied go to the events
        actor now, or with ``now`` (the caller keeps the clock: ``events_due``, ``flush_events``)
        within ``EVENTS_HOLD_S`` of the first held, together with those applied meanwhile."""
        node_id = self.node_id
        if touched.everything or not node_id:
            told = self.state
        else:
            told = [
                ref
                for ref, wants, leader_only in self._state_filters
                if (self.is_leader or not leader_only) and (wants is None or wants(touched, node_id))
            ]
        _tell_all(told, StateChanged(touched))
        if self.event_sink is None:
            return
        if now is None:
            self.flush_events()
        elif self._events_held_since is None:
            self._events_held_since = now

    @property
    def events_due(self) -> float | None:
        """When the held events must go (None: none held)."""
        held = self._events_held_since
        return None if held is None else held + EVENTS_HOLD_S

    def flush_events(self) -> None:
        """Tell the events actor the events of every entry applied since the last time."""
        self._events_held_since = None
        if self.event_sink is not None:
            _tell_all([self.event_sink], AppliedEvents(self.fsm.take_events(), self.fsm.applied_index))

    def state_replaced(self) -> None:
        """A snapshot replaced the state: the entries it stands for were not applied here, so
        the event stream starts over at its index (the events held of entries applied before
        it went first: ``flush_events`` before the state is restored)."""
        self.touched.replaced()
        self._events_held_since = None
        if self.event_sink is not None:
            self.fsm.take_events()
            _tell_all([self.event_sink], EventsReset(self.fsm.applied_index))


def _tell_all(refs: list[pykka.ActorRef], message: Any) -> None:
    """Tell every listener; one that has stopped (the node is shutting down, actors stop one
    by one) is skipped rather than taking the Raft actor down with it."""
    for ref in refs:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(message)
