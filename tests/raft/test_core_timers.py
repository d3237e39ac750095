"""The core's clocks and their edges, tick by tick: heartbeats, CheckQuorum, the leader lease on
votes, the snapshot resend, stale-term answers and who may make a node campaign at once."""

from __future__ import annotations

from core_harness import CoreHarness

from orion.raft.core import CANDIDATE, FOLLOWER, LEADER, PRECANDIDATE, RaftConfig
from orion.raft.messages import (
    AppendEntries,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    RequestVote,
    TimeoutNow,
    VoteResponse,
)
from orion.raft.types import HardState

ELECTION = 10
HEARTBEAT = 2
CONFIG = RaftConfig(election_ticks=ELECTION, heartbeat_ticks=HEARTBEAT)
IDS = ["n1", "n2", "n3"]


def _cluster(config: RaftConfig = CONFIG, seed: int = 1) -> tuple[CoreHarness, object]:
    h = CoreHarness(IDS, config, seed=seed)
    leader = h.elect("n1")
    h.pump()
    return h, leader


def test_a_leader_heartbeats_every_heartbeat_ticks() -> None:
    h, _ = _cluster()
    before = len(h.sent)
    h.tick(10 * HEARTBEAT, only="n1")
    beats = [m for m in h.sent[before:] if isinstance(m, Heartbeat) and m.dst == "n2"]
    assert len(beats) == 10


def test_check_quorum_steps_down_at_the_second_election_timeout_without_answers() -> None:
    """Answers to its first appends count for the first timeout; with none after, the leader
    steps down exactly when the second one ends."""
    h, leader = _cluster()
    h.blocked.update({"n2", "n3"})
    h.tick(2 * ELECTION - 1, only="n1")
    assert leader.role == LEADER
    h.tick(1, only="n1")
    assert leader.role == FOLLOWER and leader.leader_id == ""


def test_a_leader_that_keeps_a_quorum_stays() -> None:
    h, leader = _cluster()
    h.blocked.add("n3")
    h.tick(5 * ELECTION, only="n1")
    assert leader.role == LEADER


def test_a_lost_snapshot_is_sent_again_after_twice_the_election_timeout() -> None:
    h = CoreHarness(IDS, RaftConfig(election_ticks=ELECTION, heartbeat_ticks=HEARTBEAT, trailing_entries=0))
    leader = h.elect("n1")
    h.pump()
    h.blocked.add("n3")
    index = leader.propose_batch([b"x%d" % i for i in range(5)])[-1]
    h.pump()
    leader.compact(index, b"state")
    h.blocked.discard("n3")
    h.drop = lambda m: isinstance(m, InstallSnapshot)  # the snapshot is lost
    h.tick(HEARTBEAT, only="n1")  # n3 answers a heartbeat: the leader finds it needs a snapshot
    assert len(h.snapshots_to("n3")) == 1
    h.blocked.add("n3")  # and every answer from now on
    h.inbox.clear()
    sent = len(h.sent)
    ticks = 0
    while ticks < 10 * ELECTION and not any(
        isinstance(m, AppendEntries | InstallSnapshot) and m.dst == "n3" for m in h.sent[sent:]
    ):
        h.tick(1, only="n1")
        ticks += 1
    # Then it probes again, as after any lost answer (a snapshot follows if still needed).
    assert 2 * ELECTION < ticks <= 2 * ELECTION + HEARTBEAT, f"tried again after {ticks} ticks"


def _follower_at_the_end_of_its_lease(seed: int) -> tuple[CoreHarness, object]:
    """n2 heard its leader, then ELECTION ticks of silence, and it has not campaigned yet."""
    h, _ = _cluster(seed=seed)
    follower = h.core("n2")
    h.blocked.add("n1")
    h.tick(ELECTION - 1, only="n2")
    return h, follower


def test_a_vote_request_inside_the_leader_lease_is_ignored_and_one_at_its_end_is_heard() -> None:
    for seed in range(1, 50):
        h, follower = _follower_at_the_end_of_its_lease(seed)
        term = follower.term
        before = len(h.sent)
        follower.step(RequestVote("n3", "n2", term + 1, 100, term, False, False))
        h.pump()
        assert follower.term == term and not any(m.src == "n2" for m in h.sent[before:])
        h.tick(1, only="n2")
        if follower.role != FOLLOWER or follower.leader_id != "n1":
            continue  # this seed's timeout ended the lease by campaigning: try another
        follower.step(RequestVote("n3", "n2", term + 1, 100, term, False, False))
        h.pump()
        assert follower.term == term + 1 and follower.vote == "n3"
        return
    raise AssertionError("no seed kept n2 a follower for a whole election timeout")


def test_a_transfer_vote_request_goes_through_the_lease() -> None:
    h, follower = _follower_at_the_end_of_its_lease(seed=1)
    term = follower.term
    follower.step(RequestVote("n3", "n2", term + 1, 100, term, False, True))
    h.pump()
    assert follower.term == term + 1 and follower.vote == "n3"


def test_stale_requests_are_answered_with_the_newer_term() -> None:
    h, _ = _cluster()
    follower = h.core("n2")
    term = follower.term
    before = len(h.sent)
    follower.step(RequestVote("n3", "n2", term - 1, 100, term, True, False))  # a stale pre-vote
    follower.step(RequestVote("n3", "n2", term - 1, 100, term, False, False))  # a stale vote: dropped
    follower.step(AppendEntries("n3", "n2", term - 1, 0, 0, [], 0))
    h.pump()
    answers = [m for m in h.sent[before:] if m.src == "n2"]
    assert answers == [
        VoteResponse("n2", "n3", term, False, True),
        HeartbeatResponse("n2", "n3", term),
    ]
    assert follower.term == term and follower.leader_id == "n1"


def test_only_the_leader_can_make_a_voter_campaign_at_once() -> None:
    h, leader = _cluster()
    follower = h.core("n2")
    term = follower.term
    follower.step(TimeoutNow("n3", "n2", term))  # not from its leader
    assert follower.role == FOLLOWER and follower.term == term
    leader.step(TimeoutNow("n2", "n1", term))  # a leader never campaigns
    assert leader.role == LEADER and leader.term == term
    h.add_empty("n4")
    leader.add_non_voter("n4", "core:n4")
    h.pump()
    learner = h.core("n4")
    assert learner.leader_id == "n1"
    learner.step(TimeoutNow("n1", "n4", term))  # a non-voter never campaigns
    assert learner.role == FOLLOWER and learner.term == term
    follower.step(TimeoutNow("n1", "n2", term))
    assert follower.role in (CANDIDATE, LEADER) and follower.term == term + 1


def test_a_voter_whose_removal_is_not_committed_may_still_campaign() -> None:
    """n1 appends n3's removal and reaches only n3 with it, then dies: n3 may hold the only
    up-to-date log and must be able to campaign (votes count in its latest configuration)."""
    h, leader = _cluster(RaftConfig(election_ticks=ELECTION, heartbeat_ticks=HEARTBEAT, check_quorum=False))
    h.blocked.add("n2")
    leader.remove("n3")
    h.pump()
    removed = h.core("n3")
    assert "n3" not in removed.membership.voters
    assert removed.commit_index < removed.last_index
    h.blocked.update({"n1", "n2"})
    h.tick(3 * ELECTION, only="n3")
    assert removed.role in (PRECANDIDATE, CANDIDATE)


def test_a_voter_whose_removal_is_committed_never_campaigns() -> None:
    h, leader = _cluster()
    leader.remove("n3")
    h.pump()
    # n3 restarts knowing its removal committed (here: its store says so).
    stored = h.stores["n3"].load()
    last = stored.entries[-1].index
    stored.hard_state = HardState(stored.hard_state.term, stored.hard_state.vote, last)
    removed = h.start("n3", stored)
    assert removed.commit_index == last and "n3" not in removed.membership.voters
    h.blocked.update({"n1", "n2"})
    term = removed.term
    h.tick(5 * ELECTION, only="n3")
    assert removed.role == FOLLOWER and removed.term == term
    assert not any(isinstance(m, RequestVote) and m.src == "n3" for m in h.sent)


def test_a_single_voter_leads_at_its_first_tick_and_stays_in_its_term() -> None:
    h = CoreHarness(["n1"], CONFIG)
    core = h.core("n1")
    h.tick(1)
    assert core.role == LEADER
    term = core.term
    h.tick(5 * ELECTION)
    assert core.role == LEADER and core.term == term


def test_a_voter_whose_promotion_is_not_committed_may_already_campaign() -> None:
    """The latest configuration decides: n4's promotion reached only n4 when the leader died;
    n4 must count itself a voter (and the others follow the configuration they hold)."""
    h, leader = _cluster(RaftConfig(election_ticks=ELECTION, heartbeat_ticks=HEARTBEAT, check_quorum=False))
    h.add_empty("n4")
    leader.add_non_voter("n4", "core:n4")
    h.pump()
    h.blocked.update({"n2", "n3"})
    leader.promote("n4")
    h.pump()
    promoted = h.core("n4")
    assert "n4" in promoted.membership.voters and promoted.commit_index < promoted.last_index
    h.blocked = {"n1", "n2", "n3"}
    h.tick(3 * ELECTION, only="n4")
    assert promoted.role in (PRECANDIDATE, CANDIDATE)


def test_a_follower_campaigns_within_one_to_two_election_timeouts_of_silence() -> None:
    """The randomized timeout is in [ELECTION, 2 * ELECTION): over many seeds both ends are met."""
    waits = []
    for seed in range(1, 80):
        h, _ = _cluster(seed=seed)
        follower = h.core("n2")
        h.blocked.add("n1")
        ticks = 0
        while follower.role == FOLLOWER and ticks < 3 * ELECTION:
            h.tick(1, only="n2")
            ticks += 1
        waits.append(ticks)
    assert min(waits) == ELECTION and max(waits) == 2 * ELECTION - 1, sorted(set(waits))


def test_a_freshly_started_node_also_waits_one_to_two_election_timeouts() -> None:
    firsts = []
    for seed in range(1, 80):
        h = CoreHarness(IDS, CONFIG, seed=seed)
        h.blocked.update(IDS)
        core = h.core("n2")
        ticks = 0
        while core.role == FOLLOWER and ticks < 3 * ELECTION:
            h.tick(1, only="n2")
            ticks += 1
        firsts.append(ticks)
    assert min(firsts) == ELECTION and max(firsts) == 2 * ELECTION - 1, sorted(set(firsts))


def test_a_newer_term_in_an_answer_leaves_the_leader_unknown() -> None:
    """A deposed leader learns the newer term from a follower's answer: that follower is not the
    new leader, so the old one must not name it (NotLeaderError would send clients there)."""
    h, leader = _cluster()
    term = leader.term
    h.pump()
    leader.step(HeartbeatResponse("n3", "n1", term + 1))
    assert (leader.role, leader.term, leader.leader_id) == (FOLLOWER, term + 1, "")
    assert leader.has_ready(), "the newer term must be persisted even with nothing to send"
    ready = leader.ready()
    assert ready.hard_state is not None and ready.hard_state.term == term + 1 and not ready.messages
    leader.advance(ready)
    follower = h.core("n2")
    follower.step(AppendEntries("n3", "n2", term + 2, 0, 0, [], 0))  # a request from the new leader
    assert (follower.term, follower.leader_id) == (term + 2, "n3")


def test_a_newer_term_from_a_refused_candidate_restarts_the_election_timer() -> None:
    """A follower that moves to a newer term (refusing a candidate whose log is behind) waits a
    whole randomized timeout from then, not from its last heartbeat."""
    waits = []
    config = RaftConfig(election_ticks=ELECTION, heartbeat_ticks=HEARTBEAT, check_quorum=False)
    for seed in range(1, 60):
        h, _ = _cluster(config, seed=seed)
        follower = h.core("n2")
        h.blocked.update({"n1", "n3"})
        h.tick(ELECTION - 1, only="n2")
        if follower.role != FOLLOWER:
            continue
        follower.step(RequestVote("n3", "n2", follower.term + 1, 0, 0, False, False))  # log behind
        assert follower.vote == ""
        ticks = 0
        while follower.role == FOLLOWER and ticks < 3 * ELECTION:
            h.tick(1, only="n2")
            ticks += 1
        waits.append(ticks)
    assert waits and min(waits) == ELECTION, sorted(set(waits))


def test_a_node_cut_off_from_the_leader_only_cannot_depose_it() -> None:
    """n3 loses its link to n1 but not to n2, and nothing is written: n3's log stays as good as
    anyone's. PreVote with CheckQuorum: n2 still hears its leader, so it ignores n3's pre-votes
    (only a transfer's vote passes the lease) and n1 keeps leading in its term."""
    h, leader = _cluster()
    term = leader.term
    h.drop = lambda m: {m.src, m.dst} == {"n1", "n3"}
    h.tick(10 * ELECTION)
    assert leader.role == LEADER and leader.term == term
    assert h.core("n2").term == term and h.core("n2").leader_id == "n1"
    assert any(isinstance(m, RequestVote) and m.src == "n3" for m in h.sent), "n3 never tried"


def test_a_campaign_forgets_the_leader_and_asks_for_the_next_term() -> None:
    h, _ = _cluster()
    follower = h.core("n2")
    term = follower.term
    h.blocked.add("n1")
    sent = len(h.sent)
    while follower.role == FOLLOWER:
        h.tick(1, only="n2")
    assert follower.role == PRECANDIDATE and follower.leader_id == "" and follower.term == term
    asks = [m for m in h.sent[sent:] if isinstance(m, RequestVote) and m.src == "n2"]
    assert {(m.term, m.pre_vote, m.transfer) for m in asks} == {(term + 1, True, False)}


def test_a_candidate_without_votes_retries_after_one_to_two_election_timeouts() -> None:
    waits = []
    config = RaftConfig(election_ticks=ELECTION, heartbeat_ticks=HEARTBEAT, pre_vote=False)
    for seed in range(1, 60):
        h, _ = _cluster(config, seed=seed)
        candidate = h.core("n2")
        h.blocked.update({"n1", "n3"})
        while candidate.role != CANDIDATE:
            h.tick(1, only="n2")
        term = candidate.term
        ticks = 0
        while candidate.term == term and ticks < 3 * ELECTION:
            h.tick(1, only="n2")
            ticks += 1
        waits.append(ticks)
    assert min(waits) == ELECTION and max(waits) == 2 * ELECTION - 1, sorted(set(waits))


def test_a_new_leader_starts_its_clocks_at_zero() -> None:
    """Its CheckQuorum period and its heartbeat phase start when it wins, whatever its clocks
    said while it campaigned or when it last led."""
    h, leader = _cluster(RaftConfig(election_ticks=ELECTION, heartbeat_ticks=HEARTBEAT, pre_vote=False))
    h.blocked.add("n1")
    h.tick(2 * ELECTION)  # n1 steps down (CheckQuorum) half-way through a heartbeat period
    assert leader.role == FOLLOWER
    h.blocked.clear()
    new = next(core for core in h.cores.values() if core.role == LEADER)
    h.tick(HEARTBEAT, only=new.id)  # n1 hears the new leader and catches up
    assert new.match_index("n1") == new.last_index
    new.transfer_leadership("n1")
    h.hold = lambda m: isinstance(m, VoteResponse)
    h.pump()
    assert leader.role == CANDIDATE
    h.tick(3, only="n1")  # the votes arrive three ticks into the campaign
    h.hold = lambda _m: False
    h.release()
    assert leader.role == LEADER
    sent = len(h.sent)
    h.tick(1, only="n1")
    assert not any(isinstance(m, Heartbeat) for m in h.sent[sent:]), "heartbeat phase carried over"
    h.tick(1, only="n1")
    assert any(isinstance(m, Heartbeat) for m in h.sent[sent:])
    h.blocked.update({"n2", "n3"})
    h.tick(2 * ELECTION - 3, only="n1")
    assert leader.role == LEADER, "CheckQuorum period carried over from the campaign"
    h.tick(1, only="n1")
    assert leader.role == FOLLOWER
