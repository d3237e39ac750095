"""A leader's exact behaviour: what it sends (and does not) while probing, Ongaro's rule for
configuration changes, and a follower's state after installing a snapshot."""

from __future__ import annotations

import random

import pytest
from core_harness import CoreHarness

from orion.raft.core import CANDIDATE, LEADER, ConfigChangeInProgress, RaftConfig, RaftCore
from orion.raft.messages import AppendEntries, AppendResponse, InstallSnapshot, TimeoutNow, VoteResponse
from orion.raft.types import Entry, EntryKind, HardState, Membership, Snapshot, SnapshotMeta, StoredState
from orion.raft.types import encode_membership as encode

CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2)
IDS = ["n1", "n2", "n3"]


def test_one_probe_at_a_time_to_a_follower_that_does_not_answer() -> None:
    h = CoreHarness(IDS, CONFIG)
    h.blocked.add("n3")
    leader = h.elect("n1")
    h.pump()
    for i in range(5):
        leader.propose(b"x%d" % i)
        h.pump()
    probes = h.appends_to("n3")
    assert len(probes) == 1, f"{len(probes)} appends to a follower that never answered"


def test_a_new_leader_refuses_configuration_changes_until_it_commits_in_its_term() -> None:
    h = CoreHarness(IDS, CONFIG)
    core = h.core("n1")
    h.hold = lambda m: m.src == "n1" and isinstance(m, AppendEntries)  # its no-op goes nowhere
    for _ in range(100):
        if core.role == LEADER:
            break
        h.tick(1, only="n1")
    assert core.role == LEADER
    with pytest.raises(ConfigChangeInProgress, match="has not committed an entry in its term"):
        core.add_non_voter("n4", "core:n4")
    h.hold = lambda _m: False
    h.release()
    core.add_non_voter("n4", "core:n4")  # accepted once its no-op committed
    h.pump()
    assert not any(m.dst == m.src for m in h.sent), "the leader addressed a message to itself"


def test_a_follower_takes_everything_from_an_installed_snapshot() -> None:
    """Its log, configuration, commit and snapshot all become the snapshot's; nothing of the
    replaced log is written or applied after it, and the next entry goes on from there."""
    old = Membership(voters={i: f"core:{i}" for i in IDS})
    new = Membership(voters={"n1": "core:n1", "n2": "core:n2"}, non_voters={"n4": "core:n4"})
    entries = [Entry(1, 1, EntryKind.CONFIG, encode(old)), Entry(2, 1, data=b"a"), Entry(3, 1, data=b"b")]
    follower = RaftCore("n2", StoredState(HardState(1, "", 1), None, entries), CONFIG, random.Random(1))
    follower.advance(follower.ready())
    snap = Snapshot(SnapshotMeta(20, 4, new), b"state at 20")
    follower.step(InstallSnapshot("n1", "n2", 4, snap))
    ready = follower.ready()
    assert ready.snapshot == snap and ready.entries == [] and ready.committed == []
    follower.advance(ready)
    assert (follower.snapshot, follower.membership, follower.commit_index) == (snap, new, 20)
    assert (follower.snapshot_index, follower.last_index, follower.applied_index) == (20, 20, 20)
    after = Entry(21, 4, data=b"c")
    follower.step(AppendEntries("n1", "n2", 4, 20, 4, [after], 21))
    ready = follower.ready()
    assert ready.entries == [after] and ready.committed == [after]
    follower.advance(ready)


# ---------------------------------------------------------------------------- probing back
def _leader_with_log(*terms: int) -> RaftCore:
    """n1 leads term max(terms) + 1 over n1..n3; entry 1 is the configuration, entries 2.. have
    ``terms``, then its no-op. Its first appends are drained: each follower is probed once."""
    members = Membership(voters={i: f"core:{i}" for i in IDS})
    entries = [Entry(1, 1, EntryKind.CONFIG, encode(members))]
    entries += [Entry(i, t, EntryKind.NORMAL, b"e%d" % i) for i, t in enumerate(terms, start=2)]
    stored = StoredState(HardState(max(terms), "", 1), None, entries)
    core = RaftCore(
        "n1", stored, RaftConfig(election_ticks=10, heartbeat_ticks=2, pre_vote=False), random.Random(1)
    )
    while core.role != CANDIDATE:
        core.tick()
    core.step(VoteResponse("n2", "n1", core.term, True, False))
    assert core.role == LEADER
    _drain(core)
    return core


def _drain(core: RaftCore) -> list[object]:
    ready = core.ready()
    core.advance(ready)
    return ready.messages


def _next_probe(core: RaftCore, peer: str) -> AppendEntries:
    probes = [m for m in _drain(core) if isinstance(m, AppendEntries) and m.dst == peer]
    assert len(probes) == 1, probes
    return probes[0]


def test_a_rejection_naming_a_term_the_leader_holds_skips_to_its_end() -> None:
    leader = _leader_with_log(2, 2, 2, 3, 3)  # terms at 2..6; no-op at 7
    leader.step(AppendResponse("n2", "n1", leader.term, False, 6, 2, 3))
    probe = _next_probe(leader, "n2")
    assert (probe.prev_index, probe.prev_term) == (4, 2)  # the last index of term 2, then on


def test_a_rejection_naming_a_term_the_leader_lacks_goes_to_the_conflict_index() -> None:
    leader = _leader_with_log(2, 2, 4, 4, 4)
    leader.step(AppendResponse("n2", "n1", leader.term, False, 6, 3, 3))
    assert _next_probe(leader, "n2").prev_index == 2


def test_a_rejection_without_a_term_goes_to_the_followers_log_end_but_never_past_the_rejected_index() -> None:
    leader = _leader_with_log(2, 2, 2, 2, 2)
    leader.step(AppendResponse("n2", "n1", leader.term, False, 6, 0, 4))
    assert _next_probe(leader, "n2").prev_index == 3
    leader.step(AppendResponse("n3", "n1", leader.term, False, 6, 0, 50))
    assert _next_probe(leader, "n3").prev_index == 5


def test_stale_rejections_are_ignored() -> None:
    leader = _leader_with_log(2, 2, 2)
    leader.step(AppendResponse("n2", "n1", leader.term, False, 2, 0, 1))  # not the outstanding probe
    assert _drain(leader) == []
    leader.step(AppendResponse("n3", "n1", leader.term, True, 5, 0, 0))
    _drain(leader)
    leader.step(AppendResponse("n3", "n1", leader.term, False, 4, 0, 2))  # below what n3 matched
    assert _drain(leader) == []


def test_a_rejection_never_sends_the_probe_below_what_the_follower_matched() -> None:
    leader = _leader_with_log(2, 2, 2, 2, 2)
    leader.step(AppendResponse("n2", "n1", leader.term, True, 4, 0, 0))  # n2 matches 4
    _drain(leader)
    leader.step(AppendResponse("n2", "n1", leader.term, False, 6, 0, 2))
    assert _next_probe(leader, "n2").prev_index == 4
    leader.propose(b"more")  # a rejection means probing again: one append at a time
    assert not any(isinstance(m, AppendEntries) and m.dst == "n2" for m in _drain(leader))


def test_a_stale_success_to_a_paused_probe_sends_the_next_probe() -> None:
    leader = _leader_with_log(2, 2)  # entries 1..3, its no-op at 4: the first probe is at 3
    leader.step(AppendResponse("n2", "n1", leader.term, False, 3, 0, 3))
    assert _next_probe(leader, "n2").prev_index == 2  # and now it waits (paused)
    assert _drain(leader) == []
    leader.step(AppendResponse("n2", "n1", leader.term, True, 0, 0, 0))  # old news
    assert _next_probe(leader, "n2").prev_index == 2


# ---------------------------------------------------------------------------- acknowledgements
def test_one_entry_costs_each_follower_one_append_and_one_commit_notice() -> None:
    h = CoreHarness(IDS, CONFIG)
    leader = h.elect("n1")
    h.pump()
    sent = len(h.sent)
    leader.propose(b"x")
    h.pump()
    for peer in ("n2", "n3"):
        appends = [m for m in h.sent[sent:] if isinstance(m, AppendEntries) and m.dst == peer]
        assert [len(m.entries) for m in appends] == [1, 0], appends


def test_after_installing_a_snapshot_the_follower_gets_the_rest_at_once() -> None:
    h = CoreHarness(IDS, RaftConfig(election_ticks=10, heartbeat_ticks=2, trailing_entries=0))
    leader = h.elect("n1")
    h.pump()
    h.blocked.add("n3")
    leader.propose_batch([b"x"] * 5)
    h.pump()
    leader.compact(leader.applied_index, b"fsm")
    h.hold = lambda m: isinstance(m, InstallSnapshot)
    h.blocked.clear()
    h.tick(2, only="n1")
    leader.propose(b"after")  # written while the snapshot is on its way
    h.pump()
    h.hold = lambda _m: False
    h.release()  # installed, answered; no tick from here on
    assert h.core("n3").last_index == leader.last_index


# ---------------------------------------------------------------------------- a leader removing itself
def test_a_leader_removing_itself_hands_over_once_the_removal_commits() -> None:
    h = CoreHarness(IDS, CONFIG)
    leader = h.elect("n1")
    h.pump()
    h.blocked.add("n3")  # n3 falls behind: n2 is the most caught-up voter
    leader.propose(b"x")
    h.pump()
    h.blocked.clear()
    h.hold = lambda m: m.src == "n1" and isinstance(m, TimeoutNow)
    index = leader.remove("n1")
    h.pump()
    assert leader.role != LEADER and leader.commit_index >= index
    assert [(m.dst, m.term) for m in h.held] == [("n2", leader.term)]
    assert h.core("n2").commit_index >= index, "the others were not told the removal committed"
    h.hold = lambda _m: False
    h.release()
    assert h.core("n2").role == LEADER  # no tick: the hand-over is immediate


def test_a_leader_removing_itself_leads_until_the_removal_commits() -> None:
    h = CoreHarness(IDS, CONFIG)
    leader = h.elect("n1")
    h.pump()
    h.blocked.add("n3")
    h.hold = lambda m: m.src == "n2" and m.dst == "n1"  # n2's answers wait
    leader.remove("n1")
    h.pump()
    assert leader.role == LEADER, "stepped down before its removal committed"


def test_a_leader_removing_itself_does_not_count_itself_toward_a_quorum() -> None:
    """Its removal needs both n2 and n3; with n3 gone, n2's answers alone are not a quorum of
    the new configuration, so CheckQuorum deposes it."""
    h = CoreHarness(IDS, CONFIG)
    leader = h.elect("n1")
    h.pump()
    h.blocked.add("n3")
    leader.remove("n1")
    h.tick(2 * CONFIG.election_ticks, only="n1")
    assert leader.role != LEADER


def test_the_last_word_to_a_removed_member_never_announces_uncommitted_entries() -> None:
    """n3 acknowledged an entry after its own removal; when the removal commits (n2's answer
    for it), n3 is told the commit index, which is the removal's, not what n3 matched."""
    h = CoreHarness(IDS, CONFIG)
    leader = h.elect("n1")
    h.pump()
    h.hold = lambda m: m.src == "n2" and m.dst == "n1"
    index = leader.remove("n3")
    h.pump()
    leader.propose(b"after the removal")
    h.pump()
    removed = h.core("n3")
    assert removed.last_index == index + 1 and leader.commit_index < index
    first_answer = next(m for m in h.held if isinstance(m, AppendResponse) and m.index == index)
    h.hold = lambda m: m.src == "n2" and m.dst == "n1" and m is not first_answer
    leader.step(first_answer)
    h.pump()
    assert leader.commit_index == index
    assert removed.commit_index == index, "a removed member was told of an uncommitted entry"


def test_an_acknowledgement_frees_the_window_for_the_next_append_at_once() -> None:
    h = CoreHarness(IDS, RaftConfig(election_ticks=10, heartbeat_ticks=2, max_inflight=1))
    leader = h.elect("n1")
    h.pump()
    h.hold = lambda m: isinstance(m, AppendResponse)
    last = 0
    for i in range(3):  # the first goes out; the window is then full
        last = leader.propose(b"x%d" % i)
        h.pump()
    assert h.core("n2").last_index < last
    h.hold = lambda _m: False
    h.release()  # each acknowledgement lets the next append go, with no tick
    assert h.core("n2").last_index == last and h.core("n3").last_index == last
