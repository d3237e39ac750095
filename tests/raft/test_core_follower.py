"""A follower's and a voter's exact answers, one message at a time: votes and pre-votes, vote
counting, malformed and conflicting appends, truncation of an uncommitted configuration, and
InstallSnapshot for a log that already holds it."""

from __future__ import annotations

import random

from orion.raft.core import CANDIDATE, FOLLOWER, LEADER, RaftConfig, RaftCore
from orion.raft.messages import (
    AppendEntries,
    AppendResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    RequestVote,
    VoteResponse,
)
from orion.raft.types import Entry, EntryKind, HardState, Membership, Snapshot, SnapshotMeta, StoredState
from orion.raft.types import encode_membership as encode

ELECTION = 10
CONFIG = RaftConfig(election_ticks=ELECTION, heartbeat_ticks=2, pre_vote=False, check_quorum=False)
MEMBERS = Membership(voters={i: f"core:{i}" for i in ("n1", "n2", "n3")})


def _node(term: int, entries: list[Entry], vote: str = "", commit: int = 1, node: str = "n2") -> RaftCore:
    stored = StoredState(HardState(term, vote, commit), None, entries)
    return RaftCore(node, stored, CONFIG, random.Random(3))


def _log(*terms: int) -> list[Entry]:
    """Entry 1 is the configuration; entries 2.. have the given terms."""
    first = Entry(1, 1, EntryKind.CONFIG, encode(MEMBERS))
    return [first, *(Entry(i, t, EntryKind.NORMAL, b"e%d" % i) for i, t in enumerate(terms, start=2))]


def _answers(core: RaftCore) -> list[object]:
    ready = core.ready()
    core.advance(ready)
    return ready.messages


# ---------------------------------------------------------------------------- votes
def test_a_pre_vote_for_the_current_term_does_not_override_a_vote_cast_in_it() -> None:
    voter = _node(5, _log(5), vote="n3")
    voter.step(RequestVote("n1", "n2", 5, 2, 5, True, False))
    assert _answers(voter) == [VoteResponse("n2", "n1", 5, False, True)]
    voter.step(RequestVote("n1", "n2", 6, 2, 5, True, False))  # for the next term: granted
    assert _answers(voter) == [VoteResponse("n2", "n1", 6, True, True)]
    assert (voter.term, voter.vote) == (5, "n3")  # a pre-vote changes nothing


def test_granting_a_vote_restarts_the_voters_election_timer() -> None:
    waits = []
    for seed in range(1, 60):
        voter = RaftCore("n2", StoredState(HardState(5, "", 1), None, _log(5)), CONFIG, random.Random(seed))
        for _ in range(ELECTION - 1):
            voter.tick()
        voter.step(RequestVote("n1", "n2", 6, 2, 5, False, False))
        assert voter.vote == "n1"
        ticks = 0
        while voter.role == FOLLOWER and ticks < 3 * ELECTION:
            voter.tick()
            ticks += 1
        waits.append(ticks)
    assert min(waits) == ELECTION, sorted(set(waits))


def _candidate(n: int) -> tuple[RaftCore, int]:
    members = Membership(voters={f"n{i}": f"core:n{i}" for i in range(1, n + 1)})
    entry = Entry(1, 1, EntryKind.CONFIG, encode(members))
    core = RaftCore("n1", StoredState(HardState(1, "", 1), None, [entry]), CONFIG, random.Random(1))
    while core.role != CANDIDATE:
        core.tick()
    _answers(core)
    return core, core.term


def test_a_quorum_of_refusals_ends_a_campaign_at_once_and_fewer_do_not() -> None:
    core, term = _candidate(5)
    core.step(VoteResponse("n2", "n1", term, False, False))
    core.step(VoteResponse("n3", "n1", term, False, False))
    assert core.role == CANDIDATE, "two refusals of five are not a quorum"
    core.step(VoteResponse("n4", "n1", term, False, False))
    assert core.role == FOLLOWER and core.term == term


def test_votes_count_only_from_voters_and_once_each() -> None:
    core, term = _candidate(3)
    core.step(VoteResponse("n9", "n1", term, True, False))  # not a member
    core.step(VoteResponse("n9", "n1", term, True, False))
    assert core.role == CANDIDATE
    core.step(VoteResponse("n2", "n1", term, True, False))
    assert core.role == LEADER


# ---------------------------------------------------------------------------- appends
def test_a_malformed_append_is_ignored() -> None:
    follower = _node(2, _log(2))
    for entries in ([Entry(4, 2, data=b"x")], [Entry(3, 2, data=b"x"), Entry(5, 2, data=b"y")]):
        follower.step(AppendEntries("n1", "n2", 2, 2, 2, entries, 1))
        assert follower.last_index == 2
    assert [m for m in _answers(follower) if isinstance(m, AppendResponse)] == []


def test_a_follower_missing_the_previous_entry_says_where_its_log_ends() -> None:
    follower = _node(2, _log(2, 2))
    follower.step(AppendEntries("n1", "n2", 2, 10, 2, [], 1))
    assert _answers(follower) == [AppendResponse("n2", "n1", 2, False, 10, 0, 4)]


def test_a_conflicting_term_is_reported_with_its_first_index() -> None:
    follower = _node(3, _log(2, 2, 2))
    follower.step(AppendEntries("n1", "n2", 3, 4, 3, [], 1))
    assert _answers(follower) == [AppendResponse("n2", "n1", 3, False, 4, 2, 2)]


def test_truncating_an_uncommitted_configuration_reverts_it_and_persists_the_new_entry() -> None:
    follower = _node(2, _log(2))
    without_n3 = Membership(voters={"n1": "core:n1", "n2": "core:n2"})
    removal = Entry(3, 2, EntryKind.CONFIG, encode(without_n3))
    follower.step(AppendEntries("n1", "n2", 2, 2, 2, [removal], 2))
    _answers(follower)
    assert follower.membership == without_n3 and follower.commit_index == 2
    other = Entry(3, 3, EntryKind.NORMAL, b"other")
    follower.step(AppendEntries("n3", "n2", 3, 2, 2, [other], 2))  # a later leader that lacks it
    ready = follower.ready()
    assert ready.entries == [other], "the entry that replaced the truncated one must be persisted"
    follower.advance(ready)
    assert follower.membership == MEMBERS


# ---------------------------------------------------------------------------- InstallSnapshot
def _snapshot(index: int, term: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, MEMBERS), b"state")


def test_a_snapshot_the_follower_already_committed_is_acknowledged_at_its_commit() -> None:
    follower = _node(3, _log(2, 2, 3), commit=4)
    follower.step(InstallSnapshot("n1", "n2", 3, _snapshot(3, 2)))
    assert _answers(follower) == [InstallSnapshotResponse("n2", "n1", 3, 4)]
    assert follower.snapshot_index == 0 and follower.last_index == 4


def test_a_snapshot_of_an_entry_the_follower_holds_only_commits_it() -> None:
    follower = _node(3, _log(2, 2, 3), commit=1)
    follower.step(InstallSnapshot("n1", "n2", 3, _snapshot(3, 2)))
    ready = follower.ready()
    assert ready.messages == [InstallSnapshotResponse("n2", "n1", 3, 3)]
    assert ready.snapshot is None and follower.commit_index == 3 and follower.last_index == 4
    follower.advance(ready)
