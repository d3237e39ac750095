"""Identity and membership API of the core: cluster id and incarnations carried through
configuration changes, update_address, bootstrap() after construction, snapshot_meta, and
the hooks a streamed snapshot uses (snapshot_progress, snapshot_failed)."""

from __future__ import annotations

import random

import msgspec
import pytest
from core_harness import CoreHarness

from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.messages import InstallSnapshot
from orion.raft.types import EntryKind, Membership, decode_membership, encode_membership

IDS = ["n1", "n2", "n3"]


class _MembershipBeforeIdentity(msgspec.Struct, frozen=True):
    """The shape Membership had before cluster_id and incarnations (what old logs hold)."""

    voters: dict[str, str] = {}
    non_voters: dict[str, str] = {}


def test_membership_encoded_before_identity_fields_still_decodes() -> None:
    old = msgspec.msgpack.encode(_MembershipBeforeIdentity(voters={"n1": "a:1"}, non_voters={"n2": "b:2"}))
    m = decode_membership(old)
    assert m == Membership(voters={"n1": "a:1"}, non_voters={"n2": "b:2"})
    assert m.cluster_id == "" and m.incarnations == {}
    new = Membership(voters={"n1": "a:1"}, cluster_id="abc", incarnations={"n1": "i1"})
    assert decode_membership(encode_membership(new)) == new


def _committed_everywhere(h: CoreHarness, index: int) -> bool:
    return all(h.applied[i] >= index for i in h.cores)


def test_incarnations_and_cluster_id_carried_through_add_promote_remove() -> None:
    h = CoreHarness(IDS, RaftConfig())
    h.add_empty("n4")
    leader = h.elect("n1")
    index = leader.add_non_voter("n4", "core:n4", incarnation="inc-4")
    h.pump()
    assert _committed_everywhere(h, index)
    for node_id in h.cores:
        m = h.core(node_id).membership
        assert m.cluster_id == "c0ffee", node_id
        assert m.non_voters == {"n4": "core:n4"} and m.incarnations == {"n4": "inc-4"}, node_id
    index = leader.promote("n4")
    h.pump()
    m = h.core("n4").membership
    assert "n4" in m.voters and m.incarnations == {"n4": "inc-4"} and m.cluster_id == "c0ffee"
    index = leader.remove("n4")
    h.pump()
    m = leader.membership
    assert "n4" not in m.all_ids() and m.incarnations == {} and m.cluster_id == "c0ffee"
    # Without an incarnation nothing is recorded (and a stale one would be forgotten).
    leader.add_non_voter("n4", "core:n4")
    h.pump()
    assert leader.membership.incarnations == {} and leader.membership.non_voters == {"n4": "core:n4"}


def test_update_address_changes_only_the_address() -> None:
    membership = Membership(voters={i: f"core:{i}" for i in IDS}, cluster_id="c1", incarnations={"n2": "i2"})
    h = CoreHarness(IDS, RaftConfig(), membership=membership)
    leader = h.elect("n1")
    before = leader.membership
    index = leader.update_address("n2", "127.0.0.2:7100")
    entry = leader.entries(index, index)[0]
    assert entry.kind == EntryKind.CONFIG
    h.pump()
    assert _committed_everywhere(h, index)
    for node_id in IDS:
        m = h.core(node_id).membership
        assert m.voters == {**before.voters, "n2": "127.0.0.2:7100"}
        assert (m.non_voters, m.cluster_id, m.incarnations) == ({}, "c1", {"n2": "i2"})
    with pytest.raises(ValueError, match="already has address"):
        leader.update_address("n2", "127.0.0.2:7100")
    with pytest.raises(ValueError, match="not a member"):
        leader.update_address("n9", "x:1")
    with pytest.raises(ValueError, match="empty address"):
        leader.update_address("n3", "")
    # The re-addressed member is still a voter that counts: with n3 cut off, commit needs n2.
    h.blocked.add("n3")
    index = leader.propose(b"needs-n2")
    h.pump()
    assert h.applied["n2"] == index


def test_bootstrap_after_construction_on_an_empty_node() -> None:
    store = MemoryStore()
    core = RaftCore("n1", store.load(), RaftConfig(), random.Random(7))
    for _ in range(50):
        core.tick()  # a node that belongs to no configuration never campaigns
    assert core.role != LEADER and core.term == 0 and core.last_index == 0
    membership = Membership(voters={"n1": "a:1"}, cluster_id="fresh")
    with pytest.raises(ValueError, match="as a voter"):
        core.bootstrap(Membership(voters={"n2": "b:1"}))
    core.bootstrap(membership)
    rd = core.ready()
    assert [(e.index, e.term, e.kind) for e in rd.entries] == [(1, 1, EntryKind.CONFIG)]
    assert decode_membership(rd.entries[0].data) == membership
    assert [e.index for e in rd.committed] == [1] and rd.hard_state is not None
    store.save(rd.hard_state, rd.entries)
    core.advance(rd)
    core.tick()
    assert core.role == LEADER and core.membership.cluster_id == "fresh"
    with pytest.raises(ValueError, match="not empty"):
        core.bootstrap(membership)
    # Restarted from its store, the node is the same cluster; bootstrapping again is refused.
    again = RaftCore("n1", store.load(), RaftConfig(), random.Random(8))
    assert again.membership == membership
    with pytest.raises(ValueError, match="not empty"):
        again.bootstrap(membership)
    # The constructor argument is ignored on a node that holds a log, as before.
    kept = RaftCore(
        "n1", store.load(), RaftConfig(), random.Random(9), bootstrap=Membership(voters={"n1": "z"})
    )
    assert kept.membership == membership


def test_bootstrap_refused_after_hearing_from_a_cluster() -> None:
    h = CoreHarness(["n1", "n2"], RaftConfig())
    h.elect("n1")
    h.add_empty("n3")
    index = h.core("n1").add_non_voter("n3", "core:n3")
    h.pump()
    assert h.applied["n3"] >= index
    with pytest.raises(ValueError, match="not empty"):
        h.core("n3").bootstrap(Membership(voters={"n3": "core:n3"}))


def test_snapshot_meta_gives_term_and_membership_at_an_applied_index() -> None:
    h = CoreHarness(IDS, RaftConfig(trailing_entries=3))
    h.add_empty("n4")
    leader = h.elect("n1")
    base = leader.membership
    leader.propose_batch([b"a"] * 5)
    h.pump()
    before_add = leader.applied_index
    added = leader.add_non_voter("n4", "core:n4", "i4")
    h.pump()
    leader.propose_batch([b"b"] * 5)
    h.pump()
    assert leader.snapshot_meta(before_add).membership == base
    meta = leader.snapshot_meta(added)
    assert meta.membership.incarnations == {"n4": "i4"} and meta.term == leader.term
    snap = leader.compact(added + 2, b"state")
    assert leader.snapshot_meta(added + 2) == snap.meta
    assert leader.snapshot_meta(leader.applied_index).membership == leader.membership
    for bad in (added + 1, leader.applied_index + 1):
        with pytest.raises(ValueError, match="must lie in"):
            leader.snapshot_meta(bad)


def _leader_with_follower_needing_snapshot() -> tuple[CoreHarness, RaftCore, int]:
    h = CoreHarness(IDS, RaftConfig(trailing_entries=0))
    leader = h.elect("n1")
    h.blocked.add("n3")
    leader.propose_batch([b"x"] * 20)
    h.pump()
    snap_index = leader.compact(leader.applied_index, b"fsm").meta.index
    h.blocked.clear()
    # The stream is in progress: the InstallSnapshot never lands as one message.
    h.drop = lambda m: isinstance(m, InstallSnapshot)
    h.tick(2)
    assert len(h.snapshots_to("n3")) == 1
    return h, leader, snap_index


def test_snapshot_progress_keeps_the_transfer_alive_past_the_timeout() -> None:
    h, leader, snap_index = _leader_with_follower_needing_snapshot()
    timeout = 2 * leader.config.election_ticks
    for _ in range(3 * timeout):
        leader.snapshot_progress("n3")  # the shell saw a chunk acknowledged
        h.tick()
    assert len(h.snapshots_to("n3")) == 1, "an acknowledged transfer must not be restarted"
    # Without progress reports the leader gives up after the timeout and sends it again:
    # the same (dst, index, term), which the shell treats as "continue".
    h.tick(timeout + leader.config.heartbeat_ticks)
    again = h.snapshots_to("n3")
    assert len(again) == 2 and again[0] == again[1]
    assert leader.role == LEADER
    # Delivered twice (a repeat is harmless): installed once, then replicated normally.
    h.drop = lambda _m: False
    h.inbox.extend(again)
    h.pump()
    assert [s.meta.index for s in h.installed["n3"]] == [snap_index]
    index = leader.propose(b"after")
    h.pump()
    assert h.applied["n3"] == index and h.logs_match("n1", "n3")


def test_snapshot_failed_probes_again_at_once() -> None:
    h, leader, snap_index = _leader_with_follower_needing_snapshot()
    leader.snapshot_failed("n3")
    assert leader.has_ready()
    h.pump()  # no tick: the retry does not wait for the timeout
    assert len(h.snapshots_to("n3")) == 2
    leader.snapshot_failed("n2")  # not in SNAPSHOT state: nothing to do
    leader.snapshot_progress("n9")  # unknown peer: ignored
    h.drop = lambda _m: False
    leader.snapshot_failed("n3")
    h.pump()
    assert h.core("n3").snapshot_index == snap_index
    assert h.applied["n3"] == leader.commit_index
    # A follower never holds progress: the hooks are no-ops there.
    h.core("n2").snapshot_failed("n3")
    h.core("n2").snapshot_progress("n3")
    assert not h.core("n2").has_ready()
