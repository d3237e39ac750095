"""The worker feed (issue 20 item 3): a watch is answered when an applied entry touches its
node (a task placed there, moved away, or its state changed), at its deadline with nothing new,
and at once when it resumes from an index the feed cannot vouch for."""

from __future__ import annotations

import msgspec
import pytest

from orion.cluster.worker_feed import WorkerFeed, task_nodes
from orion.fsm.events import Event
from orion.model import PortClaim, Task


def _task_event(index: int, task_id: str) -> Event:
    return Event(index=index, at=0.0, type="task", action="changed", id=task_id)


def test_a_parked_watch_is_answered_by_the_entry_that_places_a_task_on_its_node() -> None:
    feed = WorkerFeed(start_index=10)
    assert feed.watch("h1", 10, deadline=30.0, reply_to="w1") is None
    assert feed.watch("h2", 10, deadline=30.0, reply_to="w2") is None
    due = feed.on_applied(11, [_task_event(11, "t1")], {"t1": "h1"}.get)
    assert [(d.watch.reply_to, d.changed) for d in due] == [("w1", True)]
    assert feed.parked == 1  # h2's watch waits on


def test_a_task_moved_away_answers_the_node_it_left_and_the_node_it_went_to() -> None:
    feed = WorkerFeed(start_index=5)
    feed.seed([("t1", "h1")])
    feed.watch("h1", 5, 30.0, "old")
    feed.watch("h2", 5, 30.0, "new")
    due = feed.on_applied(6, [_task_event(6, "t1")], {"t1": "h2"}.get)
    assert sorted(d.watch.reply_to for d in due) == ["new", "old"]


def test_a_removed_task_answers_its_last_node() -> None:
    feed = WorkerFeed(start_index=5)
    feed.seed([("t1", "h1")])
    feed.watch("h1", 5, 30.0, "w")
    due = feed.on_applied(6, [_task_event(6, "t1")], lambda _: None)
    assert [d.watch.reply_to for d in due] == ["w"]


def test_resuming_after_a_change_it_missed_is_answered_at_once() -> None:
    feed = WorkerFeed(start_index=5)
    feed.on_applied(6, [_task_event(6, "t1")], {"t1": "h1"}.get)
    feed.on_applied(7, [], {}.get)
    answered = feed.watch("h1", 5, 30.0, "w")
    assert answered is not None and answered.changed
    # Up to date (since 6 or later): it waits.
    assert feed.watch("h1", 7, 30.0, "w2") is None


def test_an_index_the_feed_cannot_vouch_for_is_answered_at_once() -> None:
    feed = WorkerFeed(start_index=100)  # e.g. a new leader's feed
    before = feed.watch("h1", 40, 30.0, "old-voter")
    ahead = feed.watch("h1", 120, 30.0, "ahead")
    assert before is not None and before.changed
    assert ahead is not None and ahead.changed


def test_deadlines_answer_with_nothing_new_and_other_nodes_entries_do_not_wake_a_watch() -> None:
    feed = WorkerFeed(start_index=0)
    feed.watch("h1", 0, deadline=10.0, reply_to="w")
    assert feed.on_applied(1, [_task_event(1, "t9")], {"t9": "h9"}.get) == []
    assert feed.expire(9.9) == []
    due = feed.expire(10.0)
    assert [(d.watch.reply_to, d.changed) for d in due] == [("w", False)]
    assert feed.parked == 0


def test_a_worker_that_re_sends_does_not_pile_up_watches() -> None:
    feed = WorkerFeed(start_index=0, max_parked_per_node=2)
    assert feed.watch("h1", 0, 30.0, "a") is None
    assert feed.watch("h1", 0, 30.0, "b") is None
    oldest = feed.watch("h1", 0, 30.0, "c")
    assert oldest is not None and oldest.watch.reply_to == "a" and not oldest.changed
    assert feed.parked == 2


def test_entries_go_in_order() -> None:
    feed = WorkerFeed(start_index=3)
    with pytest.raises(ValueError, match="in order"):
        feed.on_applied(3, [], {}.get)


def test_cancel_all_answers_every_parked_watch() -> None:
    feed = WorkerFeed(start_index=0)
    feed.watch("h1", 0, 30.0, "a")
    feed.watch("h2", 0, 30.0, "b")
    assert sorted(d.watch.reply_to for d in feed.cancel_all()) == ["a", "b"]
    assert feed.parked == 0


def test_task_nodes_names_the_nodes_a_task_left_and_went_to_and_changed_holds() -> None:
    held = PortClaim(host_ip="", port=8080, protocol="tcp", node_id="h1", task_id="t1", kind="held")
    on_h1 = Task(id="t1", name="t1", image="i", node_id="h1")
    moved = msgspec.structs.replace(on_h1, node_id="h2", port_holds=[held])
    released = msgspec.structs.replace(moved, port_holds=[])
    assert task_nodes(None, on_h1) == {"h1"}
    assert task_nodes(on_h1, moved) == {"h1", "h2"}
    assert task_nodes(moved, released) == {"h1", "h2"}  # h1 must see its hold go
    assert task_nodes(released, None) == {"h2"}
    pending = Task(id="t2", name="t2", image="i")
    assert task_nodes(None, pending) == set()


def test_on_touched_moves_the_index_on_and_answers_the_touched_nodes() -> None:
    feed = WorkerFeed(start_index=0)
    feed.watch("h1", 0, 30.0, "w")
    assert feed.on_touched(1, ()) == [] and feed.applied_index == 1
    assert [d.watch.reply_to for d in feed.on_touched(2, {"h1", "h2"})] == ["w"]
    assert feed.changed_since("h2", 1) and not feed.changed_since("h2", 2)


def test_expiry_follows_deadlines_and_skips_watches_answered_before() -> None:
    feed = WorkerFeed(start_index=0)
    feed.watch("h1", 0, deadline=5.0, reply_to="a")
    feed.watch("h2", 0, deadline=3.0, reply_to="b")
    feed.watch("h3", 0, deadline=4.0, reply_to="c")
    assert feed.next_deadline() == 3.0
    assert [d.watch.reply_to for d in feed.release("h2")] == ["b"]
    assert feed.next_deadline() == 4.0  # b's deadline no longer counts
    assert [d.watch.reply_to for d in feed.expire(5.0)] == ["c", "a"]
    assert feed.parked == 0 and feed.next_deadline() is None


def test_full_says_when_the_total_bound_is_reached() -> None:
    feed = WorkerFeed(start_index=0, max_parked_total=2)
    feed.watch("h1", 0, 30.0, "a")
    assert not feed.full
    feed.watch("h2", 0, 30.0, "b")
    assert feed.full
    feed.expire(30.0)
    assert not feed.full
