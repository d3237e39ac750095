"""orion/actors/raft_actor.py in process: real RaftActors with in-memory stores, wired to each
other over real PeerTransports on 127.0.0.1 and driven by the node's Ticker. Tests ask them
what any caller does (Propose, Read, Shutdown, MemberEvents as gossip tells them) and stop them.

Elections take a fraction of a second here (25 ms ticks), so every test is quick.
"""

from __future__ import annotations

import functools
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from orion.actors.messages import (
    ClusterIdentity,
    LeadershipChanged,
    MemberEvents,
    Outcome,
    Propose,
    Read,
    Shutdown,
)
from orion.actors.raft_actor import RaftActor
from orion.actors.ticker import Ticker
from orion.api.protocol import ErrorCode, RaftInfo
from orion.config import parse_config
from orion.fsm.commands import SubmitTask, encode_command
from orion.gossip.events import MemberEvent
from orion.model import NodeMeta, Task
from orion.raft.memory_store import MemoryStore
from orion.raft.types import RaftRole
from orion.testing.localcluster import wait_for
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport

wait_until = functools.partial(wait_for, timeout=15.0, interval=0.01)
CONFIG = """
[node]
id = "{id}"
bootstrap = {bootstrap}
bootstrap_grace = "{grace}"
[ports]
raft = {port}
[raft]
tick = "25ms"
"""


class Listener(pykka.ThreadingActor):
    """Where the scheduler and reconciler sit: the Raft actor only tells them things; kept here."""

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
        self,
        tmp_path: Path,
        node_id: str,
        ticker: Ticker,
        *,
        bootstrap: bool,
        grace: str,
        hosted: bool = False,
    ) -> None:
        handlers: list[Callable[[Channel, bytes], None]] = []

        def on_frame(channel: Channel, payload: bytes) -> None:
            for handler in handlers:
                handler(channel, payload)

        self.node_id = node_id
        self.incarnation = f"{node_id}1"  # hex, as the data dir's incarnation is
        self.transport = PeerTransport("127.0.0.1", 0, on_frame, name=node_id, allow_fault_injection=True)
        if hosted:
            self.transport.bind()  # run by the Raft actor's thread (orion/actors/hosted_inbox.py)
        else:
            self.transport.start()  # a thread of its own, as on a node
        self.port = int(self.transport.address.rsplit(":", 1)[1])
        text = CONFIG.format(id=node_id, bootstrap=str(bootstrap).lower(), grace=grace, port=self.port)
        self.config = parse_config(text, tmp_path)
        self.store = MemoryStore()
        self.fatal: list[str] = []
        self.listener = Listener.start()
        self.raft = RaftActor.start(
            self.config, self.store, self.store.load(), self.transport, self.fatal.append, self.incarnation
        )
        handlers.append(self.raft.proxy().frame_handler().get())
        self.raft.proxy().add_listener(self.listener).get()
        self.raft.proxy().add_identity_listener(self.listener).get()
        ticker.add(self.raft, self.config.tick)

    @property
    def meta(self) -> NodeMeta:
        return NodeMeta(id=self.node_id, raft_port=self.port, raft_incarnation=self.incarnation)

    def ask(self, message: Propose | Read, timeout: float = 10.0) -> Outcome:
        """Send a request with a callback, as the API actor does, and wait for its outcome."""
        answers: queue.Queue[Outcome] = queue.Queue()
        self.raft.tell(type(message)(**{**_fields(message), "callback": answers.put}))
        return answers.get(timeout=timeout)

    def raft_info(self) -> RaftInfo:
        return self.ask(Read(lambda view: view.raft(), _unused, stale=True)).value

    def stop(self) -> None:
        self.raft.stop()
        self.listener.stop()
        self.transport.stop()


def _fields(message: Any) -> dict[str, Any]:
    return {name: getattr(message, name) for name in message.__dataclass_fields__}


def _unused(_outcome: Outcome) -> None:
    raise AssertionError("replaced by Node.ask")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    ticker = Ticker(resolution=0.005)
    ticker.start()
    nodes: list[Node] = []

    def make(node_id: str, *, bootstrap: bool = False, grace: str = "0s", hosted: bool = False) -> Node:
        node = Node(tmp_path, node_id, ticker, bootstrap=bootstrap, grace=grace, hosted=hosted)
        nodes.append(node)
        return node

    try:
        yield make
    finally:
        ticker.stop()
        for node in nodes:
            node.stop()
        assert all(not node.fatal for node in nodes), [node.fatal for node in nodes]


def submit(task_id: str) -> Propose:
    task = Task(id=task_id, name=task_id, image="busybox")
    return Propose(encode_command(SubmitTask(task=task, at=time.time())), timeout=5.0)


def task_ids(timeout: float = 5.0, stale: bool = False) -> Read:
    return Read(lambda view: sorted(t.id for t in view.fsm.tasks()), _unused, stale=stale, timeout=timeout)


def join(leader: Node, *others: Node) -> None:
    """Tell every node what its gossip would: the others are alive, at these Raft addresses
    (a new node learns its leader's address from gossip before it holds any configuration)."""
    nodes = [leader, *others]
    for node in nodes:
        events = [
            MemberEvent("joined", n.node_id, n.transport.address, n.meta, 1) for n in nodes if n is not node
        ]
        node.raft.tell(MemberEvents(events))
    for node in others:
        wait_until(
            lambda node=node: node.node_id in leader.raft_info().voters, what=f"{node.node_id} a voter"
        )
        wait_until(lambda node=node: node.raft_info().leader_id == leader.node_id, what="the leader known")


# ------------------------------------------------------------------------------------ one node
def test_a_bootstrap_node_founds_a_cluster_and_answers_writes_and_reads(start) -> None:
    a = start("a", bootstrap=True)
    wait_until(lambda: a.raft_info().role == RaftRole.LEADER, what="a leads")
    written = a.ask(submit("t1"))
    assert written.ok and isinstance(written.value, Task) and written.value.id == "t1"
    assert a.ask(submit("t1")).value.id == "t1"  # idempotent: the FSM's own answer comes back
    assert a.ask(task_ids()) == Outcome.success(["t1"])
    info = a.raft_info()
    assert info.voters == ["a"] and info.commit_index == info.applied_index >= 3
    told = a.listener.ask("told")
    assert LeadershipChanged(True, "a") in told
    contact = a.ask(Read(lambda view: view.leader_contact(), _unused)).value
    assert (contact.leader_id, contact.voters, contact.voters_reachable) == ("a", 1, 1)
    assert len(contact.cluster_id) == 32
    assert ClusterIdentity(contact.cluster_id, a.incarnation) in told  # gossip learns the new cluster


def test_a_query_that_finds_nothing_answers_not_found(start) -> None:
    a = start("a", bootstrap=True)
    wait_until(lambda: a.raft_info().role == RaftRole.LEADER, what="a leads")

    def missing(view: Any) -> Any:
        raise KeyError("no task t9")

    answer = a.ask(Read(missing, _unused))
    assert (answer.ok, answer.code, answer.message) == (False, ErrorCode.NOT_FOUND, "no task t9")


def test_without_a_leader_requests_wait_then_fail_with_no_quorum(start) -> None:
    lone = start("a")  # no bootstrap, nobody to join: never a leader
    write = lone.ask(Propose(b"never decoded", timeout=0.3))
    assert (write.code, write.message) == (
        ErrorCode.NO_QUORUM,
        "no quorum: no leader could be elected in time",
    )
    read = lone.ask(task_ids(timeout=0.3))
    assert read.code == ErrorCode.NO_QUORUM
    assert lone.ask(task_ids(stale=True)) == Outcome.success([])  # a stale read needs no leader


def test_a_bootstrap_node_that_hears_of_a_cluster_does_not_found_one(start) -> None:
    a = start("a", bootstrap=True)
    wait_until(lambda: a.raft_info().role == RaftRole.LEADER, what="a leads")
    late = start("b", bootstrap=True, grace="30s")
    join(a, late)  # within its grace, b hears a's cluster (a adds it): it joins, never founds
    assert late.raft_info().leader_id == "a"
    assert a.ask(submit("t1")).ok
    wait_until(lambda: late.ask(task_ids(stale=True)).value == ["t1"], what="b applied t1")


# ------------------------------------------------------------------------------------ two nodes
@pytest.mark.parametrize("hosted", [False, True], ids=["transport-thread", "hosted-transport"])
def test_a_follower_forwards_writes_and_reads_to_the_leader(start, hosted: bool) -> None:
    a = start("a", bootstrap=True, hosted=hosted)
    wait_until(lambda: a.raft_info().role == RaftRole.LEADER, what="a leads")
    b = start("b", hosted=hosted)
    join(a, b)
    written = b.ask(submit("from-b"))
    assert written.ok and written.value.id == "from-b"  # the leader's answer, decoded on b
    # Linearizable through the leader: b's read waits until b applied the leader's read index.
    assert b.ask(task_ids()) == Outcome.success(["from-b"])
    assert a.ask(task_ids()) == Outcome.success(["from-b"])
    nodes = b.ask(Read(lambda view: [(n.id, n.suffrage) for n in view.nodes()], _unused)).value
    assert nodes == [("a", "voter"), ("b", "voter")]


def test_a_stopping_leader_hands_leadership_over_before_it_is_done(start) -> None:
    a = start("a", bootstrap=True)
    wait_until(lambda: a.raft_info().role == RaftRole.LEADER, what="a leads")
    b = start("b")
    join(a, b)
    term = a.raft_info().term
    done: queue.Queue[bool] = queue.Queue()
    a.raft.tell(Shutdown(lambda: done.put(True)))
    assert done.get(timeout=10.0)
    # Done only once it no longer leads: two voters cannot elect anyone without it, so b
    # leads only because a asked it to campaign at once (TimeoutNow).
    assert a.raft_info().role == RaftRole.FOLLOWER
    wait_until(lambda: b.raft_info().role == RaftRole.LEADER, what="b leads")
    assert b.raft_info().term == term + 1
    assert a.ask(submit("after")).ok  # a still serves, now as a follower forwarding to b


def test_a_leader_cut_off_from_its_quorum_steps_down_and_writes_fail_with_no_quorum(start) -> None:
    a = start("a", bootstrap=True)
    wait_until(lambda: a.raft_info().role == RaftRole.LEADER, what="a leads")
    b = start("b")
    join(a, b)
    a.transport.block({b.transport.address})
    b.transport.block({a.transport.address})
    # CheckQuorum: a leader that hears from no quorum for an election timeout steps down.
    wait_until(lambda: a.raft_info().role != RaftRole.LEADER, what="a steps down")
    answer = a.ask(Propose(b"never decoded", timeout=0.5))
    assert (answer.ok, answer.code) == (False, ErrorCode.NO_QUORUM), answer
    a.transport.block(set())
    b.transport.block(set())
    wait_until(lambda: a.ask(submit("healed")).ok, what="a write after the partition heals")
    assert b.ask(task_ids()) == Outcome.success(["healed"])
