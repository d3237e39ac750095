"""RaftCore behaviours pinned after the mutation run (see RELIABILITY.md, "20,000 seeds and the
mutation score"): each test states a rule a surviving mutant broke without any test noticing."""

from __future__ import annotations

import random

from orion.raft.core import CANDIDATE, FOLLOWER, LEADER, RaftConfig, RaftCore, Ready
from orion.raft.memory_store import MemoryStore
from orion.raft.messages import (
    AppendEntries,
    HeartbeatResponse,
    InstallSnapshot,
    RequestVote,
    VoteResponse,
)
from orion.raft.types import (
    Entry,
    EntryKind,
    HardState,
    Membership,
    Snapshot,
    SnapshotMeta,
    StoredState,
    encode_membership,
)


def _fresh(node_id: str = "n1") -> RaftCore:
    return RaftCore(node_id, MemoryStore().load(), RaftConfig(), random.Random(7))


def test_an_empty_node_waiting_to_be_added_has_no_work_and_answers_status_questions() -> None:
    """A node that has heard from nobody has nothing to persist, send or apply: a shell that
    loops on has_ready() must go idle, and a status page may read it at once."""
    core = _fresh()
    assert not core.has_ready()
    assert (core.role, core.leader_id, core.transferee, core.term, core.vote) == (FOLLOWER, "", "", 0, "")
    assert (core.commit_index, core.applied_index, core.last_index, core.snapshot_index) == (0, 0, 0, 0)
    assert core.last_contact_ticks("n2") is None  # only a leader tracks contact
    core.tick()
    assert not core.has_ready(), "a non-member's tick must not campaign or produce work"


VOTERS = Membership(voters={"n1": "a1", "n2": "a2", "n3": "a3"}, cluster_id="c0ffee")


def _follower_with_log(terms: list[int], commit: int = 1, term: int = 1) -> RaftCore:
    """n2 restarted from a store holding entries of ``terms`` (entry 1 is the configuration)."""
    entries = [Entry(1, terms[0], EntryKind.CONFIG, encode_membership(VOTERS))]
    entries += [Entry(i, t, EntryKind.NORMAL, b"v%d" % i) for i, t in enumerate(terms[1:], start=2)]
    stored = StoredState(HardState(term, "", commit), None, entries)
    return RaftCore("n2", stored, RaftConfig(pre_vote=False, check_quorum=False), random.Random(3))


def _persist(core: RaftCore) -> Ready:
    ready = core.ready()
    core.advance(ready)
    return ready


def test_a_newer_term_heard_from_a_stray_answer_alone_is_handed_out_to_persist() -> None:
    """A follower that has not voted learns a newer term from an answer meant for an old
    leader: nothing to send, but the term must still reach the store."""
    core = _follower_with_log([1])
    _persist(core)  # entry 1 applied: nothing else pending
    core.step(HeartbeatResponse("n3", "n2", 5))
    assert core.term == 5 and core.vote == ""
    assert core.has_ready()
    assert _persist(core).hard_state == HardState(5, "", 1)


def test_granting_a_vote_restarts_the_election_timer() -> None:
    """Raft section 5.2: a voter that grants a vote waits a full election timeout before it
    campaigns itself, so the candidate it voted for has time to win."""
    core = _follower_with_log([1])
    probe = _follower_with_log([1])  # same seed: the same randomized timeout
    for node in (core, probe):  # in term 2 without a vote, the timer restarted by the news
        node.step(HeartbeatResponse("n1", "n2", 2))
    ticks_to_campaign = 0
    while probe.role == FOLLOWER:
        probe.tick()
        ticks_to_campaign += 1
    for _ in range(ticks_to_campaign - 1):
        core.tick()
    core.step(RequestVote("n3", "n2", 2, 1, 1))
    assert core.vote == "n3"
    waited = 0
    while core.role == FOLLOWER:
        core.tick()
        waited += 1
    assert waited == ticks_to_campaign, "the vote did not restart a full election timeout"


def test_after_truncation_a_new_leader_counts_itself_only_for_what_it_holds() -> None:
    """n2 held entries 2..8 of term 1 (never committed); the leader of term 3 truncates them
    from 5. Elected later, n2 must not count itself as holding 6..8 durably: its own match
    never exceeds its log, or a quorum could be counted on entries it does not have."""
    core = _follower_with_log([1, 1, 1, 1, 1, 1, 1, 1])
    core.step(AppendEntries("n1", "n2", 3, 4, 1, [Entry(5, 3, EntryKind.NORMAL, b"new")], 4))
    assert core.last_index == 5
    _persist(core)
    for _ in range(3 * core.config.election_ticks):
        core.tick()
        if core.role == CANDIDATE:
            break
    core.step(VoteResponse("n3", "n2", core.term, True))
    assert core.role == LEADER
    assert core.match_index("n2") == 5 < core.last_index, "its no-op is not written yet"
    _persist(core)
    assert core.match_index("n2") == core.last_index == 6


def test_entries_arriving_with_an_installed_snapshot_are_persisted_and_applied_once() -> None:
    """n2 held a long tail of term 1 that the leader's snapshot at 10 (term 2) overrides; an
    append from the same leader arrives in the same batch, at indices n2 held before. The one
    Ready must hand out the snapshot, every new entry to persist (acknowledging one that is
    never written loses it on a crash) and exactly the committed ones after the snapshot."""
    core = _follower_with_log([1] * 20)
    _persist(core)
    snap = Snapshot(SnapshotMeta(10, 2, VOTERS), b"fsm")
    core.step(InstallSnapshot("n1", "n2", 3, snap))
    new = [Entry(i, 3, EntryKind.NORMAL, b"x%d" % i) for i in range(11, 26)]
    core.step(AppendEntries("n1", "n2", 3, 10, 2, new, 12))
    ready = _persist(core)
    assert ready.snapshot == snap
    assert [e.index for e in ready.entries] == list(range(11, 26))
    assert [e.index for e in ready.committed] == [11, 12]
