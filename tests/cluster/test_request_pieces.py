"""The request path's plain parts (orion/cluster/forwarding.py Forwarder, write_waiters.py,
linearizable_reads.py, deadlines.py): what each answers, to whom, and when, without Raft or actors."""

from __future__ import annotations

from typing import Any

import pytest

from orion.api.protocol import ErrorCode
from orion.cluster.deadlines import pop_expired
from orion.cluster.forwarding import (
    ForwardAnswer,
    Forwarder,
    ForwardPropose,
    ForwardReadIndex,
    Remote,
    RequestKind,
    decode_forward,
    decode_result,
)
from orion.cluster.linearizable_reads import LinearizableReads
from orion.cluster.outcome import Outcome
from orion.cluster.write_waiters import Waiter, WriteWaiters
from orion.fsm.commands import CommandError, Refusal
from orion.fsm.results import ReportResults, TaskIds
from orion.fsm.tables import NodeRecord
from orion.model import NodeMeta, NodeStatus, Task
from orion.raft.types import Entry, EntryKind
from orion.services.spec import Service, ServiceSpec, TaskTemplate


class Answers:
    """Collects outcomes (a request's callback) and frames (``send``/``reply``)."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.frames: list[tuple[str, Any]] = []
        self.replies: list[tuple[str, ForwardAnswer]] = []

    def callback(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def send(self, address: str, payload: bytes) -> None:
        self.frames.append((address, decode_forward(payload)))

    def reply(self, origin: str, answer: ForwardAnswer) -> None:
        self.replies.append((origin, answer))


def _deadline(item: float) -> Any:
    return Waiter(0, None, item)


# ---------------------------------------------------------------------------- deadlines
def test_pop_expired_takes_the_expired_prefix_only() -> None:
    pending = {1: _deadline(1.0), 2: _deadline(2.0), 3: _deadline(3.0), 4: _deadline(1.5)}
    assert [w.deadline for w in pop_expired(pending, 2.0)] == [1.0, 2.0]  # deadline == now expires
    assert list(pending) == [3, 4]  # behind a live one: left for a later scan, by design


# ---------------------------------------------------------------------------- Forwarder
def test_forwarder_sends_writes_and_reads_with_its_origin_and_fresh_ids() -> None:
    out = Answers()
    forwarder = Forwarder("me:1", out.send)
    write = Remote(RequestKind.PROPOSE, 5.0, out.callback, data=b"cmd")
    read = Remote(RequestKind.READ, 5.0, out.callback, query=len)
    forwarder.forward(write, "leader:1")
    forwarder.forward(read, "leader:1")
    assert out.frames == [
        ("leader:1", ForwardPropose(1, "me:1", b"cmd")),
        ("leader:1", ForwardReadIndex(2, "me:1")),
    ]
    assert forwarder.answered(2) is read
    assert forwarder.answered(2) is None  # answered once; a duplicate answer finds nothing
    assert forwarder.answered(1) is write


def test_forwarder_parks_without_an_address_and_expires_both_kinds() -> None:
    out = Answers()
    forwarder = Forwarder("me:1", out.send)
    parked = Remote(RequestKind.PROPOSE, 1.0, None)
    late = Remote(RequestKind.PROPOSE, 9.0, None)
    forwarder.forward(parked, None)
    forwarder.park(late)
    sent = Remote(RequestKind.READ, 1.0, None, query=len)
    forwarder.forward(sent, "leader:1")
    assert out.frames == [("leader:1", ForwardReadIndex(1, "me:1"))]
    assert forwarder.has_parked
    assert forwarder.expire(1.0) == ([sent], [parked])
    assert forwarder.take_parked() == [late]
    assert not forwarder.has_parked and forwarder.take_parked() == []


def test_forwarder_gives_back_what_went_to_a_former_leader() -> None:
    # A follower that learns of a new leader stops waiting for the old one (it died or was
    # deposed): RequestPath re-asks reads and tells writers "outcome unknown" at once.
    out = Answers()
    forwarder = Forwarder("me:1", out.send)
    to_old = Remote(RequestKind.PROPOSE, 5.0, out.callback, data=b"cmd")
    read_to_old = Remote(RequestKind.READ, 5.0, out.callback, query=len)
    to_new = Remote(RequestKind.PROPOSE, 5.0, out.callback, data=b"other")
    forwarder.forward(to_old, "old:1")
    forwarder.forward(read_to_old, "old:1")
    forwarder.forward(to_new, "new:1")
    assert forwarder.take_sent_elsewhere("new:1") == [to_old, read_to_old]
    assert forwarder.take_sent_elsewhere("new:1") == []
    assert forwarder.answered(3) is to_new  # still waits for the current leader
    forwarder.forward(to_old, "new:1")
    assert forwarder.take_sent_elsewhere(None) == [to_old]  # no leader known: nobody will answer


def test_forwarder_replies_to_the_origin() -> None:
    out = Answers()
    Forwarder("me:1", out.send).reply("follower:1", ForwardAnswer(7, index=3))
    assert out.frames == [("follower:1", ForwardAnswer(7, index=3))]


# ---------------------------------------------------------------------------- WriteWaiters
def test_an_applied_write_is_answered_with_the_fsm_result_or_its_refusal() -> None:
    out = Answers()
    waiters = WriteWaiters(out.reply)
    waiters.add(4, Waiter(2, out.callback, 9.0))
    waiters.add(5, Waiter(2, out.callback, 9.0))
    waiters.on_applied(Entry(4, 2, EntryKind.NORMAL, b""), "result")
    waiters.on_applied(Entry(5, 2, EntryKind.NORMAL, b""), CommandError(Refusal.NOT_FOUND, "no task x"))
    waiters.on_applied(Entry(6, 2, EntryKind.NORMAL, b""), "nobody waits")
    assert out.outcomes == [Outcome.success("result"), Outcome.failure(ErrorCode.NOT_FOUND, "no task x")]
    assert len(waiters) == 0


def test_a_write_replaced_by_another_terms_entry_is_not_committed() -> None:
    out = Answers()
    waiters = WriteWaiters(out.reply)
    waiters.add(4, Waiter(2, out.callback, 9.0))
    waiters.on_applied(Entry(4, 3, EntryKind.NORMAL, b""), "someone else's")
    assert out.outcomes == [Outcome.failure(ErrorCode.UNAVAILABLE, "leadership changed; not committed")]


def test_a_forwarded_write_is_answered_to_its_follower_with_the_task_encoded() -> None:
    out = Answers()
    waiters = WriteWaiters(out.reply)
    task = Task(id="t1", name="t1", image="busybox")
    waiters.add(4, Waiter(2, None, 9.0, forward_to=("follower:1", 17)))
    waiters.add(5, Waiter(2, None, 9.0, forward_to=("follower:1", 18)))
    waiters.on_applied(Entry(4, 2, EntryKind.NORMAL, b""), task)
    waiters.on_applied(Entry(5, 2, EntryKind.NORMAL, b""), "not a task: not sent")
    (origin, first), (_, second) = out.replies
    assert origin == "follower:1" and (first.req_id, first.code, first.index) == (17, "", 4)
    assert decode_result(first.result_kind, first.result) == task
    assert (second.req_id, second.result_kind, second.result) == (18, "", b"")
    assert out.outcomes == []


@pytest.mark.parametrize(
    "record",
    [
        Service(name="web", spec=ServiceSpec(name="web", template=TaskTemplate(image="orion-web:v1"))),
        NodeRecord(id="node2", status=NodeStatus.ALIVE, meta=NodeMeta(id="node2")),
        TaskIds(task_ids=["a", "b"]),
        ReportResults(refused=[(1, "invalid", "stale report for task t2")]),
    ],
    ids=lambda record: type(record).__name__,
)
def test_a_forwarded_write_answers_with_whichever_record_the_fsm_returned(record: object) -> None:
    # A follower's caller gets what the leader's caller gets: a service created, a node drained.
    out = Answers()
    waiters = WriteWaiters(out.reply)
    waiters.add(4, Waiter(2, None, 9.0, forward_to=("follower:1", 17)))
    waiters.on_applied(Entry(4, 2, EntryKind.NORMAL, b""), record)
    ((_, answer),) = out.replies
    assert decode_result(answer.result_kind, answer.result) == record


def test_losing_leadership_answers_uncommitted_writes_with_an_unknown_outcome() -> None:
    out = Answers()
    waiters = WriteWaiters(out.reply)
    for index in (3, 4, 5):
        waiters.add(index, Waiter(2, out.callback, 9.0))
    waiters.on_leadership_lost(commit_index=3)
    assert out.outcomes == [Outcome.failure(ErrorCode.TIMEOUT, "leadership lost; outcome unknown")] * 2
    waiters.on_applied(Entry(3, 2, EntryKind.NORMAL, b""), "committed before")
    assert out.outcomes[-1] == Outcome.success("committed before")


def test_expired_writes_time_out_and_a_stopping_node_fails_its_local_callers() -> None:
    out = Answers()
    waiters = WriteWaiters(out.reply)
    waiters.add(3, Waiter(2, out.callback, 1.0))
    waiters.add(4, Waiter(2, out.callback, 5.0))
    waiters.add(5, Waiter(2, None, 5.0, forward_to=("follower:1", 1)))
    waiters.expire(1.0, lambda: "why")
    assert out.outcomes == [Outcome.failure(ErrorCode.TIMEOUT, "why")]
    stopping = Outcome.failure(ErrorCode.UNAVAILABLE, "node is shutting down")
    waiters.fail_callers(stopping)
    assert out.outcomes[-1] == stopping and out.replies == [] and len(waiters) == 0


# ---------------------------------------------------------------------------- LinearizableReads
def run(query: Any) -> Outcome:
    return Outcome.success(query("state"))


def test_a_read_runs_once_confirmed_and_applied() -> None:
    out = Answers()
    reads = LinearizableReads(out.reply)
    first = reads.start(len, out.callback, 9.0)
    second = reads.start(str.upper, out.callback, 9.0)
    assert first != second
    reads.on_read_state(first, 5)
    reads.on_read_state(second, 7)
    reads.on_read_state(b"unknown", 1)
    reads.serve_ready(4, run)
    assert out.outcomes == []
    reads.serve_ready(6, run)
    assert out.outcomes == [Outcome.success(5)]
    reads.serve_ready(7, run)
    assert out.outcomes == [Outcome.success(5), Outcome.success("STATE")]


def test_a_followers_read_index_request_is_answered_with_the_index() -> None:
    out = Answers()
    reads = LinearizableReads(out.reply)
    context = reads.start_forwarded("follower:1", 9, 5.0)
    reads.on_read_state(context, 12)
    assert out.replies == [("follower:1", ForwardAnswer(9, index=12))]
    reads.wait_for_apply(len, out.callback, 5.0, 12)  # back on the follower
    reads.serve_ready(12, run)
    assert out.outcomes == [Outcome.success(5)]


def test_a_read_that_cannot_be_confirmed_fails_locally_or_sends_the_follower_elsewhere() -> None:
    out = Answers()
    reads = LinearizableReads(out.reply)
    local = reads.start(len, out.callback, 9.0)
    forwarded = reads.start_forwarded("follower:1", 3, 9.0)
    reads.fail(local, "leadership lost")
    reads.fail(forwarded, "leadership lost")
    reads.fail(local, "twice")  # already answered
    assert out.outcomes == [Outcome.failure(ErrorCode.UNAVAILABLE, "leadership lost")]
    assert out.replies == [("follower:1", ForwardAnswer(3, ErrorCode.NOT_LEADER, "leadership lost"))]


def test_expired_reads_fail_for_want_of_a_quorum_or_of_catching_up() -> None:
    out = Answers()
    reads = LinearizableReads(out.reply)
    reads.start(len, out.callback, 1.0)
    reads.start_forwarded("follower:1", 3, 1.0)  # the follower times out on its own
    reads.wait_for_apply(len, out.callback, 1.0, 50)
    reads.wait_for_apply(len, out.callback, 8.0, 50)
    reads.expire(1.0, lambda: "2 of 3 voters unreachable")
    assert out.outcomes == [
        Outcome.failure(ErrorCode.NO_QUORUM, "2 of 3 voters unreachable"),
        Outcome.failure(ErrorCode.TIMEOUT, "read timed out waiting to catch up"),
    ]
    assert out.replies == []
    reads.serve_ready(50, run)
    assert out.outcomes[-1] == Outcome.success(5)
