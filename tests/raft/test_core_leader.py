"""A leader's exact behaviour: what it sends (and does not) while probing, Ongaro's rule for
configuration changes, and a follower's state after installing a snapshot."""

from __future__ import annotations

import random

import pytest
from core_harness import CoreHarness

from orion.raft.core import LEADER, ConfigChangeInProgress, RaftConfig, RaftCore
from orion.raft.messages import AppendEntries, InstallSnapshot
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
