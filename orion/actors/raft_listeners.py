"""Who the Raft actor tells what: the other actors of the node learn of its changes here.

Three audiences: actors that act on the state (scheduler, reconciler, ...) are told
``StateChanged`` and ``LeadershipChanged``; actors that stamp the cluster's identity on what
they send (gossip, worker, ...) are told ``ClusterIdentity``; the events actor is told the
events of every applied entry.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pykka

from orion.actors.events_actor import AppliedEvents, EventsReset
from orion.actors.messages import ClusterIdentity, LeadershipChanged, StateChanged
from orion.fsm.state import ClusterState


class RaftListeners:
    def __init__(self, fsm: ClusterState, incarnation: str) -> None:
        self.fsm = fsm
        self.incarnation = incarnation
        self.state: list[pykka.ActorRef] = []  # told StateChanged and LeadershipChanged
        self.identity: list[pykka.ActorRef] = []  # told ClusterIdentity
        self.event_sink: pykka.ActorRef | None = None  # told AppliedEvents (orion/actors/events_actor.py)
        self.cluster_id = ""

    def add(self, ref: pykka.ActorRef) -> None:
        self.state.append(ref)

    def add_identity(self, ref: pykka.ActorRef) -> None:
        self.identity.append(ref)
        ref.tell(ClusterIdentity(self.cluster_id, self.incarnation))

    def set_event_sink(self, ref: pykka.ActorRef) -> None:
        """From now on, tell ``ref`` the events of every applied entry; it starts at the
        applied index (what was applied before is not known as events)."""
        self.event_sink = ref
        self.fsm.events.enabled = True
        self.fsm.take_events()
        ref.tell(EventsReset(self.fsm.applied_index))

    def leadership_changed(self, is_leader: bool, leader_id: str | None) -> None:
        _tell_all(self.state, LeadershipChanged(is_leader, leader_id))

    def cluster_seen(self, cluster_id: str) -> None:
        """Tell the identity listeners once the configuration names another cluster id."""
        if cluster_id != self.cluster_id:
            self.cluster_id = cluster_id
            _tell_all(self.identity, ClusterIdentity(cluster_id, self.incarnation))

    def state_changed(self) -> None:
        _tell_all(self.state, StateChanged())
        if self.event_sink is not None:
            _tell_all([self.event_sink], AppliedEvents(self.fsm.take_events(), self.fsm.applied_index))

    def state_replaced(self) -> None:
        """A snapshot replaced the state: the entries it stands for were not applied here, so
        the event stream starts over at its index."""
        if self.event_sink is not None:
            self.fsm.take_events()
            _tell_all([self.event_sink], EventsReset(self.fsm.applied_index))


def _tell_all(refs: list[pykka.ActorRef], message: Any) -> None:
    """Tell every listener; one that has stopped (the node is shutting down, actors stop one
    by one) is skipped rather than taking the Raft actor down with it."""
    for ref in refs:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(message)
