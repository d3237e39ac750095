"""The leader-side parts around a real RaftCore (tests/raft/core_harness.py): leadership
bookkeeping (orion/cluster/leadership.py), quorum contact (quorum_contact.py), the shutdown
hand-over (shutdown_handover.py), bootstrap grace (bootstrap.py) and which node changes
rewrite a node's record (node_records.py)."""

from __future__ import annotations

import random

import msgspec
import pytest

from orion.api.protocol import ErrorCode
from orion.cluster.bootstrap import BootstrapGrace
from orion.cluster.forwarding import ForwardAnswer, decode_forward
from orion.cluster.leadership import Leadership
from orion.cluster.node_records import capacity_changed
from orion.cluster.outcome import Outcome
from orion.cluster.quorum_contact import QuorumContact
from orion.cluster.request_path import RequestPath
from orion.cluster.shutdown_handover import ShutdownHandover
from orion.model import NodeMeta
from orion.raft.core import RaftConfig, RaftCore
from orion.raft.types import HardState, RaftRole, StoredState
from tests.raft.core_harness import CoreHarness

CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2)


def _led_by_n1() -> tuple[CoreHarness, RaftCore, Leadership]:
    h = CoreHarness(["n1", "n2", "n3"], CONFIG)
    leader = h.elect("n1")
    h.pump()
    leadership = Leadership(now=0.0)
    assert leadership.observe(leader, now=1.0)
    return h, leader, leadership


def test_leadership_notes_changes_since_when_it_leads_and_when_it_heard_the_leader() -> None:
    h, leader, leadership = _led_by_n1()
    assert (leadership.is_leader, leadership.leader_id, leadership.leading_since) == (True, "n1", 1.0)
    assert not leadership.observe(leader, now=2.0)  # nothing changed
    assert leadership.trusted_since(0.5) == 1.0 and leadership.trusted_since(3.0) == 3.0
    leadership.on_tick(leader, now=4.0)
    assert leadership.ticks_leading == 1 and leadership.last_heard(leader, now=9.0) == 9.0
    follower = h.core("n2")
    seen = Leadership(now=0.0)
    seen.observe(follower, now=1.0)
    assert (seen.is_leader, seen.leader_id) == (False, "n1")
    seen.on_send(follower, "n3", now=2.0)  # not its leader: no news of it
    assert seen.last_heard(follower, now=5.0) == 0.0
    seen.on_send(follower, "n1", now=3.0)  # answering its leader
    assert seen.last_heard(follower, now=5.0) == 3.0


def test_quorum_contact_counts_voters_heard_within_an_election_timeout() -> None:
    # Without CheckQuorum the cut-off leader stays leader, so what it counts can be read.
    h = CoreHarness(["n1", "n2", "n3"], RaftConfig(election_ticks=10, heartbeat_ticks=2, check_quorum=False))
    leader = h.elect("n1")
    h.pump()
    leadership = Leadership(now=0.0)
    leadership.observe(leader, now=0.0)
    quorum = QuorumContact(leader, leadership, election_ticks=10)
    assert quorum.reachable_voters() == ["n1", "n2", "n3"] and quorum.has_quorum()
    h.blocked = {"n3"}
    for _ in range(11):
        h.tick(only="n1")
        leadership.on_tick(leader, now=0.0)
    assert quorum.reachable_voters() == ["n1", "n2"] and quorum.has_quorum()
    assert quorum.timeout_message("write") == "write timed out; outcome unknown (leader n1)"
    h.blocked = {"n2", "n3"}
    for _ in range(11):
        h.tick(only="n1")
        leadership.on_tick(leader, now=0.0)
    assert leader.role == RaftRole.LEADER and quorum.reachable_voters() == ["n1"] and not quorum.has_quorum()
    assert quorum.no_quorum_message() == "the cluster cannot commit writes (2 of 3 voters unreachable)"
    assert quorum.timeout_message("read").endswith("; the read may or may not be applied later")


def test_a_new_leader_counts_voters_it_has_not_heard_yet_for_one_election_timeout() -> None:
    h = CoreHarness(["n1", "n2", "n3"], RaftConfig(election_ticks=10, heartbeat_ticks=2, check_quorum=False))
    h.blocked = {"n3"}
    leader = h.elect("n1")  # n2's vote elects it; n3 is never heard in this term
    leadership = Leadership(now=0.0)
    leadership.observe(leader, now=0.0)
    quorum = QuorumContact(leader, leadership, election_ticks=10)
    h.blocked = {"n2", "n3"}
    assert leader.last_contact_ticks("n3") is None
    assert "n3" in quorum.reachable_voters()
    for _ in range(11):
        leadership.on_tick(leader, now=0.0)
    assert "n3" not in quorum.reachable_voters()


def _request_path(leader: RaftCore, leadership: Leadership, sent: list[tuple[str, object]]) -> RequestPath:
    return RequestPath(
        leader,
        leadership,
        node_id=leader.id,
        origin="n1:7000",
        request_timeout=5.0,
        election_ticks=10,
        send=lambda address, payload: sent.append((address, decode_forward(payload))),
        run=lambda query: Outcome.success(None),
    )


def _tick_leader(
    h: CoreHarness, leader: RaftCore, leadership: Leadership, requests: RequestPath, n: int
) -> None:
    for _ in range(n):
        h.tick(only=leader.id)
        leadership.on_tick(leader, now=0.0)
        requests.step_held_writes()


def _cut_off_leader() -> tuple[CoreHarness, RaftCore, Leadership, RequestPath]:
    """n1 leads (CheckQuorum off, so it stays leader) and has heard neither follower for
    more than an election timeout."""
    h = CoreHarness(["n1", "n2", "n3"], RaftConfig(election_ticks=10, heartbeat_ticks=2, check_quorum=False))
    leader = h.elect("n1")
    leadership = Leadership(now=0.0)
    leadership.observe(leader, now=0.0)
    requests = _request_path(leader, leadership, [])
    h.blocked = {"n2", "n3"}
    _tick_leader(h, leader, leadership, requests, 11)
    return h, leader, leadership, requests


def test_a_leader_out_of_contact_holds_a_write_until_a_quorum_answers_then_appends_it() -> None:
    # A follower that was only slow (a loaded machine while the third voter restarts): the
    # write waits for its answer instead of failing with no_quorum.
    h, leader, leadership, requests = _cut_off_leader()
    outcomes: list[Outcome] = []
    assert not requests.quorum.has_quorum()
    last = leader.last_index
    requests.propose_here(b"first", outcomes.append, deadline=60.0)
    requests.propose_here(b"second", outcomes.append, deadline=60.0)
    assert leader.last_index == last and outcomes == [] and requests.waiting  # held, not appended
    h.blocked = {"n3"}
    _tick_leader(h, leader, leadership, requests, 2)  # a heartbeat, and n2's answer
    assert requests.quorum.has_quorum() and not requests.held
    assert [e.data for e in leader.entries(last + 1, last + 2)] == [b"first", b"second"]  # in order


def test_a_held_write_is_refused_with_no_quorum_after_an_election_timeout_unappended() -> None:
    h, leader, leadership, requests = _cut_off_leader()
    outcomes: list[Outcome] = []
    last = leader.last_index
    requests.propose_here(b"lost", outcomes.append, deadline=60.0)
    _tick_leader(h, leader, leadership, requests, 9)
    assert outcomes == []
    _tick_leader(h, leader, leadership, requests, 1)
    assert outcomes == [
        Outcome.failure(ErrorCode.NO_QUORUM, "the cluster cannot commit writes (2 of 3 voters unreachable)")
    ]
    assert leader.last_index == last and not requests.waiting
    requests.propose_here(b"late", outcomes.append, deadline=1.0)
    requests.expire(1.0)  # its own deadline comes first: refused the same way, still unappended
    assert outcomes[-1].code == ErrorCode.NO_QUORUM and leader.last_index == last


def test_a_held_write_goes_to_the_next_leader_when_its_leader_steps_down() -> None:
    h = CoreHarness(["n1", "n2", "n3"], RaftConfig(election_ticks=10, heartbeat_ticks=2))  # CheckQuorum on
    leader = h.elect("n1")
    leadership = Leadership(now=0.0)
    leadership.observe(leader, now=0.0)
    outcomes: list[Outcome] = []
    sent: list[tuple[str, object]] = []
    requests = _request_path(leader, leadership, sent)
    h.blocked = {"n2", "n3"}
    _tick_leader(h, leader, leadership, requests, 11)
    assert leader.role == RaftRole.LEADER
    requests.propose_here(b"moved", outcomes.append, deadline=60.0)
    requests.propose_here(b"from-n2", None, deadline=60.0, forward_to=("n2:7000", 7))
    _tick_leader(h, leader, leadership, requests, 10)  # CheckQuorum: n1 steps down
    assert leader.role != RaftRole.LEADER and outcomes == [] and not requests.held
    assert requests.forwarder.has_parked  # no leader known yet: the local write waits for one
    answers = [(address, frame) for address, frame in sent if isinstance(frame, ForwardAnswer)]
    assert [(address, frame.req_id, frame.code) for address, frame in answers] == [
        ("n2:7000", 7, ErrorCode.NOT_LEADER)
    ]  # a forwarded one goes back to its follower, which asks the next leader


def test_shutdown_hands_leadership_over_then_reports_done() -> None:
    h, leader, _ = _led_by_n1()
    done: list[bool] = []
    handover = ShutdownHandover(leader, wait=3.0)
    handover.begin(lambda: done.append(True), now=0.0)
    assert handover.pending and not done  # still leading: waits for the successor
    h.pump()
    assert leader.role != RaftRole.LEADER
    handover.step(now=0.1)
    assert done == [True] and not handover.pending
    successor = h.core("n2") if h.core("n2").role == RaftRole.LEADER else h.core("n3")
    assert successor.role == RaftRole.LEADER


def test_shutdown_gives_up_waiting_after_its_wait_and_a_follower_is_done_at_once() -> None:
    h, leader, _ = _led_by_n1()
    h.blocked = {"n2", "n3"}  # the TimeoutNow is lost
    done: list[float] = []
    handover = ShutdownHandover(leader, wait=3.0)
    handover.begin(lambda: done.append(1.0), now=0.0)
    handover.step(now=2.9)
    assert done == []
    handover.step(now=3.0)
    assert done == [1.0]
    follower = ShutdownHandover(h.core("n2"))
    follower.begin(lambda: done.append(2.0), now=0.0)
    assert done == [1.0, 2.0]


def _empty(node_id: str) -> RaftCore:
    return RaftCore(node_id, StoredState(HardState(), None, []), CONFIG, random.Random(1))


def test_bootstrap_waits_out_its_grace_then_founds_a_cluster() -> None:
    core = _empty("a")
    grace = BootstrapGrace(core, dict, node_id="a", raft_address="127.0.0.1:7100", incarnation="a1")
    grace.start(now=0.0, grace=3.0)
    grace.step(now=2.9)
    assert core.term == 0
    grace.step(now=3.0)
    assert core.membership.voters == {"a": "127.0.0.1:7100"} and core.membership.incarnations == {"a": "a1"}
    assert len(core.membership.cluster_id) == 32


def test_bootstrap_never_founds_a_cluster_once_one_was_heard_of() -> None:
    core = _empty("a")
    heard: dict[str, str] = {}
    grace = BootstrapGrace(core, lambda: heard, node_id="a", raft_address="x:1", incarnation="a1")
    grace.start(now=0.0, grace=3.0)
    heard["c0ffee"] = "n2"
    grace.step(now=1.0)
    heard.clear()
    grace.step(now=10.0)  # given up for good, even if nobody is heard any more
    assert core.term == 0 and core.last_index == 0


@pytest.mark.parametrize(
    ("field", "value", "rewrite"),
    [
        ("memory_total", 1, True),
        ("tags", {"zone": "b"}, True),
        ("raft_port", 7101, True),
        ("raft_incarnation", "b2", True),
        ("port_space", "host-1", True),
        ("memory_used", 5, False),
        ("version", 9, False),
        ("cluster_id", "c0ffee", False),
    ],
)
def test_which_meta_changes_rewrite_a_nodes_record(field: str, value: object, rewrite: bool) -> None:
    old = NodeMeta(id="b")
    assert capacity_changed(old, msgspec.structs.replace(old, **{field: value})) is rewrite


def _follower_n2_forwarding_a_write() -> tuple[CoreHarness, RaftCore, RequestPath, list[Outcome]]:
    """n1 leads; n2 forwards a write to it and waits for the answer."""
    h = CoreHarness(["n1", "n2", "n3"], CONFIG)
    h.elect("n1")
    h.pump()
    follower = h.core("n2")
    leadership = Leadership(now=0.0)
    leadership.observe(follower, now=0.0)
    sent: list[tuple[str, object]] = []
    requests = RequestPath(
        follower,
        leadership,
        node_id="n2",
        origin="n2:7000",
        request_timeout=5.0,
        election_ticks=10,
        send=lambda address, payload: sent.append((address, decode_forward(payload))),
        run=lambda query: Outcome.success(None),
    )
    outcomes: list[Outcome] = []
    requests.propose(b"forwarded", outcomes.append, deadline=60.0)
    assert [address for address, _ in sent] == ["core:n1"] and requests.waiting
    return h, follower, requests, outcomes


def test_a_precandidate_keeps_the_writes_it_forwarded_for_its_leader() -> None:
    # n2 stops hearing n1 for an election timeout (a stall of its own) while n1 still leads:
    # PreVote fails, and the write n1 may be committing is not answered "outcome unknown".
    h, follower, requests, outcomes = _follower_n2_forwarding_a_write()
    term = follower.term
    h.blocked = {"n2"}
    for _ in range(3 * CONFIG.election_ticks):
        h.tick(only="n2")
        if follower.role == RaftRole.PRECANDIDATE:
            break
    assert follower.role == RaftRole.PRECANDIDATE and follower.term == term
    requests.on_leadership_changed()
    assert outcomes == [] and requests.waiting
    h.blocked = set()
    h.tick(CONFIG.heartbeat_ticks, only="n1")  # n1's heartbeat: n2 follows it again, same term
    assert follower.role == RaftRole.FOLLOWER and follower.leader_id == "n1" and follower.term == term
    requests.on_leadership_changed()
    assert outcomes == [] and requests.waiting


def test_a_candidate_answers_the_writes_it_forwarded_outcome_unknown() -> None:
    # n1 is gone and the pre-vote is won (by n2 or n3): the term moves on, and n1's answer is
    # not coming.
    h, follower, requests, outcomes = _follower_n2_forwarding_a_write()
    term = follower.term
    h.blocked = {"n1"}
    for _ in range(6 * CONFIG.election_ticks):
        h.tick(only="n2")
        h.tick(only="n3")
        if follower.term > term and follower.role != RaftRole.PRECANDIDATE:
            break
    assert follower.term > term and follower.leader_id != "n1"
    requests.on_leadership_changed()
    assert len(outcomes) == 1 and outcomes[0].code == ErrorCode.TIMEOUT
    assert "outcome unknown: the leader changed" in str(outcomes[0].message)
