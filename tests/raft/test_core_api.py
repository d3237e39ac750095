"""The core's API contracts: bootstrap, accessors, membership calls and leadership transfer,
including every refusal and what it says. (Written against the mutants tools/mutation found
alive: each test pins a behaviour a one-line change would break.)"""

from __future__ import annotations

import random

import pytest
from core_harness import CoreHarness

from orion.raft.core import FOLLOWER, LEADER, ConfigChangeInProgress, NotLeaderError, RaftConfig, RaftCore
from orion.raft.messages import AppendEntries, TimeoutNow
from orion.raft.types import Entry, EntryKind, HardState, Membership, StoredState, encode_membership

CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2)
IDS = ["n1", "n2", "n3"]
SOLO = Membership(voters={"a": "core:a"})


def _empty(node_id: str = "a", stored: StoredState | None = None) -> RaftCore:
    stored = stored or StoredState(HardState(), None, [])
    return RaftCore(node_id, stored, CONFIG, random.Random(1))


def _cluster() -> tuple[CoreHarness, RaftCore]:
    h = CoreHarness(IDS, CONFIG)
    leader = h.elect("n1")
    h.pump()
    return h, leader


# ---------------------------------------------------------------------------- bootstrap
def test_bootstrap_makes_entry_1_of_term_1_committed() -> None:
    core = _empty()
    core.bootstrap(SOLO)
    assert (core.term, core.last_index, core.entry_term(1), core.commit_index) == (1, 1, 1, 1)
    assert core.membership == SOLO


def test_bootstrap_refuses_a_node_that_holds_anything_or_heard_a_term() -> None:
    entry = Entry(1, 1, EntryKind.CONFIG, encode_membership(SOLO))
    with_log = _empty(stored=StoredState(HardState(), None, [entry]))
    with pytest.raises(ValueError, match="bootstrap: a is not empty"):
        with_log.bootstrap(SOLO)
    with_term = _empty(stored=StoredState(HardState(term=3), None, []))
    with pytest.raises(ValueError, match="term 3"):
        with_term.bootstrap(SOLO)
    done = _empty()
    done.bootstrap(SOLO)
    with pytest.raises(ValueError, match="not empty"):
        done.bootstrap(SOLO)


def test_bootstrap_membership_must_list_the_node_as_a_voter() -> None:
    with pytest.raises(ValueError, match="must list a as a voter"):
        _empty().bootstrap(Membership(voters={"b": "core:b"}, non_voters={"a": "core:a"}))


# ---------------------------------------------------------------------------- accessors
def test_accessors_on_a_leader_and_a_follower() -> None:
    h, leader = _cluster()
    follower = h.core("n2")
    assert follower.leader_id == "n1" and follower.role == FOLLOWER
    assert leader.leader_id == "n1"
    assert leader.snapshot is None
    leader.propose_batch([b"x%d" % i for i in range(10)])
    h.pump()
    last = leader.last_index
    assert [e.index for e in leader.entries(0, 10**9)] == list(range(1, last + 1))  # clipped
    assert [e.index for e in leader.entries(3, 5)] == [3, 4, 5]
    assert [e.index for e in leader.entries(4, 4)] == [4]
    assert leader.entries(5, 4) == []
    assert leader.entries(last + 1, last + 5) == []
    assert leader.match_index("n1") == leader.last_index
    assert leader.match_index("n2") == leader.last_index
    assert leader.match_index("nobody") == 0
    with pytest.raises(NotLeaderError) as refused:
        follower.match_index("n1")
    assert refused.value.leader_id == "n1"


def test_last_contact_counts_ticks_since_a_follower_last_answered() -> None:
    h, leader = _cluster()
    assert leader.last_contact_ticks("n1") == 0
    assert leader.last_contact_ticks("n2") == 0
    assert leader.last_contact_ticks("nobody") is None
    assert h.core("n2").last_contact_ticks("n1") is None
    assert h.core("n2").last_contact_ticks("n2") is None  # only a leader keeps contact times
    h.blocked.add("n2")
    h.tick(7, only="n1")
    assert leader.last_contact_ticks("n2") == 7
    assert leader.last_contact_ticks("n3") < CONFIG.heartbeat_ticks  # n3 answers every heartbeat


def test_last_contact_is_unknown_for_a_member_never_heard() -> None:
    h, leader = _cluster()
    h.add_empty("n4")
    h.blocked.add("n4")
    leader.add_non_voter("n4", "core:n4")
    h.pump()
    assert leader.last_contact_ticks("n4") is None


def test_snapshot_property_is_the_latest_compaction() -> None:
    h, leader = _cluster()
    index = leader.propose(b"x")
    h.pump()
    snap = leader.compact(index, b"state")
    assert leader.snapshot is snap and snap.meta.index == index


# ---------------------------------------------------------------------------- membership calls
def test_membership_calls_refuse_bad_targets_naming_them() -> None:
    h, leader = _cluster()
    with pytest.raises(ValueError, match="n2 is already a member"):
        leader.add_non_voter("n2", "core:n2")
    with pytest.raises(ValueError, match="n2 is not a non-voter"):
        leader.promote("n2")
    with pytest.raises(ValueError, match="n9 is not a member"):
        leader.remove("n9")
    with pytest.raises(ValueError, match="update_address: n9 is not a member"):
        leader.update_address("n9", "core:x")
    with pytest.raises(ValueError, match="empty address for n2"):
        leader.update_address("n2", "")
    with pytest.raises(ValueError, match="n2 already has address core:n2"):
        leader.update_address("n2", "core:n2")
    assert leader.membership == h.membership  # nothing was appended


def test_the_last_voter_cannot_be_removed_but_a_non_voter_can() -> None:
    h = CoreHarness(["n1"], CONFIG)
    leader = h.elect("n1")
    h.pump()
    h.add_empty("n2")
    leader.add_non_voter("n2", "core:n2", "abc")
    h.pump()
    assert leader.membership.non_voters == {"n2": "core:n2"}
    assert leader.membership.incarnations["n2"] == "abc"
    with pytest.raises(ValueError, match="cannot remove the last voter"):
        leader.remove("n1")
    leader.remove("n2")
    h.pump()
    assert leader.membership.non_voters == {} and "n2" not in leader.membership.incarnations
    assert leader.membership.voters == {"n1": "core:n1"}


def test_a_non_voter_can_be_readdressed_and_keeps_its_seat() -> None:
    h, leader = _cluster()
    h.add_empty("n4")
    leader.add_non_voter("n4", "core:n4")
    h.pump()
    leader.update_address("n4", "core:n4-moved")
    h.pump()
    assert leader.membership.non_voters == {"n4": "core:n4-moved"}
    assert set(leader.membership.voters) == set(IDS)


@pytest.mark.parametrize("call", ["promote", "remove", "update_address", "add_non_voter"])
def test_one_configuration_change_at_a_time(call: str) -> None:
    h, leader = _cluster()
    h.add_empty("n4")
    leader.add_non_voter("n4", "core:n4")
    h.pump()
    h.blocked.update({"n2", "n3"})  # nothing commits from here on
    leader.update_address("n2", "core:n2-moved")
    h.pump()
    arguments = {
        "promote": ("n4",),
        "remove": ("n3",),
        "update_address": ("n3", "core:n3-moved"),
        "add_non_voter": ("n5", "core:n5"),
    }[call]
    with pytest.raises(ConfigChangeInProgress, match="pending"):
        getattr(leader, call)(*arguments)


def test_membership_calls_need_the_leader() -> None:
    h, _ = _cluster()
    follower = h.core("n2")
    for call, arguments in [
        ("promote", ("n3",)),
        ("remove", ("n3",)),
        ("update_address", ("n3", "x")),
        ("add_non_voter", ("n9", "x")),
        ("propose", (b"x",)),
        ("read_index", (b"ctx",)),
        ("transfer_leadership", ()),
    ]:
        with pytest.raises(NotLeaderError) as refused:
            getattr(follower, call)(*arguments)
        assert refused.value.leader_id == "n1", call


# ---------------------------------------------------------------------------- leadership transfer
def test_transfer_refuses_non_voters_and_is_a_no_op_to_itself() -> None:
    h, leader = _cluster()
    h.add_empty("n4")
    leader.add_non_voter("n4", "core:n4")
    h.pump()
    with pytest.raises(ValueError, match="n4 is not a voter"):
        leader.transfer_leadership("n4")
    with pytest.raises(ValueError, match="n9 is not a voter"):
        leader.transfer_leadership("n9")
    before = len(h.sent)
    leader.transfer_leadership("n1")
    h.pump()
    assert leader.role == LEADER and leader.transferee == ""
    assert not any(isinstance(m, TimeoutNow) for m in h.sent[before:])


def test_transfer_needs_another_voter() -> None:
    h = CoreHarness(["n1"], CONFIG)
    leader = h.elect("n1")
    with pytest.raises(ValueError, match="no other voter"):
        leader.transfer_leadership()


def test_transfer_picks_the_most_caught_up_voter_and_refuses_proposals_meanwhile() -> None:
    h, leader = _cluster()
    h.blocked.add("n3")
    leader.propose(b"x")
    h.pump()
    h.hold = lambda m: isinstance(m, TimeoutNow)
    leader.transfer_leadership()
    h.pump()
    assert leader.transferee == "n2"
    assert [m.dst for m in h.held] == ["n2"]
    with pytest.raises(NotLeaderError) as refused:
        leader.propose(b"y")
    assert refused.value.leader_id == "n2"


def test_a_transfer_that_does_not_finish_is_abandoned_after_an_election_timeout() -> None:
    h, leader = _cluster()
    h.tick(5, only="n1")  # the transfer's own timer must start from zero, not from here
    h.blocked.add("n2")
    leader.propose(b"x")  # n2 is behind: the leader first catches it up
    h.pump()
    leader.transfer_leadership("n2")
    h.tick(CONFIG.election_ticks - 1, only="n1")
    assert leader.transferee == "n2"
    h.tick(1, only="n1")
    assert leader.transferee == "" and leader.role == LEADER
    leader.propose(b"y")  # accepted again


def test_step_ignores_messages_for_another_node_or_from_itself() -> None:
    h, _ = _cluster()
    follower = h.core("n2")
    term = follower.term
    follower.step(AppendEntries("n3", "n3", term + 5, 0, 0, [], 0))  # addressed to n3
    follower.step(AppendEntries("n2", "n2", term + 5, 0, 0, [], 0))  # from itself
    assert (follower.term, follower.leader_id) == (term, "n1")
    assert not follower.has_ready()


def test_a_transfer_to_a_lagging_voter_catches_it_up_at_once() -> None:
    """No tick between the call and the hand-over: the leader sends the missing entries right
    away, then TimeoutNow once the target has them."""
    h, leader = _cluster()
    h.blocked.add("n2")
    leader.propose(b"x")
    h.pump()
    h.blocked.clear()
    leader.transfer_leadership("n2")
    h.pump()
    assert h.core("n2").role == LEADER and leader.role == FOLLOWER
    assert {m.dst for m in h.sent if isinstance(m, TimeoutNow)} == {"n2"}
    assert leader.transferee == ""  # a deposed leader transfers nothing


def test_a_restarted_node_hands_out_its_committed_entries_at_once() -> None:
    h, leader = _cluster()
    indexes = leader.propose_batch([b"a", b"b"])
    h.pump()
    h.tick(2, only="n1")  # the followers learn the commit index
    stored = h.stores["n2"].load()
    assert stored.hard_state.commit >= indexes[-1]
    restarted = h.start("n2", stored)
    assert restarted.has_ready()
    ready = restarted.ready()
    assert [e.index for e in ready.committed][-2:] == indexes


def test_compaction_refuses_indexes_outside_what_can_be_compacted() -> None:
    h, leader = _cluster()
    index = leader.propose(b"x")
    h.pump()
    snap = leader.compact(index - 1, b"state")
    with pytest.raises(ValueError, match=f"compact\\({snap.meta.index}\\) at or below the snapshot index"):
        leader.compact(snap.meta.index, b"state")
    with pytest.raises(ValueError, match="beyond the applied index"):
        leader.compact(leader.applied_index + 1, b"state")
    assert leader.compact(index, b"state2").meta.index == index
