"""Which heartbeats a leader asks to be answered (``Heartbeat.ack``): an idle, caught-up follower
heard from within half an election timeout is not asked, which saves two thirds of the answers
(each a round of thread wakeups on both nodes) without loosening CheckQuorum, ReadIndex or the
leader's count of reachable voters."""

from __future__ import annotations

from core_harness import CoreHarness

from orion.raft.core import LEADER, RaftConfig
from orion.raft.messages import AppendEntries, Heartbeat, HeartbeatResponse

ELECTION = 10
HEARTBEAT = 2
CONFIG = RaftConfig(election_ticks=ELECTION, heartbeat_ticks=HEARTBEAT)
IDS = ["n1", "n2", "n3"]


def _cluster() -> CoreHarness:
    h = CoreHarness(IDS, CONFIG, seed=1)
    h.elect("n1")
    h.pump()
    h.tick(2 * ELECTION, only="n1")  # past the first rounds after the election
    return h


def _beats(h: CoreHarness, since: int, dst: str) -> list[Heartbeat]:
    return [m for m in h.sent[since:] if isinstance(m, Heartbeat) and m.dst == dst]


def _answers(h: CoreHarness, since: int, src: str) -> list[HeartbeatResponse]:
    return [m for m in h.sent[since:] if isinstance(m, HeartbeatResponse) and m.src == src]


def test_an_idle_follower_answers_about_one_heartbeat_in_three_and_every_one_it_is_asked() -> None:
    h = _cluster()
    before = len(h.sent)
    h.tick(30 * HEARTBEAT, only="n1")
    beats = _beats(h, before, "n2")
    asked = [b for b in beats if b.ack]
    assert len(beats) == 30
    assert 30 // 4 <= len(asked) <= 30 // 2, [b.ack for b in beats]
    assert len(_answers(h, before, "n2")) == len(asked)
    leader = h.core("n1")
    contact = leader.last_contact_ticks("n2")
    assert contact is not None and contact <= ELECTION // 2 + HEARTBEAT


def test_a_leader_keeps_its_quorum_when_most_answers_are_lost() -> None:
    """Three answers in four lost: the heartbeats keep asking until one arrives in every round."""
    h = _cluster()
    lost = iter(range(1_000_000))
    h.drop = lambda m: isinstance(m, HeartbeatResponse) and next(lost) % 4 != 0
    h.tick(10 * ELECTION, only="n1")
    assert h.core("n1").role == LEADER


def test_a_leader_with_no_answers_steps_down_as_before() -> None:
    h = _cluster()
    h.drop = lambda m: isinstance(m, HeartbeatResponse)
    h.tick(2 * ELECTION, only="n1")
    assert h.core("n1").role != LEADER


def test_a_read_asks_every_follower_to_answer() -> None:
    h = _cluster()
    leader = h.core("n1")
    before = len(h.sent)
    leader.read_index(b"r1")
    h.pump()
    beats = _beats(h, before, "n2") + _beats(h, before, "n3")
    assert beats and all(b.read_seq > 0 for b in beats)
    assert len(_answers(h, before, "n2")) >= 1 and len(_answers(h, before, "n3")) >= 1


def test_a_follower_behind_is_asked_on_every_heartbeat() -> None:
    """Its answer is what makes the leader send the lost append again."""
    h = _cluster()
    h.drop = lambda m: isinstance(m, AppendEntries) and m.dst == "n3"
    h.core("n1").propose(b"x")
    h.pump()
    before = len(h.sent)
    h.tick(5 * HEARTBEAT, only="n1")
    beats = _beats(h, before, "n3")
    assert beats and all(b.ack for b in beats)
