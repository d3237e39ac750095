"""A node's window of recent events (orion/cluster/event_ring.py): pages by Raft index that
never split an entry, a cursor that moves past entries without matching events, and a clear
gap error once the asked events are gone."""

from __future__ import annotations

import pytest

from orion.cluster.event_ring import EventGap, EventRing
from orion.fsm.events import Event


def ev(index: int, kind: str = "task", ident: str = "t") -> Event:
    return Event(index=index, at=float(index), type=kind, action="changed", id=f"{ident}{index}")


def test_pages_follow_the_cursor_without_gap_or_duplicate() -> None:
    ring = EventRing(100)
    ring.reset(10)
    ring.add([ev(11), ev(12), ev(12, ident="u"), ev(14)], applied=15)
    seen: list[Event] = []
    cursor: int | None = None
    while True:
        page = ring.page(cursor, limit=1)
        if not page.events:
            break
        seen += page.events
        cursor = page.cursor
    assert seen == [ev(11), ev(12), ev(12, ident="u"), ev(14)]  # index 12's two events came together
    assert cursor == 15  # past the applied index, though entry 15 made no event
    assert ring.page(15).events == [] and ring.page(15).cursor == 15


def test_a_cursor_ahead_of_this_node_is_kept_not_moved_back() -> None:
    ring = EventRing(100)
    ring.add([ev(1)], applied=3)
    page = ring.page(7)  # a client that read further on another node
    assert page.events == [] and page.cursor == 7


def test_type_filter_still_moves_the_cursor() -> None:
    ring = EventRing(100)
    ring.add([ev(1, "node"), ev(2, "task"), ev(3, "service")], applied=4)
    page = ring.page(0, types=["node", "service"])
    assert [e.index for e in page.events] == [1, 3] and page.cursor == 4


def test_full_ring_drops_whole_entries_and_reports_the_gap() -> None:
    ring = EventRing(3)
    ring.add([ev(1), ev(2), ev(2, ident="u"), ev(3)], applied=3)
    assert ring.horizon == 1 and len(ring) == 3
    ring.add([ev(4)], applied=4)
    assert ring.horizon == 2 and [e.index for e in ring.page(None).events] == [3, 4]  # both of 2 went
    with pytest.raises(EventGap) as gap:
        ring.page(1)
    assert "gap: events before index 3 are no longer kept" in str(gap.value)
    assert [e.index for e in ring.page(2).events] == [3, 4]


def test_reset_after_a_snapshot_starts_over() -> None:
    ring = EventRing(10)
    ring.add([ev(1), ev(2)], applied=2)
    ring.reset(50)
    with pytest.raises(EventGap):
        ring.page(2)
    ring.add([ev(51)], applied=51)
    assert ring.page(50).events == [ev(51)]
