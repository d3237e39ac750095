"""One Raft entry per submit, in process: the node's real API, Raft and scheduler actors (an
in-memory log, real PeerTransports on 127.0.0.1, the node's Ticker). A submit commits as one
SubmitTask carrying the node, or why no node fits: the scheduler adds no entry for it. A
follower's submit is placed by the leader it is forwarded to."""

from __future__ import annotations

import functools
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orion.actors.api_actor import ApiActor
from orion.actors.messages import LocalMeta, MemberEvents, Outcome, Propose, Read
from orion.actors.raft_actor import RaftActor
from orion.actors.scheduler_actor import SchedulerActor
from orion.actors.ticker import Ticker
from orion.api import protocol as api
from orion.config import parse_config
from orion.fsm.commands import AssignTasks, Command, SetPending, SubmitTask, decode_command, encode_command
from orion.gossip.events import MemberEvent
from orion.model import NodeMeta, NodeStatus, Task
from orion.raft.memory_store import MemoryStore
from orion.raft.types import EntryKind, RaftRole
from orion.testing.localcluster import wait_for
from orion.transport.peer import PeerTransport

GiB = 1 << 30
wait_until = functools.partial(wait_for, timeout=15.0, interval=0.01)
CONFIG = """
[node]
id = "{id}"
bootstrap = {bootstrap}
bootstrap_grace = "0s"
[ports]
raft = {port}
[raft]
tick = "25ms"
"""


class Stack:
    """One node's Raft, scheduler and API actors, as orion/node.py wires them."""

    def __init__(self, tmp_path: Path, node_id: str, ticker: Ticker, *, bootstrap: bool) -> None:
        self.node_id = node_id
        self.fatal: list[str] = []
        self.transport = PeerTransport("127.0.0.1", 0, lambda c, p: self._on_frame(c, p), name=node_id)
        self.transport.start()
        port = int(self.transport.address.rsplit(":", 1)[1])
        text = CONFIG.format(id=node_id, bootstrap=str(bootstrap).lower(), port=port)
        self.config = parse_config(text, tmp_path)
        self.store = MemoryStore()
        self.meta = NodeMeta(
            id=node_id, memory_total=4 * GiB, cpu_total=2.0, raft_port=port, raft_incarnation=f"{node_id}1"
        )
        self.raft = RaftActor.start(
            self.config, self.store, self.store.load(), self.transport, self.fatal.append, f"{node_id}1"
        )
        self.frames = self.raft.proxy().frame_handler().get()
        self.scheduler = SchedulerActor.start(self.raft, "binpack", 5.0, self.fatal.append)
        self.raft.proxy().add_listener(self.scheduler).get()
        self.api = ApiActor.start(self.raft, 5.0, self.fatal.append)
        self.handle = self.api.proxy().handler().get()
        self.raft.tell(LocalMeta(self.meta))
        ticker.add(self.raft, self.config.tick)
        ticker.add(self.scheduler, self.config.tick)

    def _on_frame(self, channel: Any, payload: bytes) -> None:
        handler = getattr(self, "frames", None)
        if handler is not None:
            handler(channel, payload)

    def read(self, query: Callable[[Any], Any]) -> Any:
        answers: queue.Queue[Outcome] = queue.Queue()
        self.raft.tell(Read(query, answers.put, stale=True))
        return answers.get(timeout=10).value

    def submit(self, task_id: str, memory: int) -> api.Reply:
        replies: queue.Queue[api.Reply] = queue.Queue()
        self.handle(api.SubmitTask(id=task_id, name=task_id, image="busybox", memory=memory), replies.put)
        # As a client reads it: in process the answer may carry the node's records themselves.
        return api.decode_reply(api.encode_reply(replies.get(timeout=10)))

    def commands(self, after: int) -> list[Command]:
        """The FSM commands in the log after index ``after``."""
        entries = self.store.load().entries
        return [decode_command(e.data) for e in entries if e.index > after and e.kind == EntryKind.NORMAL]

    def stop(self) -> None:
        for ref in (self.api, self.scheduler, self.raft):
            ref.stop()
        self.transport.stop()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    ticker = Ticker(resolution=0.005)
    ticker.start()
    stacks: list[Stack] = []

    def make(node_id: str, *, bootstrap: bool = False) -> Stack:
        stack = Stack(tmp_path, node_id, ticker, bootstrap=bootstrap)
        stacks.append(stack)
        return stack

    try:
        yield make
    finally:
        ticker.stop()
        for stack in stacks:
            stack.stop()
        assert all(not stack.fatal for stack in stacks), [stack.fatal for stack in stacks]


def alive_nodes(view: Any) -> list[str]:
    return sorted(n.id for n in view.fsm.nodes() if n.status == NodeStatus.ALIVE)


def last_index(view: Any) -> int:
    return view.raft().last_index


def test_a_submit_is_one_entry_placed_or_not_and_the_scheduler_adds_none(start) -> None:
    a = start("a", bootstrap=True)
    wait_until(lambda: a.read(lambda v: v.raft().role) == RaftRole.LEADER, what="a leads")
    wait_until(lambda: a.read(alive_nodes) == ["a"], what="a's node record")
    before = a.read(last_index)

    placed = a.submit("fits", GiB)
    assert placed.ok and placed.result["state"] == "Scheduled" and placed.result["node_id"] == "a"
    unplaceable = a.submit("huge", 64 * GiB)
    assert unplaceable.ok and unplaceable.result["state"] == "Pending"
    assert unplaceable.result["reason"].startswith("0/1 nodes fit: 1 insufficient memory")
    # A barrier: a task the leader does not judge (its submit already carries a reason) is
    # fresh, so the scheduler's next round marks it. That round reads a state holding "fits"
    # and "huge": had either been left to the scheduler, its entry would come before this one.
    probe = Task(id="probe", name="probe", image="busybox", memory=64 * GiB)
    marked = SubmitTask(task=probe, reason="not judged by the leader", at=time.time())
    answers: queue.Queue[Outcome] = queue.Queue()
    a.raft.tell(Propose(encode_command(marked), answers.put))
    assert answers.get(timeout=10).ok
    wait_until(
        lambda: any(isinstance(c, SetPending) for c in a.commands(before)), what="the scheduler's SetPending"
    )
    commands = [c for c in a.commands(before) if isinstance(c, SubmitTask | AssignTasks | SetPending)]
    assert [type(c).__name__ for c in commands] == ["SubmitTask", "SubmitTask", "SubmitTask", "SetPending"]
    first, second, _, judged = commands
    assert isinstance(first, SubmitTask) and (first.task.id, first.node_id) == ("fits", "a")
    assert isinstance(second, SubmitTask) and (second.node_id, second.reason) == (
        "",
        unplaceable.result["reason"],
    )
    assert isinstance(judged, SetPending) and judged.task_ids == ["probe"]


def test_a_followers_submit_is_placed_by_the_leader(start) -> None:
    a = start("a", bootstrap=True)
    wait_until(lambda: a.read(lambda v: v.raft().role) == RaftRole.LEADER, what="a leads")
    b = start("b")
    for stack, other in ((a, b), (b, a)):
        stack.raft.tell(
            MemberEvents([MemberEvent("joined", other.node_id, other.transport.address, other.meta, 1)])
        )
    wait_until(lambda: b.read(lambda v: v.raft().leader_id) == "a", what="b follows a")
    wait_until(lambda: a.read(alive_nodes) == ["a", "b"], what="both node records")
    before = a.read(last_index)

    reply = b.submit("via-b", GiB)
    assert reply.ok and reply.result["state"] == "Scheduled" and reply.result["node_id"] in ("a", "b")
    submits = [c for c in a.commands(before) if isinstance(c, SubmitTask | AssignTasks)]
    assert len(submits) == 1 and isinstance(submits[0], SubmitTask)
    assert submits[0].node_id == reply.result["node_id"]
