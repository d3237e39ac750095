"""The piggyback queue's promises (memberlist's TransmitLimitedQueue): the byte budget of one
message, the retransmit limit, least-transmitted-first and newest-first priority, and a bounded
search for updates that fit."""

from __future__ import annotations

from orion.gossip.broadcasts import BroadcastQueue
from orion.gossip.messages import MAX_UPDATES, Suspect, Update, encoded_size


def sized(node_id: str, size: int) -> Update:
    """A suspect update about ``node_id`` that encodes to exactly ``size`` bytes."""
    for pad in range(1, 200):
        update = Suspect(node_id, 0, "a" * pad)
        if encoded_size(update) == size:
            return update
    raise AssertionError(f"no update of {size} bytes for {node_id}")


def ids(updates: list[Update]) -> list[str]:
    return [u.node_id for u in updates]


def test_an_empty_queue_gives_nothing() -> None:
    assert BroadcastQueue().take(1200, 4) == []


def test_updates_that_exactly_fill_the_budget_all_go() -> None:
    queue = BroadcastQueue()
    for name in ("m1", "m2", "m3"):
        queue.queue(sized(name, 100))
    assert sorted(ids(queue.take(300, 4))) == ["m1", "m2", "m3"]


def test_a_message_never_exceeds_its_budget() -> None:
    queue = BroadcastQueue()
    for i in range(20):
        queue.queue(sized(f"m{i:02}", 90))
    taken = queue.take(500, 4)
    assert sum(encoded_size(u) for u in taken) <= 500
    assert len(taken) == 5  # as many as fit: 5 x 90 = 450, a sixth would make 540


def test_an_update_too_big_for_the_budget_is_skipped_not_sent() -> None:
    queue = BroadcastQueue()
    queue.queue(sized("small", 60))
    queue.queue(sized("big", 150))  # newest: looked at first, does not fit
    assert ids(queue.take(100, 4)) == ["small"]
    assert len(queue) == 2  # the big one waits for a message with room


def test_a_message_carries_every_update_that_fits() -> None:
    queue = BroadcastQueue()
    for i in range(10):
        queue.queue(sized(f"m{i}", 60))
    assert len(queue.take(1200, 4)) == 10


def test_each_update_is_sent_exactly_limit_times_then_dropped() -> None:
    queue = BroadcastQueue()
    queue.queue(sized("m1", 60))
    sends = 0
    for _ in range(10):
        sends += len(queue.take(1200, 3))
    assert sends == 3
    assert len(queue) == 0


def test_least_transmitted_first_then_newest_first() -> None:
    queue = BroadcastQueue()
    queue.queue(sized("old", 100))
    assert ids(queue.take(100, 5)) == ["old"]  # old has been sent once now
    queue.queue(sized("new1", 100))
    queue.queue(sized("new2", 100))
    # Room for two: the never-sent ones go first, the newest of them first.
    assert ids(queue.take(200, 5)) == ["new2", "new1"]
    assert sorted(ids(queue.take(300, 5))) == ["new1", "new2", "old"]  # all sent once: all fit


def test_a_newer_update_about_a_member_replaces_the_queued_one_with_fresh_transmits() -> None:
    queue = BroadcastQueue()
    queue.queue(Suspect("m1", 1, "a"))
    queue.take(1200, 2)  # sent once of twice
    queue.queue(Suspect("m1", 2, "a"))
    assert len(queue) == 1
    assert queue.take(1200, 2) == [Suspect("m1", 2, "a")]
    assert queue.take(1200, 2) == [Suspect("m1", 2, "a")]  # the replacement gets its full limit
    assert queue.take(1200, 2) == []


def test_three_updates_that_do_not_fit_do_not_stop_the_search() -> None:
    queue = BroadcastQueue()
    queue.queue(sized("small", 60))  # oldest: looked at last
    for name in ("big1", "big2", "big3"):
        queue.queue(sized(name, 150))
    assert ids(queue.take(100, 4)) == ["small"]


def test_the_search_stops_after_four_updates_that_do_not_fit() -> None:
    """Bounded work per message (memberlist stops the same way): a fifth candidate is not read."""
    queue = BroadcastQueue()
    queue.queue(sized("small", 60))
    for name in ("big1", "big2", "big3", "big4"):
        queue.queue(sized(name, 150))
    assert queue.take(100, 4) == []


def test_the_miss_bound_spans_transmit_counts() -> None:
    """Four misses among never-sent updates end the search before the once-sent ones."""
    queue = BroadcastQueue()
    queue.queue(sized("small", 60))
    assert ids(queue.take(100, 4)) == ["small"]  # now in the once-sent bucket
    for name in ("big1", "big2", "big3", "big4"):
        queue.queue(sized(name, 150))
    assert queue.take(100, 4) == []
    queue = BroadcastQueue()
    queue.queue(sized("small", 60))
    queue.take(100, 4)
    for name in ("big1", "big2", "big3"):
        queue.queue(sized(name, 150))
    assert ids(queue.take(100, 4)) == ["small"]  # three misses: the search goes on


def test_a_large_budget_never_takes_more_updates_than_a_message_may_carry() -> None:
    queue = BroadcastQueue()
    for i in range(MAX_UPDATES + 50):
        queue.queue(Suspect(f"n{i}", 1, "me"))
    assert len(queue.take(1 << 20, 4)) == MAX_UPDATES


def test_an_update_replaced_many_times_is_queued_once_and_its_old_entries_are_swept() -> None:
    queue = BroadcastQueue()
    queue.queue(Suspect("other", 0, "me"))
    for incarnation in range(2000):
        queue.queue(Suspect("m1", incarnation, "me"))
    assert len(queue) == 2
    assert sum(len(bucket) for bucket in queue._buckets) < 600  # replaced entries do not pile up
    assert queue.take(1200, 1) == [Suspect("m1", 1999, "me"), Suspect("other", 0, "me")]
    assert len(queue) == 0 and queue.take(1200, 1) == []
