"""Production features beyond the lab: PreVote, CheckQuorum, non-voters and promotion,
removal (of a follower and of the leader), leadership transfer, ReadIndex, bootstrap."""

from __future__ import annotations

import pytest

from orion.raft.core import (
    FOLLOWER,
    LEADER,
    ConfigChangeInProgress,
    NotLeaderError,
    RaftConfig,
)
from orion.raft.snapshot_stream import SnapshotChunk
from orion.sim.raft_cluster import SimCluster

ELECTION = 20


def test_prevote_rejoining_node_does_not_depose_leader() -> None:
    c = SimCluster(3, seed=41)
    c.one(b"a=1", 3)
    leader = c.check_one_leader()
    term = c.core(leader).term
    follower = next(i for i in c.ids if i != leader)
    c.disconnect(follower)
    c.tick(10 * ELECTION)  # the isolated node times out many times, but only pre-votes
    assert c.core(follower).term == term, "a pre-candidate must not bump its term"
    c.connect(follower)
    c.tick(3 * ELECTION)
    assert c.leader() == leader
    assert c.check_terms() == term
    c.one(b"a=2", 3)


def test_without_prevote_rejoining_node_bumps_terms() -> None:
    """The contrast that shows what PreVote buys (and that the flag is honoured)."""
    c = SimCluster(3, seed=42, config=RaftConfig(pre_vote=False))
    c.one(b"a=1", 3)
    leader = c.check_one_leader()
    term = c.core(leader).term
    follower = next(i for i in c.ids if i != leader)
    c.disconnect(follower)
    c.tick(10 * ELECTION)
    assert c.core(follower).term > term
    c.connect(follower)
    c.one(b"a=2", 3)
    assert c.check_terms() > term


def test_check_quorum_minority_leader_steps_down_and_refuses_writes() -> None:
    c = SimCluster(5, seed=43)
    c.one(b"k=1", 5)
    old = c.check_one_leader()
    ids = c.ids
    buddy = next(i for i in ids if i != old)
    majority = [i for i in ids if i not in (old, buddy)]
    c.net.partition([old, buddy], majority)
    stale_index = c.core(old).propose(b"k=stale")  # accepted, never committed
    assert c.run_until(lambda: c.core(old).role != LEADER, 2 * ELECTION), "minority leader kept leading"
    with pytest.raises(NotLeaderError):
        c.core(old).propose(b"k=refused")
    new = c.run_until(lambda: any(c.core(i).role == LEADER for i in majority), 4 * ELECTION)
    assert new
    c.one(b"k=2", 3)
    c.net.heal()
    c.one(b"k=3", 5)
    _, data = c.n_committed(stale_index)
    assert data != b"k=stale"


def test_non_voter_joins_catches_up_by_snapshot_and_is_promoted() -> None:
    # No entries kept behind the snapshot, so the join needs InstallSnapshot.
    c = SimCluster(3, seed=44, config=RaftConfig(trailing_entries=0), snapshots=True, snapshot_threshold=20)
    for k in range(60):
        c.one(f"k{k}=v".encode(), 3)
    leader = c.check_one_leader()
    core = c.core(leader)
    assert core.snapshot_index > 0, "the log should be compacted before the join"
    c.add_node("n4")
    assert not c.core("n4").is_voter
    index = core.add_non_voter("n4", "sim:n4")
    with pytest.raises(ConfigChangeInProgress):
        core.add_non_voter("n5", "sim:n5")
    assert c.run_until(lambda: core.match_index("n4") >= index, 4 * ELECTION)
    assert c.net.by_type.get(SnapshotChunk, 0) > 0  # InstallSnapshot travels as a stream
    assert "n4" in c.core("n4").membership.non_voters
    assert not c.core("n4").is_voter
    # A non-voter does not count towards the quorum: with two voters down nothing commits.
    others = [i for i in c.ids if i not in (leader, "n4")]
    c.disconnect(others[0])
    c.disconnect(others[1])
    pending = core.propose(b"k=needs-quorum")
    c.tick(ELECTION // 2)
    assert c.n_committed(pending)[0] == 0
    c.connect(others[0])
    c.connect(others[1])
    c.run_until(lambda: c.n_committed(pending)[0] == 4, 4 * ELECTION)
    leader = c.check_one_leader()
    c.core(leader).promote("n4")
    assert c.run_until(
        lambda: c.core("n4").is_voter and c.core(leader).commit_index >= c.core(leader).last_index,
        4 * ELECTION,
    )
    assert set(c.core(leader).membership.voters) == {"n1", "n2", "n3", "n4"}
    # Four voters: the quorum is three, and n4 is one of them.
    c.disconnect(others[0])
    c.one(b"k=with-n4", 3)


def _join(c: SimCluster, leader: str, new: str) -> None:
    """The production join: start empty, added as a non-voter, promoted once caught up."""
    c.add_node(new)
    core = c.core(leader)
    index = core.add_non_voter(new, f"sim:{new}")
    assert c.run_until(lambda: core.commit_index >= index and core.match_index(new) >= index, ELECTION)
    core.promote(new)
    assert c.run_until(lambda: c.core(new).is_voter and core.commit_index >= core.last_index, ELECTION)


def test_single_node_bootstrap_then_grow_to_three() -> None:
    c = SimCluster(1, seed=45)
    leader = c.wait_leader(5)
    assert leader == "n1"
    c.one(b"solo=1", 1)
    for new in ("n2", "n3"):
        _join(c, "n1", new)
    c.one(b"trio=1", 3)
    # Now a real three-node cluster: survives losing the bootstrap node.
    c.crash("n1")
    c.disconnect("n1")
    c.one(b"trio=2", 2)


def test_remove_follower() -> None:
    c = SimCluster(3, seed=46)
    c.one(b"a=1", 3)
    leader = c.check_one_leader()
    core = c.core(leader)
    victim = next(i for i in c.ids if i != leader)
    index = core.remove(victim)
    assert c.run_until(lambda: core.commit_index >= index, ELECTION)
    # The removed node learned of its removal and never campaigns.
    assert c.run_until(lambda: not c.core(victim).is_voter, ELECTION)
    term = core.term
    c.tick(5 * ELECTION)
    assert c.core(victim).role == FOLLOWER
    assert core.role == LEADER and core.term == term
    # Two voters left: both are needed, and they suffice.
    c.one(b"a=2", 2)
    assert victim not in core.membership.all_ids()


def test_remove_leader() -> None:
    c = SimCluster(3, seed=47)
    c.one(b"a=1", 3)
    old = c.check_one_leader()
    index = c.core(old).remove(old)
    remaining = [i for i in c.ids if i != old]
    assert c.run_until(lambda: c.core(old).role != LEADER, ELECTION), "removed leader did not step down"
    assert c.run_until(lambda: any(c.core(i).role == LEADER for i in remaining), 4 * ELECTION)
    new = next(i for i in remaining if c.core(i).role == LEADER)
    assert c.core(new).commit_index >= index
    assert old not in c.core(new).membership.voters
    assert not c.core(old).is_voter
    c.one(b"a=2", 2)
    c.tick(5 * ELECTION)
    assert c.core(old).role == FOLLOWER  # never campaigns again


def test_leadership_transfer_to_lagging_target() -> None:
    c = SimCluster(3, seed=48)
    c.one(b"a=1", 3)
    leader = c.check_one_leader()
    target = next(i for i in c.ids if i != leader)
    c.disconnect(target)
    for k in range(20):
        c.one(f"lag={k}".encode(), 2)
    c.connect(target)
    term = c.core(leader).term
    c.core(leader).transfer_leadership(target)
    with pytest.raises(NotLeaderError):
        c.core(leader).propose(b"during-transfer")
    assert c.run_until(lambda: c.core(target).role == LEADER, ELECTION)
    assert c.core(target).term == term + 1
    assert c.core(leader).role == FOLLOWER
    c.one(b"a=2", 3)


def test_leadership_transfer_picks_most_up_to_date() -> None:
    c = SimCluster(5, seed=49)
    c.one(b"a=1", 5)
    leader = c.check_one_leader()
    lagging = [i for i in c.ids if i != leader][:3]
    for node_id in lagging:
        c.disconnect(node_id)
    best = next(i for i in c.ids if i != leader and i not in lagging)
    c.core(leader).propose(b"a=2")
    c.tick(2)
    for node_id in lagging:
        c.connect(node_id)
    c.core(leader).transfer_leadership()
    assert c.core(leader).transferee == best
    assert c.run_until(lambda: c.core(best).role == LEADER, ELECTION)


def test_read_index_never_stale_after_partition() -> None:
    c = SimCluster(5, seed=50, config=RaftConfig(check_quorum=False))
    c.one(b"x=1", 5)
    old = c.check_one_leader()
    buddy = next(i for i in c.ids if i != old)
    majority = [i for i in c.ids if i not in (old, buddy)]
    c.net.partition([old, buddy], majority)
    # The majority elects a new leader and writes x=2.
    assert c.run_until(lambda: any(c.core(i).role == LEADER for i in majority), 6 * ELECTION)
    write_index = c.one(b"x=2", 3)
    # The deposed leader still believes it leads (no CheckQuorum here): a read there must not
    # be answered, since it cannot reach a quorum.
    assert c.core(old).role == LEADER
    c.core(old).read_index(b"stale?")
    c.tick(2 * ELECTION)
    assert b"stale?" not in c.nodes[old].reads
    # On the real leader the read is confirmed at an index that includes x=2.
    new = next(i for i in majority if c.core(i).role == LEADER)
    c.core(new).read_index(b"fresh")
    assert c.run_until(lambda: b"fresh" in c.nodes[new].reads, ELECTION)
    read_at = c.nodes[new].reads[b"fresh"]
    assert read_at >= write_index
    assert c.run_until(lambda: c.nodes[new].fsm.applied_index >= read_at, ELECTION)
    assert c.nodes[new].fsm.kv[b"x"] == b"2"
    # Healing deposes the old leader; its pending read fails rather than answering stale.
    c.net.heal()
    assert c.run_until(lambda: c.core(old).role != LEADER, 4 * ELECTION)
    c.tick(2)
    assert b"stale?" in c.nodes[old].failed_reads
    assert b"stale?" not in c.nodes[old].reads


def test_read_index_with_check_quorum_and_single_node() -> None:
    c = SimCluster(3, seed=51)
    c.one(b"y=1", 3)
    leader = c.check_one_leader()
    c.core(leader).read_index(b"r1")
    assert c.run_until(lambda: b"r1" in c.nodes[leader].reads, ELECTION)
    follower = next(i for i in c.ids if i != leader)
    with pytest.raises(NotLeaderError) as err:
        c.core(follower).read_index(b"r2")
    assert err.value.leader_id == leader
    solo = SimCluster(1, seed=52)
    solo.one(b"z=1", 1)
    solo.core("n1").read_index(b"r3")
    assert solo.run_until(lambda: b"r3" in solo.nodes["n1"].reads, 2)


def test_leader_reports_follower_contact_and_match() -> None:
    c = SimCluster(3, seed=53)
    index = c.one(b"m=1", 3)
    leader = c.check_one_leader()
    core = c.core(leader)
    quiet, chatty = (i for i in c.ids if i != leader)
    assert core.match_index(chatty) >= index and core.match_index(leader) >= index
    c.disconnect(quiet)
    c.tick(ELECTION // 2)
    contact_quiet = core.last_contact_ticks(quiet)
    contact_chatty = core.last_contact_ticks(chatty)
    assert contact_quiet is not None and contact_chatty is not None
    assert contact_quiet >= ELECTION // 2 > contact_chatty
    with pytest.raises(NotLeaderError):
        c.core(chatty).match_index(quiet)
