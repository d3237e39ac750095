"""orion/actors/tick_stalls.py: late ticks are counted and reported at most once a second, in
the line the catch-up benchmark parses."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from loguru import logger

from orion.actors.tick_stalls import TickStalls

LINE = re.compile(r"raft: (\d+) late tick\(s\), worst (\d+) ms between ticks")


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


def test_late_ticks_are_reported_at_most_once_a_second(warnings: list[str]) -> None:
    stalls = TickStalls(tick=0.25)  # times in quarters: exact in binary
    for now in (100.0, 100.25, 100.75, 101.0):  # on time, and 500 ms: exactly two ticks, not late
        stalls.on_tick(now)
    assert warnings == []
    stalls.on_tick(101.75)  # 750 ms: late, said at once
    stalls.on_tick(102.5)  # 750 ms: late, within the second: counted, not said
    assert [LINE.match(line).groups() for line in warnings] == [("1", "750")]
    stalls.on_tick(103.5)  # 1 s: late, and a second after the report: both, with the worst gap
    assert [LINE.match(line).groups() for line in warnings] == [("1", "750"), ("2", "1000")]
    stalls.on_tick(103.75)
    assert len(warnings) == 2  # nothing late since


def test_the_first_tick_is_never_late(warnings: list[str]) -> None:
    stalls = TickStalls(tick=0.05)
    stalls.on_tick(5000.0)
    stalls.on_tick(5000.05)
    assert warnings == []


def test_a_host_that_sleeps_through_idle_ticks_counts_from_when_the_tick_was_due(warnings: list[str]) -> None:
    """The Raft actor is ticked only when something is due: a second between its ticks is not
    late when the tick came on time (``previous``: when the one before it was due)."""
    stalls = TickStalls(tick=0.25)
    stalls.on_tick(100.0)
    stalls.on_tick(101.0, previous=100.75)  # due at 101.0, came then: a tick's gap
    stalls.on_tick(102.0, previous=101.75)
    assert warnings == []
    stalls.on_tick(103.25, previous=102.5)  # due at 102.75, came 500 ms late: 750 ms since due - tick
    assert [LINE.match(line).groups() for line in warnings] == [("1", "750")]
