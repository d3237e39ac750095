"""A worker's feed client (issue 20): which server it watches, what it sends and when, what it
keeps, under lost answers, dead servers, redirects and lagging servers. Deterministic: the
members are real ``WorkerFeed`` cores over a table of tasks, time is a number, and the
network is a list of frames the test delivers, loses or delays."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import msgspec
import pytest

from orion.cluster.feed_client import FeedClient
from orion.cluster.feed_protocol import FeedAnswer, FeedRedirect, FeedWatch, decode_feed
from orion.cluster.worker_feed import Due, WorkerFeed
from orion.fsm.events import Event
from orion.model import Task

ME = "w1"
ORIGIN = "127.0.0.9:7000"


def _task(task_id: str, state: str = "scheduled") -> Task:
    return Task(id=task_id, name=task_id, image="busybox", state=state, node_id=ME)


@dataclass
class Member:
    """A Raft member serving the feed: its applied index, the tasks on ``ME`` at that index."""

    address: str
    leader: str = "v1"
    leader_address: str = "127.0.0.1:7000"
    servers: list[str] = field(default_factory=list)
    index: int = 0
    tasks: dict[str, Task] = field(default_factory=dict)
    feed: WorkerFeed | None = None
    cluster_id: str = "c1"

    def start(self) -> None:
        self.feed = WorkerFeed(self.index)
        self.feed.seed((task_id, ME) for task_id in self.tasks)

    def apply(self, index: int, task: Task | None, task_id: str) -> list[FeedAnswer]:
        """Entry ``index`` changes ``task_id`` (None: removes it); the answers it triggers."""
        assert self.feed is not None
        if task is None:
            self.tasks.pop(task_id, None)
        else:
            self.tasks[task_id] = task
        self.index = index
        event = Event(index=index, at=0.0, type="task", action="changed", id=task_id)
        due = self.feed.on_applied(index, [event], lambda t: ME if t in self.tasks else None)
        return [self.answer(d) for d in due]

    def watch(self, watch: FeedWatch, now: float) -> FeedAnswer | None:
        assert self.feed is not None
        due = self.feed.watch(watch.node_id, watch.since, now + watch.wait_ms / 1000, watch.origin)
        return self.answer(due) if due is not None else None

    def expire(self, now: float) -> list[FeedAnswer]:
        assert self.feed is not None
        return [self.answer(d) for d in self.feed.expire(now)]

    def answer(self, due: Due) -> FeedAnswer:
        return FeedAnswer(
            node_id=due.watch.node_id,
            index=self.index,
            changed=due.changed,
            tasks=list(self.tasks.values()) if due.changed else [],
            cluster_id=self.cluster_id,
            leader_id=self.leader,
            leader_address=self.leader_address,
            servers=self.servers,
        )


class Net:
    def __init__(self) -> None:
        self.sent: list[tuple[str, FeedWatch]] = []

    def send(self, address: str, payload: bytes) -> None:
        message = decode_feed(payload)
        assert isinstance(message, FeedWatch)
        self.sent.append((address, message))

    def take(self) -> list[tuple[str, FeedWatch]]:
        sent, self.sent = self.sent, []
        return sent


def _client(net: Net, **kw: float) -> FeedClient:
    client = FeedClient(ME, ORIGIN, net.send, **kw)
    client.set_candidates(["a", "b", ORIGIN, "a", "c"])
    return client


def _answer(index: int, tasks: list[Task] | None = None, **kw: object) -> FeedAnswer:
    return FeedAnswer(
        node_id=ME,
        index=index,
        changed=tasks is not None,
        tasks=tasks or [],
        cluster_id=str(kw.get("cluster_id", "c1")),
        leader_id="v1",
        leader_address="127.0.0.1:7000",
        servers=list(kw.get("servers", ["a", "b", "c"])),  # type: ignore[call-overload]
    )


def test_the_first_watch_asks_the_first_candidate_for_everything_and_the_next_resumes_at_its_index() -> None:
    net = Net()
    client = _client(net)
    client.tick(0.0)
    assert net.sent == []  # inactive: this node is in its own configuration
    client.set_active(True, 0.0)
    client.tick(0.0)
    [(address, watch)] = net.take()
    assert (address, watch.since, watch.wait_ms, watch.origin) == ("a", 0, 10_000, ORIGIN)
    update = client.on_message(_answer(7, [_task("t1")]), 0.1)
    assert update is not None and update.tasks_changed and update.leader_changed and update.cluster_changed
    assert [t.id for t in client.tasks] == ["t1"]
    assert client.leader == ("v1", "127.0.0.1:7000") and client.cluster_id == "c1"
    [(address, watch)] = net.take()
    assert (address, watch.since) == ("a", 7)
    # Nothing new at the deadline: the tasks stay, since moves on, and the watch goes again.
    update = client.on_message(_answer(9), 10.1)
    assert update is not None and not update.tasks_changed and not update.leader_changed
    assert [t.id for t in client.tasks] == ["t1"] and client.since == 9
    assert [w.since for _, w in net.take()] == [9]


def test_a_lost_answer_is_asked_again_of_the_next_server_after_wait_and_margin() -> None:
    net = Net()
    client = _client(net)
    client.set_active(True, 0.0)
    client.tick(0.0)
    client.on_message(_answer(5, [_task("t1")]), 0.0)
    net.take()
    client.tick(12.9)
    assert net.sent == []
    assert client.next_deadline() == pytest.approx(13.0)
    client.tick(13.0)
    [(address, watch)] = net.take()
    assert (address, watch.since) == ("b", 5)  # same since: nothing was missed
    assert client.stats.timeouts == 1


def test_a_redirect_switches_at_once_and_its_servers_are_asked_first() -> None:
    net = Net()
    client = _client(net)
    client.set_active(True, 0.0)
    client.tick(0.0)
    net.take()
    client.on_message(FeedRedirect(ME, servers=["m1", "m2"], reason="worker"), 0.1)
    [(address, watch)] = net.take()
    assert (address, watch.since) == ("m1", 0)
    assert client.on_message(_answer(3, [], servers=["m1", "m2"]), 0.2) is not None


def test_after_every_server_failed_in_a_row_the_next_attempt_waits_the_retry_gap() -> None:
    net = Net()
    client = _client(net)
    client.set_active(True, 0.0)
    client.tick(0.0)
    for _ in range(2):
        client.on_message(FeedRedirect(ME), 0.0)
    assert [a for a, _ in net.take()] == ["a", "b", "c"]
    client.on_message(FeedRedirect(ME), 0.0)  # the third failure in a row
    assert net.take() == []
    assert client.next_deadline() == pytest.approx(1.0)
    client.tick(1.0)
    assert [a for a, _ in net.take()] == ["a"]


def test_a_candidate_that_redirects_naming_no_server_is_skipped_and_the_seeds_are_asked_next() -> None:
    # Gossip does not tell members from workers: a worker that joined before it heard of the
    # seeds asked another worker first. The next attempt goes to the top of the list (the
    # seeds), not on through the other workers one redirect at a time.
    net = Net()
    client = FeedClient(ME, ORIGIN, net.send)
    client.set_candidates(["w2", "w3", "w4"])
    client.set_active(True, 0.0)
    client.tick(0.0)
    assert [a for a, _ in net.take()] == ["w2"]
    client.set_candidates(["s1", "w2", "w3", "w4"])
    client.on_message(FeedRedirect(ME, reason="not a Raft member holding the state"), 0.1)
    assert [a for a, _ in net.take()] == ["s1"]
    client.on_message(_answer(4, [], servers=["s1"]), 0.2)
    assert [a for a, _ in net.take()] == ["s1"]


def test_nobody_to_ask_is_looked_at_again_later() -> None:
    net = Net()
    client = FeedClient(ME, ORIGIN, net.send)
    client.set_active(True, 0.0)
    client.tick(0.0)
    assert net.take() == [] and client.next_deadline() == pytest.approx(1.0)
    client.set_candidates(["a"])
    client.tick(1.0)
    assert [a for a, _ in net.take()] == ["a"]


def test_a_lagging_server_behind_since_is_not_believed_and_the_next_one_is_asked() -> None:
    net = Net()
    client = _client(net)
    client.set_active(True, 0.0)
    client.tick(0.0)
    client.on_message(_answer(20, [_task("t1", "stopped")]), 0.0)
    net.take()
    # A standby at index 15 sends its (older) view: t1 still running there.
    assert client.on_message(_answer(15, [_task("t1", "running")]), 1.0) is None
    assert client.tasks[0].state == "stopped" and client.since == 20 and client.stats.lagging == 1
    [(address, watch)] = net.take()
    assert (address, watch.since) == ("b", 20)
    # One that caught up exactly to since is believed.
    assert client.on_message(_answer(20, [_task("t1", "stopped"), _task("t2")]), 1.1) is not None
    assert [t.id for t in client.tasks] == ["t1", "t2"]


def test_an_answer_from_another_cluster_starts_over_whatever_its_index() -> None:
    net = Net()
    client = _client(net)
    client.set_active(True, 0.0)
    client.tick(0.0)
    client.on_message(_answer(500, [_task("t1")]), 0.0)
    update = client.on_message(_answer(3, None, cluster_id="c2"), 1.0)
    assert update is not None and update.cluster_changed and update.tasks_changed
    assert client.tasks == [] and client.since == 3 and client.cluster_id == "c2"


def test_an_answer_about_another_node_is_dropped() -> None:
    net = Net()
    client = _client(net)
    client.set_active(True, 0.0)
    client.tick(0.0)
    other = FeedAnswer(node_id="w2", index=4, changed=True, tasks=[_task("x")])
    assert client.on_message(other, 0.0) is None
    assert client.tasks == [] and client.stats.foreign == 1


def test_a_fresh_read_sends_a_watch_that_waits_for_nothing_and_is_served_by_the_next_answer() -> None:
    net = Net()
    client = _client(net)
    client.set_active(True, 0.0)
    client.tick(0.0)
    client.on_message(_answer(5, []), 0.0)
    net.take()  # the long watch
    served: list[bool] = []
    client.want_fresh(served.append, deadline=5.0, now=1.0)
    [(address, watch)] = net.take()
    assert (address, watch.wait_ms, watch.since) == ("a", 0, 5)
    client.on_message(_answer(6, [_task("t1")]), 1.01)
    assert served == [True]
    # The long watch is still out: no new one until it is answered too.
    assert net.take() == []
    client.on_message(_answer(6), 10.0)
    assert [w.wait_ms for _, w in net.take()] == [10_000]


def test_a_fresh_read_fails_at_its_deadline_and_when_the_node_joins_the_configuration() -> None:
    net = Net()
    client = _client(net)
    client.set_active(True, 0.0)
    client.tick(0.0)
    first: list[bool] = []
    second: list[bool] = []
    client.want_fresh(first.append, deadline=0.5, now=0.0)
    client.want_fresh(second.append, deadline=5.0, now=0.0)
    client.tick(0.5)
    assert first == [False] and second == []
    client.set_active(False, 0.6)
    assert second == [False]
    late: list[bool] = []
    client.want_fresh(late.append, deadline=5.0, now=0.7)
    assert late == [False]
    net.take()
    client.tick(100.0)
    assert net.take() == []  # a member does not watch


def test_timings_must_be_positive() -> None:
    with pytest.raises(ValueError, match="wait 0"):
        FeedClient(ME, ORIGIN, lambda a, p: None, wait_s=0)


@pytest.mark.parametrize("seed", range(12))
def test_under_random_loss_delay_dead_and_lagging_servers_the_worker_ends_with_the_latest_tasks(
    seed: int,
) -> None:
    """Three members (one of them lagging a few entries behind, one dying midway) and a
    network that loses 15% of frames each way and delays the rest: the worker's since never goes
    back, every task list it holds is one a member held at that index, and once the faults
    stop it holds the leader's latest list."""
    rng = random.Random(seed)
    servers = ["a", "b", "c"]
    members = {name: Member(name, servers=servers) for name in servers}
    for member in members.values():
        member.start()
    net = Net()
    client = FeedClient(ME, ORIGIN, net.send, wait_s=2.0, margin_s=1.0)
    client.set_candidates(servers)
    client.set_active(True, 0.0)
    history: dict[int, list[tuple[str, str]]] = {0: []}  # index -> the tasks on ME after it
    in_flight: list[tuple[float, FeedAnswer]] = []
    lag = {"a": 0, "b": 0, "c": 30}  # c applies entries this many behind
    log: list[tuple[int, str, Task | None]] = []
    dead: set[str] = set()
    now, index, last_since = 0.0, 0, 0
    for step in range(600):
        now += 0.1
        faulty = step < 450
        if step == 200:
            dead.add("b")
        if step % 3 == 0:
            index += 1
            task_id = f"t{rng.randrange(5)}"
            task = None if rng.random() < 0.3 else _task(task_id, rng.choice(["scheduled", "running"]))
            log.append((index, task_id, task))
            state = {t.id: t for t in members["a"].tasks.values()}
            if task is None:
                state.pop(task_id, None)
            else:
                state[task_id] = task
            history[index] = sorted((t.id, t.state) for t in state.values())
        for name, member in members.items():
            target = index - (lag[name] if step < 520 else 0)
            while member.index < target:
                entry_index, task_id, task = log[member.index]
                answers = member.apply(entry_index, task, task_id)
                if name not in dead:
                    in_flight += [(now + rng.uniform(0.01, 0.5), a) for a in answers]
            if name not in dead:
                in_flight += [(now + rng.uniform(0.01, 0.5), a) for a in member.expire(now)]
        for address, watch in net.take():
            if address in dead or (faulty and rng.random() < 0.15):
                continue
            answer = members[address].watch(watch, now)
            if answer is not None:
                in_flight.append((now + rng.uniform(0.01, 0.5), answer))
        arrived = [a for t, a in in_flight if t <= now]
        in_flight = [(t, a) for t, a in in_flight if t > now]
        for answer in arrived:
            if faulty and rng.random() < 0.15:
                continue
            client.on_message(answer, now)
            assert client.since >= last_since
            last_since = client.since
            assert _held(client) == history[client.since]
        client.tick(now)
    # Quiet network for a while: the worker catches up with the latest entry.
    for _ in range(400):
        now += 0.1
        for name in servers:
            if name not in dead:
                for answer in members[name].expire(now):
                    client.on_message(answer, now)
        for address, watch in net.take():
            if address not in dead:
                answer = members[address].watch(watch, now)
                if answer is not None:
                    client.on_message(answer, now)
        client.tick(now)
    assert client.since == index
    assert _held(client) == history[index]
    assert client.stats.timeouts > 0  # the faults were met, not dodged


def _held(client: FeedClient) -> list[tuple[str, str]]:
    return sorted((t.id, t.state) for t in client.tasks)


def test_workers_spread_over_the_members_and_spare_the_leader() -> None:
    watched: dict[str, int] = {}
    for i in range(300):
        net = Net()
        client = FeedClient(f"worker-{i}", ORIGIN, net.send)
        client.set_candidates(["seed"])
        client.set_active(True, 0.0)
        client.tick(0.0)
        assert [a for a, _ in net.take()] == ["seed"]  # nothing named yet: the seed first
        answer = _answer(3, [], servers=["a", "b", "c", "d"])
        client.on_message(msgspec.structs.replace(answer, node_id=f"worker-{i}", leader_address="a"), 0.1)
        [(address, _)] = net.take()
        watched[address] = watched.get(address, 0) + 1
    assert "a" not in watched and sorted(watched) == ["b", "c", "d"]
    assert min(watched.values()) > 60  # about a third each
