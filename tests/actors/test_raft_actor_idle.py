"""orion/actors/raft_actor.py at rest: a Raft actor ticks only when something is due (issue 16
item 5), and keeps that timer itself (its ``TimedInbox``): the ticker's first Tick starts that
clock and the ticker is told never to send another. Real RaftActors over real transports
(test_raft_actor.py's nodes), driven by a Ticker that counts the Ticks it sends each of them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from orion.actors.messages import Tick
from orion.actors.ticker import Ticker
from orion.raft.types import RaftRole
from tests.actors.test_raft_actor import Node, join, wait_until

WINDOW_BEATS = 80  # ticks of 25 ms: 2 s in which an idle follower's election deadline keeps moving


class CountingRef:
    """An actor ref as the ticker sees it: counts the Ticks it is sent."""

    def __init__(self, ref: pykka.ActorRef, name: str, counts: Counter[str]) -> None:
        self._ref = ref
        self._name = name
        self._counts = counts

    def tell(self, message: Any) -> None:
        if isinstance(message, Tick):
            self._counts[self._name] += 1
        self._ref.tell(message)


class CountingTicker(Ticker):
    def __init__(self) -> None:
        super().__init__(resolution=0.005)
        self.ticks: Counter[str] = Counter()

    def add(self, ref: pykka.ActorRef, interval: float, strict: bool = False) -> None:
        counting: Any = CountingRef(ref, str(len(self._targets)), self.ticks)
        super().add(counting, interval, strict)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[CountingTicker, list[Node]]]:
    ticker = CountingTicker()
    ticker.start()
    nodes: list[Node] = []
    make: Callable[..., Node] = lambda node_id, **kw: Node(tmp_path, node_id, ticker, **kw)  # noqa: E731
    try:
        nodes.append(make("a", bootstrap=True, grace="0s"))
        wait_until(lambda: nodes[0].raft_info().role == RaftRole.LEADER, what="a leads")
        nodes += [make("b", bootstrap=False, grace="0s"), make("c", bootstrap=False, grace="0s")]
        join(*nodes)
        yield ticker, nodes
    finally:
        ticker.stop()
        for node in nodes:
            node.stop()
        assert all(not node.fatal for node in nodes), [node.fatal for node in nodes]


def test_an_idle_follower_is_not_ticked_on_every_beat_and_the_leader_on_its_heartbeats(cluster) -> None:
    ticker, nodes = cluster
    tick = nodes[0].config.tick
    term = nodes[0].raft_info().term
    ticker.ticks.clear()
    own_before = [node.raft.actor_inbox.ticks for node in nodes]
    time.sleep(WINDOW_BEATS * tick)
    own = [node.raft.actor_inbox.ticks - before for node, before in zip(nodes, own_before, strict=True)]
    if nodes[0].raft_info().term != term:
        pytest.skip("an election in the window (a loaded machine): nothing idle to count")
    # The ticker ticked each actor once at most (its first Tick) and never again.
    assert sum(ticker.ticks.values()) == 0, dict(ticker.ticks)
    leader, followers = own[0], own[1:]
    # Followers: a Tick only when a heartbeat came later than an election timeout (none at rest).
    assert max(followers) < WINDOW_BEATS // 4, own
    # The leader: on its heartbeats (every 2 ticks), not on every beat.
    assert 0 < leader <= WINDOW_BEATS * 3 // 4, own
