"""A worker's request path (issue 20): its Raft core never learns a leader, so writes go to the
leader the feed names; cluster-wide reads, linearizable or stale, are refused at once (retryable),
node-local ones are served from the fed state (after a fresh feed answer unless stale). A real
Raft core with an empty configuration, a real FeedClient; the network is lists of frames."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from orion.api.protocol import ErrorCode
from orion.cluster.feed_client import FeedClient
from orion.cluster.feed_protocol import FeedAnswer, FeedWatch, decode_feed
from orion.cluster.forwarding import ForwardAnswer, ForwardPropose, ForwardReadIndex, decode_forward
from orion.cluster.leadership import Leadership
from orion.cluster.mirror import MemberMirror
from orion.cluster.outcome import Outcome
from orion.cluster.request_path import RequestPath
from orion.model import NodeMeta, Task
from orion.raft.core import RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore

ME = "w1"
ORIGIN = "127.0.0.9:7000"


class Worker:
    def __init__(self, describe_members: Callable[[list[str]], str] | None = None) -> None:
        self.forwarded: list[tuple[str, Any]] = []
        self.watches: list[tuple[str, FeedWatch]] = []
        self.outcomes: list[Outcome] = []
        self.tasks: list[Task] = []
        store = MemoryStore()
        store.save_identity("ab" * 16)
        core = RaftCore(ME, store.load(), RaftConfig(), random.Random(1))
        self.feed = FeedClient(ME, ORIGIN, self._feed_send)
        self.feed.set_candidates(["m1:7000"])
        self.requests = RequestPath(
            core,
            Leadership(0.0),
            node_id=ME,
            origin=ORIGIN,
            request_timeout=5.0,
            election_ticks=10,
            send=lambda address, payload: self.forwarded.append((address, decode_forward(payload))),
            run=lambda query: Outcome.success(query(self.feed.tasks)),
            feed=self.feed,
            describe_members=describe_members,
        )

    def _feed_send(self, address: str, payload: bytes) -> None:
        message = decode_feed(payload)
        assert isinstance(message, FeedWatch)
        self.watches.append((address, message))

    def answer(self, index: int, leader: str, address: str, tasks: list[Task] | None, now: float) -> None:
        update = self.feed.on_message(
            FeedAnswer(
                ME,
                index,
                tasks is not None,
                tasks=tasks or [],
                cluster_id="c1",
                leader_id=leader,
                leader_address=address,
                servers=["m1:7000", "m2:7000"],
            ),
            now,
        )
        if update is not None and update.leader_changed:
            self.requests.on_leadership_changed()


def _started_worker(describe_members: Callable[[list[str]], str] | None = None) -> Worker:
    worker = Worker(describe_members)
    worker.feed.set_active(True, 0.0)
    worker.feed.tick(0.0)
    worker.answer(4, "v1", "10.0.0.1:7000", [], 0.0)
    return worker


def test_a_worker_forwards_its_writes_to_the_leader_the_feed_names() -> None:
    worker = _started_worker()
    assert worker.requests.is_worker
    worker.requests.propose(b"report", worker.outcomes.append, 5.0)
    [(address, message)] = worker.forwarded
    assert address == "10.0.0.1:7000" and isinstance(message, ForwardPropose) and message.origin == ORIGIN
    worker.requests.on_forward(ForwardAnswer(message.req_id, index=9), 0.5)
    assert worker.outcomes == [Outcome.success(None)]


def test_a_write_waits_for_a_leader_when_the_feed_names_none_yet() -> None:
    worker = Worker()
    worker.feed.set_active(True, 0.0)
    worker.requests.propose(b"report", worker.outcomes.append, 5.0)
    assert worker.forwarded == []  # parked
    worker.feed.tick(0.0)
    worker.answer(4, "v1", "10.0.0.1:7000", [], 0.1)
    assert [a for a, m in worker.forwarded if isinstance(m, ForwardPropose)] == ["10.0.0.1:7000"]


def test_when_the_feed_names_a_new_leader_writes_sent_to_the_former_one_are_outcome_unknown() -> None:
    worker = _started_worker()
    worker.requests.propose(b"report", worker.outcomes.append, 5.0)
    worker.answer(6, "v2", "10.0.0.2:7000", None, 1.0)
    [outcome] = worker.outcomes
    assert outcome.code == ErrorCode.TIMEOUT and "now v2" in outcome.message
    worker.requests.propose(b"again", worker.outcomes.append, 6.0)
    assert worker.forwarded[-1][0] == "10.0.0.2:7000"


def test_a_refusal_by_a_former_leader_asks_the_feed_for_news_instead_of_sending_straight_back() -> None:
    worker = _started_worker()
    worker.watches.clear()
    worker.requests.propose(b"report", worker.outcomes.append, 5.0)
    [(_, message)] = worker.forwarded
    worker.requests.on_forward(
        ForwardAnswer(message.req_id, ErrorCode.NOT_LEADER, "v1 is not the leader"), 0.5
    )
    assert len(worker.forwarded) == 1 and worker.outcomes == []
    assert [w.wait_ms for _, w in worker.watches] == [0]  # a fresh answer, at once
    worker.answer(7, "v2", "10.0.0.2:7000", None, 0.6)
    assert [a for a, _ in worker.forwarded] == ["10.0.0.1:7000", "10.0.0.2:7000"]


def test_a_cluster_wide_read_on_a_worker_is_refused_at_once_naming_the_members() -> None:
    worker = _started_worker()
    worker.requests.read(len, worker.outcomes.append, 5.0, now=0.0)
    [outcome] = worker.outcomes
    assert outcome.code == ErrorCode.NOT_LEADER
    assert "m1:7000, m2:7000" in outcome.message and "worker" in outcome.message
    assert not any(isinstance(m, ForwardReadIndex) for _, m in worker.forwarded)


def test_a_node_local_read_on_a_worker_is_served_from_the_fed_state_after_a_fresh_answer() -> None:
    worker = _started_worker()
    worker.watches.clear()
    worker.requests.read(len, worker.outcomes.append, 5.0, local=True, now=1.0)
    assert worker.outcomes == []
    [(_, watch)] = worker.watches
    assert watch.wait_ms == 0
    task = Task(id="t1", name="t1", image="busybox", node_id=ME)
    worker.answer(8, "v1", "10.0.0.1:7000", [task], 1.1)
    assert worker.outcomes == [Outcome.success(1)]
    # No answer in time: unavailable, at the read's deadline.
    worker.requests.read(len, worker.outcomes.append, 2.0, local=True, now=1.5)
    worker.feed.tick(2.0)
    assert worker.outcomes[-1].code == ErrorCode.UNAVAILABLE


def test_a_stale_read_of_the_cluster_is_refused_too_a_stale_node_local_one_is_served_at_once() -> None:
    """``orion task ls --stale`` on a worker would list its own tasks only, as if the cluster
    ran nothing else: refused the retryable way; the node's own stale reads (health checks,
    volumes, its status) are served from the fed state without a round trip."""
    worker = _started_worker()
    worker.watches.clear()
    worker.requests.read(len, worker.outcomes.append, 5.0, stale=True)
    [refused] = worker.outcomes
    assert refused.code == ErrorCode.NOT_LEADER and "holds only its own tasks" in refused.message
    worker.requests.read(len, worker.outcomes.append, 5.0, stale=True, local=True)
    assert worker.outcomes[-1] == Outcome.success(0) and worker.watches == []


def test_the_refusal_names_the_members_api_endpoints_gossip_knows() -> None:
    mirror = MemberMirror()
    mirror.set_local(
        NodeMeta(id="m1", address="10.0.0.1", raft_port=7000, api_port=7300, http_port=7400), 0.0
    )
    mirror.set_local(NodeMeta(id="m2", address="10.0.0.2", raft_port=7000, api_port=7300), 0.0)
    worker = _started_worker(describe_members=mirror.describe_endpoints)
    worker.answer(5, "m1", "10.0.0.1:7000", None, 0.1)
    worker.feed.servers = ["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"]
    worker.requests.read(len, worker.outcomes.append, 5.0, now=0.2)
    message = worker.outcomes[-1].message
    assert "API at 10.0.0.1:7300, 10.0.0.2:7300; REST at 10.0.0.1:7400; Raft at 10.0.0.3:7000" in message


def test_before_any_answer_a_node_outside_the_configuration_parks_reads_as_before() -> None:
    worker = Worker()
    worker.feed.set_active(True, 0.0)
    assert not worker.requests.is_worker
    worker.requests.read(len, worker.outcomes.append, 5.0, now=0.0)
    assert worker.outcomes == [] and worker.requests.forwarder.has_parked


def test_once_in_the_configuration_the_reconcilers_reads_wait_for_the_replica_to_pass_the_fed_index() -> None:
    worker = _started_worker()
    worker.feed.set_active(False, 1.0)  # the configuration holds it now; its replica is empty
    worker.requests.read(len, worker.outcomes.append, 5.0, stale=True, local=True, complete=True, now=1.0)
    [outcome] = worker.outcomes
    assert outcome.code == ErrorCode.UNAVAILABLE and "catching up (applied 0" in outcome.message
    # Other reads are not held back: the node's status (/health), its health checks, volumes.
    worker.requests.read(len, worker.outcomes.append, 5.0, stale=True, local=True, now=1.0)
    worker.requests.read(len, worker.outcomes.append, 5.0, stale=True, now=1.0)
    assert worker.outcomes[1:] == [Outcome.success(0), Outcome.success(0)]
