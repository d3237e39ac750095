"""The gossip actor over real PeerTransports on 127.0.0.1: its identity reaches its peers' views,
ClusterIdentity from Raft is adopted, and gossip of another cluster is dropped and logged once.
Its transport is hosted by its thread (``bind``, as a node runs it) unless a test says otherwise."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from loguru import logger

from orion.actors.gossip_actor import GossipActor, Join
from orion.actors.messages import ClusterIdentity, LocalMeta, Shutdown
from orion.actors.ticker import Ticker
from orion.config import parse_config
from orion.gossip.events import MemberView
from orion.model import NodeMeta
from orion.testing.localcluster import wait_for
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport

wait_until = functools.partial(wait_for, timeout=15.0, interval=0.02)
RED = "aa" * 16
BLUE = "bb" * 16
CONFIG = '[node]\nid = "{id}"\n[gossip]\nprobe_interval = "200ms"\nprobe_timeout = "100ms"\n'


class RaftSide(pykka.ThreadingActor):
    """Where the Raft actor sits: gossip only tells it things (LocalMeta, MemberEvents); kept here."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "told":
            return list(self.told)
        self.told.append(message)
        return None


class Node:
    def __init__(
        self, tmp_path: Path, node_id: str, ticker: Ticker, raft_incarnation: str, hosted: bool
    ) -> None:
        handlers: list[Callable[[Channel, bytes], None]] = []

        def on_frame(channel: Channel, payload: bytes) -> None:
            for handler in handlers:
                handler(channel, payload)

        self.transport = PeerTransport("127.0.0.1", 0, on_frame, name=node_id)
        if hosted:
            self.transport.bind()
        else:
            self.transport.start()
        port = int(self.transport.address.rsplit(":", 1)[1])
        config = parse_config(CONFIG.format(id=node_id), tmp_path)
        meta = NodeMeta(id=node_id, gossip_port=port, version=1)
        self.raft = RaftSide.start()
        self.fatal: list[str] = []
        self.gossip = GossipActor.start(
            config, meta, self.transport, self.raft, self.fatal.append, raft_incarnation=raft_incarnation
        )
        handlers.append(self.gossip.proxy().frame_handler().get())
        ticker.add(self.gossip, 0.05)
        self.ticker = ticker
        self.address = self.transport.address

    def members(self) -> dict[str, MemberView]:
        return {view.id: view for view in self.gossip.ask("members")}

    def stop(self) -> None:
        self.gossip.ask(Shutdown())
        self.gossip.stop()
        self.raft.stop()
        self.transport.stop()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    ticker = Ticker()
    ticker.start()
    nodes: list[Node] = []

    def make(node_id: str, raft_incarnation: str = "", hosted: bool = True) -> Node:
        node = Node(tmp_path, node_id, ticker, raft_incarnation, hosted)
        nodes.append(node)
        return node

    try:
        yield make
    finally:
        ticker.stop()
        for node in nodes:
            node.stop()
        assert all(not node.fatal for node in nodes)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


def test_identity_reaches_the_peers_and_other_clusters_are_dropped(start, warnings: list[str]) -> None:
    a = start("a", "inc-a")
    b = start("b", "inc-b")
    a.gossip.tell(ClusterIdentity(RED, "inc-a"))
    b.gossip.tell(Join([a.address]))  # b has no cluster id yet: a accepts it
    wait_until(lambda: "b" in a.members() and a.members()["b"].status == "alive")
    assert a.members()["b"].meta.raft_incarnation == "inc-b"
    assert a.members()["a"].meta.cluster_id == RED
    # b took the id of the cluster it joined from a's answer, announced itself with it (one alive
    # goes round, not two) and told its Raft side.
    assert a.members()["b"].meta.cluster_id == RED
    wait_until(lambda: any(m.meta.cluster_id == RED for m in b.raft.ask("told") if isinstance(m, LocalMeta)))
    # Raft hands b the configuration (the same id): nothing changes, and each node told its Raft
    # side its own meta.
    b.gossip.tell(ClusterIdentity(RED, ""))
    wait_until(lambda: a.members()["b"].meta.cluster_id == RED)
    assert a.members()["b"].meta.raft_incarnation == "inc-b"  # an empty value erased nothing
    own = [m.meta for m in b.raft.ask("told") if isinstance(m, LocalMeta)]
    assert own[-1].cluster_id == RED and own[-1].raft_incarnation == "inc-b"

    c = start("c", "inc-c")
    c.gossip.tell(ClusterIdentity(BLUE, "inc-c"))
    c.gossip.tell(Join([a.address]))  # a node of another cluster given a red seed
    wait_until(lambda: any(c.address in line and BLUE in line for line in warnings))
    wait_until(lambda: a.gossip.ask("foreign_dropped") >= 2)  # c retried its join
    assert set(a.members()) == {"a", "b"} and set(c.members()) == {"c"}
    from_c = [line for line in warnings if c.address in line]
    assert len(from_c) == 1 and RED in from_c[0]  # once per peer, with both ids, though joins retry


def test_an_idle_actor_is_ticked_at_its_cores_deadline_and_still_finds_a_dead_peer(start) -> None:
    a = start("a")
    b = start("b", hosted=False)  # a transport with a thread of its own talks to a hosted one
    b.gossip.tell(Join([a.address]))
    wait_until(lambda: a.members().get("b") is not None and a.members()["b"].status == "alive")
    [gate] = [target.gate for target in a.ticker._targets if target.ref == a.gossip]
    core = a.gossip.proxy().core.get()  # read from here: the wait polls until both agree
    inbox = a.gossip.proxy().actor_inbox.get()

    def times_the_cores_deadline() -> bool:
        deadline = core.next_deadline()
        return deadline is not None and inbox.next_tick == deadline

    # Its next tick is when the core next has work (a probe every 200 ms, its 100 ms timeout,
    # gossip rounds), not the ticker's 50 ms beat; the actor times it itself, and the ticker,
    # whose first Tick started that clock, sends no more.
    wait_until(times_the_cores_deadline)
    assert gate.wish == (float("inf"),)
    # Detection is unchanged: b goes silent, and a's probes at those deadlines find it.
    b.transport.stop()
    wait_until(lambda: a.members()["b"].status in ("suspect", "dead"))
