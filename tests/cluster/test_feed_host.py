"""The member's side of the worker feed (issue 20): a real ClusterState applying real commands,
a real Raft core for the configuration and the leader, and the frames the host sends decoded
as a worker would decode them."""

from __future__ import annotations

import random

import pytest

from orion.actors.submit_placer import SubmitPlacer
from orion.cluster.feed_host import FeedHost
from orion.cluster.feed_protocol import FeedAnswer, FeedMessage, FeedRedirect, FeedWatch, decode_feed
from orion.fsm.commands import (
    AssignTasks,
    Command,
    CreateVolume,
    ReleasePorts,
    RemoveVolume,
    ReportOverlayAddress,
    ReportTaskState,
    ReportVolume,
    StopTask,
    SubmitTask,
    UpsertNode,
    decode_command,
    encode_command,
)
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task, VolumeMount
from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.messages import Heartbeat
from orion.raft.types import Membership, Snapshot, SnapshotMeta
from orion.volumes.spec import Volume, VolumeSpec

GiB = 1 << 30
M1 = "127.0.0.1:7001"
W1 = "127.0.0.1:7101"  # the worker w1's peer address: where its answers go
W2 = "127.0.0.1:7102"


class Member:
    """One member: its FSM, its Raft core (the only voter, so it leads), and its feed host."""

    def __init__(
        self,
        node_id: str = "m1",
        members: dict[str, str] | None = None,
        fsm: ClusterState | None = None,
        **limits: int,
    ) -> None:
        self.fsm = fsm if fsm is not None else ClusterState()
        voters = members if members is not None else {"m1": M1}
        store = MemoryStore()
        bootstrap: Membership | None = Membership(voters=voters, cluster_id="c1")
        if node_id not in voters:  # a worker that once held a replica: a configuration without it
            store.save_snapshot(Snapshot(SnapshotMeta(1, 1, bootstrap), self.fsm.snapshot()))
            bootstrap = None
        self.core = RaftCore(
            node_id,
            store.load(),
            RaftConfig(election_ticks=2, heartbeat_ticks=1),
            random.Random(7),
            bootstrap,
        )
        self.sent: list[tuple[str, FeedMessage]] = []
        self.host = FeedHost(
            node_id,
            self.fsm,
            self.core,
            lambda member_id: self.core.membership.address_of(member_id),
            lambda frames: self.sent.extend((address, decode_feed(payload)) for address, payload in frames),
            **limits,
        )
        self.index = 0
        if node_id in voters and len(voters) == 1:
            for _ in range(30):
                self.core.tick()
                if self.core.has_ready():
                    self.core.advance(self.core.ready())
            assert self.core.role == LEADER

    def apply(self, *commands: Command) -> None:
        """Apply ``commands`` as one drain's entries, as the Raft actor does."""
        for command in commands:
            self.index += 1
            self.fsm.apply(self.index, encode_command(command))
        self.host.on_drained()

    def watch(
        self, node_id: str, since: int, wait_ms: int = 30_000, origin: str = W1, now: float = 0.0
    ) -> None:
        self.host.on_watch(FeedWatch(node_id=node_id, origin=origin, since=since, wait_ms=wait_ms), now)

    def take(self) -> list[tuple[str, FeedMessage]]:
        sent, self.sent = self.sent, []
        return sent


def _web(task_id: str, port: str = "") -> Task:
    bindings = {"80/tcp": port} if port else {}
    return Task(id=task_id, name=task_id, image="busybox", memory=GiB, cpu=0.5, port_bindings=bindings)


def _meta(node_id: str) -> NodeMeta:
    return NodeMeta(id=node_id, memory_total=16 * GiB, cpu_total=4.0, version=1, port_space="engine-1")


@pytest.fixture
def member() -> Member:
    m = Member()
    m.apply(UpsertNode(at=1.0, meta=_meta("w1")), UpsertNode(at=1.0, meta=_meta("w2")))
    m.apply(SubmitTask(at=2.0, task=_web("a", "8080")), SubmitTask(at=2.0, task=_web("b")))
    m.apply(AssignTasks(at=3.0, assignments=[("a", "w1"), ("b", "w2")]))
    return m


def _answer(sent: list[tuple[str, FeedMessage]], origin: str = W1) -> FeedAnswer:
    assert [address for address, _ in sent] == [origin]
    message = sent[0][1]
    assert isinstance(message, FeedAnswer)
    return message


def test_a_first_watch_gets_the_nodes_tasks_and_the_cluster_facts_at_once(member: Member) -> None:
    member.watch("w1", since=0)
    answer = _answer(member.take())
    assert answer.changed and answer.index == member.fsm.applied_index
    assert [t.id for t in answer.tasks] == ["a"] and answer.tasks[0].host_ports == {"80/tcp": 8080}
    assert answer.held_ports == []
    assert (answer.cluster_id, answer.leader_id, answer.leader_address) == ("c1", "m1", M1)
    assert answer.servers == [M1] and answer.member is False


def test_a_parked_watch_is_answered_by_a_change_of_its_node_only(member: Member) -> None:
    member.watch("w1", since=member.fsm.applied_index)
    assert member.take() == [] and member.host.feed.parked == 1
    member.apply(ReportTaskState(at=4.0, task_id="b", node_id="w2", state="Running"))
    assert member.take() == []  # w2's task: not w1's business
    member.apply(ReportTaskState(at=5.0, task_id="a", node_id="w1", state="Running"))
    answer = _answer(member.take())
    assert answer.changed and answer.index == member.fsm.applied_index
    assert [(t.id, t.state) for t in answer.tasks] == [("a", "Running")]
    assert member.host.feed.parked == 0


def test_changes_that_make_no_event_still_answer_the_node(member: Member) -> None:
    """A released port hold and an overlay address are bookkeeping, not events; a worker that
    never saw its release applied would send it again."""
    member.apply(ReportTaskState(at=4.0, task_id="a", node_id="w1", state="Running"))
    member.apply(StopTask(at=5.0, task_id="a"))
    member.watch("w1", since=0)
    assert _answer(member.take()).held_ports == ["a"]
    member.watch("w1", since=member.fsm.applied_index)
    member.apply(ReleasePorts(at=6.0, node_id="w1", task_ids=["a"]))
    released = _answer(member.take())
    assert released.changed and released.held_ports == []

    member.watch("w2", since=member.fsm.applied_index, origin=W2)
    member.apply(ReportTaskState(at=7.0, task_id="b", node_id="w2", state="Running"))
    member.take()
    member.watch("w2", since=member.fsm.applied_index, origin=W2)
    member.apply(ReportOverlayAddress(at=8.0, task_id="b", node_id="w2", overlay_ip="10.42.1.5"))
    answer = _answer(member.take(), W2)
    assert answer.changed and answer.tasks[0].overlay_ip == "10.42.1.5"


def test_resuming_from_before_a_change_or_asking_not_to_wait_is_answered_at_once(member: Member) -> None:
    before = member.fsm.applied_index
    member.apply(ReportTaskState(at=4.0, task_id="a", node_id="w1", state="Running"))
    member.watch("w1", since=before)
    assert _answer(member.take()).changed
    member.watch("w1", since=member.fsm.applied_index, wait_ms=0)
    unchanged = _answer(member.take())
    assert not unchanged.changed and unchanged.tasks == [] and unchanged.index == member.fsm.applied_index


def test_a_watch_expires_with_nothing_new_at_its_deadline(member: Member) -> None:
    member.watch("w1", since=member.fsm.applied_index, wait_ms=2_000, now=10.0)
    assert member.host.next_deadline() == 12.0
    member.host.expire(11.9)
    assert member.take() == []
    member.host.expire(12.0)
    answer = _answer(member.take())
    assert not answer.changed and answer.leader_id == "m1"
    assert member.host.next_deadline() is None


def test_a_snapshot_restore_answers_everyone_parked_with_the_whole_list(member: Member) -> None:
    other = Member()
    other.apply(UpsertNode(at=1.0, meta=_meta("w1")), SubmitTask(at=2.0, task=_web("z")))
    other.apply(AssignTasks(at=3.0, assignments=[("z", "w1")]), UpsertNode(at=4.0, meta=_meta("w9")))
    member.watch("w1", since=member.fsm.applied_index)
    member.watch("w2", since=member.fsm.applied_index, origin=W2)
    member.fsm.restore(other.fsm.snapshot())
    member.host.on_restored()
    answers = {address: message for address, message in member.take()}
    assert set(answers) == {W1, W2}
    w1, w2 = answers[W1], answers[W2]
    assert isinstance(w1, FeedAnswer) and isinstance(w2, FeedAnswer)
    assert w1.changed and [t.id for t in w1.tasks] == ["z"] and w1.index == other.fsm.applied_index
    assert w2.changed and w2.tasks == []
    assert member.host.feed.start_index == other.fsm.applied_index
    member.watch("w1", since=w1.index)  # resumes from the restored index: it waits
    assert member.take() == []


def test_a_node_outside_the_configuration_redirects_to_the_members_it_knows() -> None:
    worker = Member("w1", members={"m1": M1, "m2": "127.0.0.1:7002"})
    worker.apply(UpsertNode(at=1.0, meta=_meta("w1")))
    worker.watch("w7", since=0, origin="127.0.0.1:7107")
    [(address, message)] = worker.take()
    assert address == "127.0.0.1:7107" and isinstance(message, FeedRedirect)
    assert message.servers == [M1, "127.0.0.1:7002"] and "not a Raft member" in message.reason


def test_a_node_that_joins_the_configuration_hears_it_at_once(member: Member) -> None:
    member.watch("w1", since=member.fsm.applied_index)
    member.core.add_non_voter("w1", W1)
    member.host.on_drained()
    answer = _answer(member.take())
    assert not answer.changed and answer.member and W1 in answer.servers


def test_parked_watches_are_bounded_per_node_and_in_all(member: Member) -> None:
    m = Member(max_parked=2, max_parked_per_node=1)
    m.apply(UpsertNode(at=1.0, meta=_meta("w1")))
    now = m.fsm.applied_index
    m.watch("w1", since=now, origin="127.0.0.1:1")
    m.watch("w1", since=now, origin="127.0.0.1:2")  # the re-sent one waits; the older is answered
    [(address, message)] = m.take()
    assert address == "127.0.0.1:1" and isinstance(message, FeedAnswer) and not message.changed
    m.watch("w2", since=now, origin="127.0.0.1:3")
    assert m.take() == [] and m.host.feed.parked == 2
    m.watch("w3", since=now, origin="127.0.0.1:4")
    [(address, refusal)] = m.take()
    assert address == "127.0.0.1:4" and isinstance(refusal, FeedRedirect)
    assert "2 watches parked here" in refusal.reason and refusal.servers == []  # no other member known
    m.watch("w3", since=0, origin="127.0.0.1:4")  # one that needs no parking is still answered
    assert isinstance(m.take()[0][1], FeedAnswer)


@pytest.mark.parametrize("origin", ["", "no-port", "host:port", ":7000"])
def test_a_watch_without_an_address_to_answer_is_dropped(member: Member, origin: str) -> None:
    member.watch("w1", since=0, origin=origin)
    assert member.take() == [] and member.host.feed.parked == 0


def test_a_stopping_member_sends_its_parked_workers_elsewhere(member: Member) -> None:
    member.watch("w1", since=member.fsm.applied_index)
    member.host.close()
    [(address, message)] = member.take()
    assert address == W1 and isinstance(message, FeedRedirect) and message.reason == "this member is stopping"
    assert member.host.feed.parked == 0


def test_a_new_leader_is_told_to_every_parked_worker_at_once() -> None:
    """Workers send their writes to the leader the last answer named: a new one cannot wait
    for their deadlines."""
    follower = Member("m2", members={"m1": M1, "m2": "127.0.0.1:7002", "m3": "127.0.0.1:7003"})
    follower.apply(UpsertNode(at=1.0, meta=_meta("w1")))
    follower.core.step(Heartbeat(src="m1", dst="m2", term=1, commit=0))
    follower.host.on_drained()
    follower.watch("w1", since=follower.fsm.applied_index)
    follower.watch("w2", since=follower.fsm.applied_index, origin=W2)
    assert follower.take() == []
    follower.core.step(Heartbeat(src="m3", dst="m2", term=2, commit=0))
    follower.host.on_drained()
    answers = dict(follower.take())
    assert set(answers) == {W1, W2}
    for answer in answers.values():
        assert isinstance(answer, FeedAnswer) and not answer.changed
        assert (answer.leader_id, answer.leader_address) == ("m3", "127.0.0.1:7003")


def _volume(name: str, node: str = "") -> Volume:
    return Volume(name=name, uid=f"uid-{name}", spec=VolumeSpec(name=name, node=node))


def test_an_answer_carries_the_volumes_the_nodes_tasks_mount_and_those_living_on_it(member: Member) -> None:
    """A worker has no volumes table: its answer carries what starting and auditing need."""
    member.apply(
        CreateVolume(at=4.0, volume=_volume("data")),
        CreateVolume(at=4.0, volume=_volume("kept", node="w1")),  # lives on w1, mounted by nobody
        CreateVolume(at=4.0, volume=_volume("elsewhere", node="w2")),
    )
    mounting = Task(id="db", name="db", image="busybox", volumes=[VolumeMount(volume="data", target="/d")])
    member.apply(SubmitTask(at=5.0, task=mounting))
    member.apply(AssignTasks(at=6.0, assignments=[("db", "w1")]))
    member.watch("w1", since=0)
    first = _answer(member.take())
    assert [(v.name, v.node_id, v.state) for v in first.volumes] == [
        ("data", "w1", "pending"),  # bound to w1 when its task was placed there
        ("kept", "w1", "pending"),
    ]
    # The node made it: the volume's change answers the node's parked watch.
    member.watch("w1", since=member.fsm.applied_index)
    member.apply(ReportVolume(at=7.0, name="data", uid="uid-data", node_id="w1", state="ready"))
    made = _answer(member.take())
    assert made.changed and [(v.name, v.state) for v in made.volumes] == [
        ("data", "ready"),
        ("kept", "pending"),
    ]
    # Removed: the node must delete its data, so it hears of it (no task of it changed).
    member.watch("w1", since=member.fsm.applied_index)
    member.apply(RemoveVolume(at=8.0, name="kept"))
    assert [v.name for v in _answer(member.take()).volumes] == ["data"]  # never made: gone at once
    member.watch("w2", since=member.fsm.applied_index, origin=W2)
    member.apply(ReportVolume(at=9.0, name="elsewhere", uid="uid-elsewhere", node_id="w2", state="ready"))
    assert [(v.name, v.state) for v in _answer(member.take(), W2).volumes] == [("elsewhere", "ready")]
    member.watch("w2", since=member.fsm.applied_index, origin=W2)
    member.apply(RemoveVolume(at=10.0, name="elsewhere"))  # made on w2: w2 deletes its data
    assert [(v.name, v.state) for v in _answer(member.take(), W2).volumes] == [("elsewhere", "removing")]
    assert member.take() == []  # w1 was not parked, and nothing of it changed


def test_the_submit_placer_built_first_still_hears_every_task_version() -> None:
    # The Raft actor's parts build the leader's submit placer before the feed host; both
    # listen to the tasks the FSM stores, and neither may silence the other.
    fsm = ClusterState()
    placer = SubmitPlacer(fsm, strategy="binpack", next_index=lambda: fsm.applied_index + 1, term=lambda: 1)
    member = Member(fsm=fsm)
    member.apply(UpsertNode(at=1.0, meta=_meta("w1")))
    huge = SubmitTask(at=1.5, task=Task(id="huge", name="huge", image="busybox", memory=32 * GiB))
    assert decode_command(placer.prepare(encode_command(huge))).node_id == ""  # type: ignore[union-attr]
    member.watch("w1", since=member.fsm.applied_index)
    member.apply(SubmitTask(at=2.0, task=_web("a")), AssignTasks(at=3.0, assignments=[("a", "w1")]))
    assert [t.id for t in _answer(member.take()).tasks] == ["a"]  # the host heard it
    big = SubmitTask(at=4.0, task=Task(id="big", name="big", image="busybox", memory=16 * GiB))
    placed = decode_command(placer.prepare(encode_command(big)))
    # The placer heard "a" take 1 GiB of w1's 16: a 16 GiB task fits nowhere.
    assert isinstance(placed, SubmitTask) and placed.node_id == "" and "insufficient memory" in placed.reason
