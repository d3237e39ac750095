"""orion/actors/raft_listeners.py: what the other actors of a node are told by the Raft actor,
and that one listener having stopped never keeps the others from being told."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from orion.actors.events_actor import AppliedEvents, EventsReset
from orion.actors.messages import ClusterIdentity, LeadershipChanged, StateChanged
from orion.actors.raft_listeners import EVENTS_HOLD_S, RaftListeners
from orion.fsm.commands import SubmitTask, encode_command
from orion.fsm.snapshot import encode_snapshot
from orion.fsm.state import ClusterState
from orion.model import Task


class Listener(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.told: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "told":
            return list(self.told)
        self.told.append(message)
        return None


@pytest.fixture
def listener() -> Iterator[Any]:
    refs: list[pykka.ActorRef] = []

    def make() -> pykka.ActorRef:
        refs.append(Listener.start())
        return refs[-1]

    yield make
    for ref in refs:
        ref.stop()


def submit(fsm: ClusterState, index: int, task_id: str) -> None:
    fsm.apply(
        index, encode_command(SubmitTask(task=Task(id=task_id, name=task_id, image="b"), at=time.time()))
    )


def test_a_stopped_listener_is_skipped_and_the_others_are_still_told(listener) -> None:
    listeners = RaftListeners(ClusterState(), "inc1")
    gone, live = listener(), listener()
    listeners.add(gone)
    listeners.add(live)
    gone.stop()
    listeners.leadership_changed(True, "a")
    listeners.state_changed()
    assert live.ask("told") == [LeadershipChanged(True, "a"), StateChanged()]


def test_identity_listeners_hear_the_cluster_id_at_once_and_then_only_when_it_changes(listener) -> None:
    listeners = RaftListeners(ClusterState(), "inc1")
    gossip = listener()
    listeners.add_identity(gossip)
    listeners.cluster_seen("c1")
    listeners.cluster_seen("c1")
    assert gossip.ask("told") == [ClusterIdentity("", "inc1"), ClusterIdentity("c1", "inc1")]


def test_the_event_sink_hears_applied_events_and_starts_over_when_a_snapshot_replaces_the_state(
    listener,
) -> None:
    fsm = ClusterState()
    submit(fsm, 1, "before")  # applied before the sink was set: not known as events
    listeners = RaftListeners(fsm, "inc1")
    sink = listener()
    listeners.set_event_sink(sink)
    submit(fsm, 2, "t2")
    listeners.state_changed()
    submit(fsm, 3, "t3")  # its events are dropped: the snapshot below stands for this entry
    leader = ClusterState()
    for index, task_id in enumerate(["t2", "t3", "t4", "t5"], start=1):
        submit(leader, index, task_id)
    fsm.restore(encode_snapshot(leader.snapshot_source()))
    listeners.state_replaced()
    submit(fsm, 5, "t6")
    listeners.state_changed()
    told = sink.ask("told")
    assert [type(m) for m in told] == [EventsReset, AppliedEvents, EventsReset, AppliedEvents]
    assert told[0] == EventsReset(1) and told[2] == EventsReset(4)
    assert told[1].applied == 2 and [(e.index, e.id) for e in told[1].events] == [(2, "t2")]
    assert told[3].applied == 5 and [(e.index, e.id) for e in told[3].events] == [(5, "t6")]


def test_events_held_by_the_clock_go_together_within_the_hold(listener) -> None:
    """With the Raft actor's clock (``now``), the events of several Readies go in one tell once
    ``events_due`` has passed; without it they go at once; a snapshot's reset comes after them."""
    fsm = ClusterState()
    listeners = RaftListeners(fsm, "inc1")
    sink = listener()
    listeners.set_event_sink(sink)
    assert listeners.events_due is None
    submit(fsm, 1, "t1")
    listeners.state_changed(now=100.0)
    submit(fsm, 2, "t2")
    listeners.state_changed(now=100.01)
    assert listeners.events_due == pytest.approx(100.0 + EVENTS_HOLD_S)
    assert sink.ask("told") == [EventsReset(0)]
    listeners.flush_events()
    assert listeners.events_due is None
    submit(fsm, 3, "t3")
    listeners.state_changed(now=101.0)
    listeners.flush_events()  # the Raft actor, before a snapshot replaces the state
    listeners.state_replaced()
    submit(fsm, 4, "t4")
    listeners.state_changed()  # no clock: at once
    told = sink.ask("told")
    assert [type(m) for m in told] == [EventsReset, AppliedEvents, AppliedEvents, EventsReset, AppliedEvents]
    assert told[1].applied == 2 and [(e.index, e.id) for e in told[1].events] == [(1, "t1"), (2, "t2")]
    assert told[2].applied == 3 and [e.id for e in told[2].events] == ["t3"]
    assert told[3] == EventsReset(3) and [e.id for e in told[4].events] == ["t4"]
