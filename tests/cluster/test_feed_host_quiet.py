"""FeedHost (orion/cluster/feed_host.py) on an idle member: a drain or a tick with no watch
parked and no node touched does not catch up (every tick and every heartbeat's drain did), and
what it left behind (the feed's index, the configuration, the leader) is caught up before a
watch is looked at. The same Member as tests/cluster/test_feed_host.py: a real ClusterState,
a real RaftCore."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orion.cluster.feed_protocol import FeedAnswer, FeedRedirect
from orion.fsm.commands import AssignTasks, ReportTaskState, SubmitTask, UpsertNode
from orion.raft.messages import Heartbeat
from tests.cluster.test_feed_host import M1, W1, Member, _meta, _web


def _count_catch_ups(monkeypatch: pytest.MonkeyPatch, member: Member) -> list[int]:
    calls: list[int] = []
    real: Callable[[], None] = member.host._catch_up

    def counted() -> None:
        calls.append(1)
        real()

    monkeypatch.setattr(member.host, "_catch_up", counted)
    return calls


@pytest.fixture
def member() -> Member:
    m = Member()
    m.apply(UpsertNode(at=1.0, meta=_meta("w1")), UpsertNode(at=1.0, meta=_meta("w2")))
    m.apply(SubmitTask(at=2.0, task=_web("a")), AssignTasks(at=3.0, assignments=[("a", "w1")]))
    return m


def test_an_idle_member_does_not_catch_up_on_every_drain_and_tick(
    monkeypatch: pytest.MonkeyPatch, member: Member
) -> None:
    calls = _count_catch_ups(monkeypatch, member)
    for now in (1.0, 1.1, 1.2):
        member.host.on_drained()  # a heartbeat's drain: nothing applied
        member.host.expire(now)  # the tick
    assert calls == [] and member.take() == []
    member.apply(ReportTaskState(at=4.0, task_id="a", node_id="w1", state="Running"))  # touches w1
    assert calls == [1]
    member.watch("w1", since=member.fsm.applied_index)  # parked: from now on every tick looks
    member.host.expire(2.0)
    member.host.on_drained()
    assert len(calls) == 4  # on_watch's, the tick's, the drain's


def test_entries_that_touched_no_node_still_count_when_a_watch_comes(member: Member) -> None:
    member.apply(UpsertNode(at=5.0, meta=_meta("w3")))  # a drain with nothing to catch up
    member.host.expire(1.0)
    # A worker that heard this member's last answer waits; it is not sent everything again.
    member.watch("w1", since=member.fsm.applied_index)
    assert member.take() == [] and member.host.feed.parked == 1
    member.host.expire(31.0)
    [(address, answer)] = member.take()
    assert address == W1 and isinstance(answer, FeedAnswer) and not answer.changed
    assert answer.index == member.fsm.applied_index


def test_a_configuration_change_on_a_quiet_member_is_in_the_next_answer(member: Member) -> None:
    member.core.add_non_voter("w1", W1)
    member.host.on_drained()
    member.host.expire(1.0)
    member.watch("w1", since=0)
    answer = member.take()[0][1]
    assert isinstance(answer, FeedAnswer) and answer.member and answer.servers == [M1, W1]


def test_a_member_removed_while_nobody_waits_redirects_the_next_watch() -> None:
    follower = Member("m2", members={"m1": M1, "m2": "127.0.0.1:7002", "m3": "127.0.0.1:7003"})
    follower.apply(UpsertNode(at=1.0, meta=_meta("w1")))
    follower.core.step(Heartbeat(src="m1", dst="m2", term=1, commit=0))
    follower.host.on_drained()
    assert follower.host.serving
    follower.host.stood_down = True  # the feed said the cluster removed it
    follower.host.expire(1.0)
    follower.watch("w1", since=follower.fsm.applied_index)
    [(address, message)] = follower.take()
    assert address == W1 and isinstance(message, FeedRedirect)


def test_a_new_leader_on_a_quiet_member_is_in_the_next_answer() -> None:
    follower = Member("m2", members={"m1": M1, "m2": "127.0.0.1:7002", "m3": "127.0.0.1:7003"})
    follower.apply(UpsertNode(at=1.0, meta=_meta("w1")))
    follower.core.step(Heartbeat(src="m1", dst="m2", term=1, commit=0))
    follower.host.on_drained()
    follower.core.step(Heartbeat(src="m3", dst="m2", term=2, commit=0))
    follower.host.on_drained()  # nobody parked: nothing to tell anyone
    follower.watch("w1", since=follower.fsm.applied_index, wait_ms=0)
    answer = follower.take()[0][1]
    assert isinstance(answer, FeedAnswer) and (answer.leader_id, answer.leader_address) == (
        "m3",
        "127.0.0.1:7003",
    )
