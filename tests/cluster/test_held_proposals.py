"""Writes a busy leader holds back (orion/cluster/held_proposals.py), around real RaftCores
(tests/raft/core_harness.py): held only while entries are in flight, released when those commit,
when the wait runs out or when leadership is lost, in arrival order; and the request path
proposing the released writes together (``RequestPath.propose_all``)."""

from __future__ import annotations

from orion.api.protocol import ErrorCode
from orion.cluster.held_proposals import HeldProposals, HeldWrite
from orion.cluster.leadership import Leadership
from orion.cluster.outcome import Outcome
from orion.cluster.request_path import RequestPath
from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.messages import AppendResponse
from tests.raft.core_harness import CoreHarness

CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2)


def _led_by_n1() -> tuple[CoreHarness, RaftCore]:
    h = CoreHarness(["n1", "n2", "n3"], CONFIG)
    leader = h.elect("n1")
    h.pump()
    assert leader.commit_index == leader.last_index
    return h, leader


def _write(name: str) -> HeldWrite:
    return HeldWrite(name.encode(), None, 99.0)


def test_an_idle_leader_holds_nothing_and_a_follower_never_holds() -> None:
    h, leader = _led_by_n1()
    held = HeldProposals()
    assert not held.holds(leader)  # nothing in flight: a lone write goes at once
    assert not held.holds(h.core("n2"))
    assert held.next_deadline() is None and not held.due(leader, 0.0)


def test_writes_wait_for_the_entries_in_flight_to_commit_then_go_in_order() -> None:
    h, leader = _led_by_n1()
    h.hold = lambda msg: isinstance(msg, AppendResponse)  # the answers that would commit it
    leader.propose(b"first")
    h.pump()
    assert leader.last_index > leader.commit_index
    held = HeldProposals(hold_max=0.02)
    assert held.holds(leader)
    held.add(_write("a"), leader, now=1.0)
    held.add(_write("b"), leader, now=1.005)
    assert len(held) == 2 and held.next_deadline() == 1.02
    assert not held.due(leader, 1.01)
    h.hold = lambda _msg: False
    h.release()  # the followers' answers arrive: "first" commits
    assert leader.commit_index == leader.last_index
    assert held.due(leader, 1.01)
    assert [w.data for w in held.take()] == [b"a", b"b"]
    assert len(held) == 0 and not held.holds(leader)


def test_later_writes_queue_behind_held_ones_even_once_nothing_is_in_flight() -> None:
    _, leader = _led_by_n1()
    held = HeldProposals()
    held.add(_write("a"), leader, now=0.0)  # (as if held while something was in flight)
    assert held.holds(leader)  # a newer write must not overtake it


def test_held_writes_go_when_the_wait_runs_out_or_leadership_is_lost() -> None:
    h, leader = _led_by_n1()
    h.hold = lambda msg: isinstance(msg, AppendResponse)
    leader.propose(b"first")
    h.pump()
    held = HeldProposals(hold_max=0.02)
    held.add(_write("a"), leader, now=1.0)
    assert not held.due(leader, 1.019) and held.due(leader, 1.02)
    follower = h.core("n2")
    held.add(_write("b"), leader, now=2.0)
    assert held.due(follower, 2.0)  # not a leader: the request path forwards or parks them


def test_newer_entries_in_flight_do_not_hold_back_writes_whose_wait_began_before_them() -> None:
    h, leader = _led_by_n1()
    h.hold = lambda msg: isinstance(msg, AppendResponse)
    first = leader.propose(b"first")
    h.pump()
    held = HeldProposals()
    held.add(_write("a"), leader, now=0.0)  # waits for "first" only
    leader.propose(b"second")  # e.g. earlier writes released by a wait that ran out
    h.pump()
    for answer in [m for m in h.held if m.index <= first]:  # "first"'s answers arrive, not "second"'s
        leader.step(answer)
    assert leader.commit_index < leader.last_index  # "second" is still in flight
    assert held.due(leader, 0.0)


def test_fail_all_answers_every_held_write() -> None:
    _, leader = _led_by_n1()
    outcomes: list[Outcome] = []
    held = HeldProposals()
    held.add(HeldWrite(b"a", outcomes.append, 9.0), leader, now=0.0)
    held.add(HeldWrite(b"b", None, 9.0), leader, now=0.0)
    held.fail_all(Outcome.failure(ErrorCode.UNAVAILABLE, "node is shutting down"))
    assert [o.code for o in outcomes] == [ErrorCode.UNAVAILABLE] and len(held) == 0


def _request_path(h: CoreHarness, core: RaftCore, leadership: Leadership) -> RequestPath:
    return RequestPath(
        core,
        leadership,
        node_id=core.id,
        origin=f"core:{core.id}",
        request_timeout=5.0,
        election_ticks=CONFIG.election_ticks,
        send=lambda _address, _payload: None,
        run=lambda _query: Outcome.success(None),
    )


def test_released_writes_are_appended_in_order_and_each_answered_when_applied() -> None:
    h, leader = _led_by_n1()
    leadership = Leadership(now=0.0)
    leadership.observe(leader, now=0.0)
    requests = _request_path(h, leader, leadership)
    outcomes: list[tuple[str, Outcome]] = []
    first = leader.last_index + 1
    requests.propose_all(
        [
            (name, lambda outcome, name=name: outcomes.append((name.decode(), outcome)), 9.0)
            for name in (b"a", b"b", b"c")
        ]
    )
    assert [e.data for e in leader.entries(first, leader.last_index)] == [b"a", b"b", b"c"]
    h.pump()
    for entry in leader.entries(first, leader.commit_index):
        requests.on_applied(entry, None)
    assert [(name, o.ok) for name, o in outcomes] == [("a", True), ("b", True), ("c", True)]


def test_released_writes_are_refused_together_without_a_quorum() -> None:
    h = CoreHarness(["n1", "n2", "n3"], RaftConfig(election_ticks=10, heartbeat_ticks=2, check_quorum=False))
    leader = h.elect("n1")
    h.pump()
    leadership = Leadership(now=0.0)
    leadership.observe(leader, now=0.0)
    h.blocked = {"n2", "n3"}
    for _ in range(3 * CONFIG.election_ticks):
        leader.tick()  # nobody heard from for longer than an election timeout
        leadership.on_tick(leader, 0.0)
    assert leader.role == LEADER
    requests = _request_path(h, leader, leadership)
    outcomes: list[Outcome] = []
    last = leader.last_index
    requests.propose_all([(b"a", outcomes.append, 9.0), (b"b", outcomes.append, 9.0)])
    assert leader.last_index == last
    assert [o.code for o in outcomes] == [ErrorCode.NO_QUORUM, ErrorCode.NO_QUORUM]
