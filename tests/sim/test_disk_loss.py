"""Disk loss in the simulator: a node restarts with an empty store and a new incarnation. With
the identity checks and the membership policy it rejoins as a new member and nothing is lost;
with the checks turned off (a legacy cluster, as the code was before them) the simulator finds the
old bugs: a wiped voter counted as its old self loses a committed entry, and a wiped bootstrap
node founds a second cluster that the others follow."""

from __future__ import annotations

import pytest

from orion.raft.core import LEADER, RaftConfig
from orion.raft.shell import OTHER_CLUSTER
from orion.sim.invariants import InvariantViolation
from orion.sim.raft_cluster import SimCluster
from orion.sim.raft_random import random_run

CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2)


def _healed(c: SimCluster) -> bool:
    leader = c.leader()
    if leader is None:
        return False
    membership = c.core(leader).membership
    return set(membership.voters) == set(c.ids) and all(
        membership.incarnations.get(i) == node.incarnation for i, node in c.nodes.items()
    )


def test_wiped_follower_rejoins_as_a_new_member_with_every_committed_entry() -> None:
    c = SimCluster(3, seed=21, config=CONFIG, membership_policy=True, snapshots=True, snapshot_threshold=16)
    last = 0
    for k in range(40):
        last = c.one(b"k%d=v%d" % (k % 4, k), 3)
    leader = c.check_one_leader()
    victim = next(i for i in c.ids if i != leader)
    old = c.nodes[victim].incarnation
    c.wipe(victim)
    assert c.nodes[victim].incarnation != old
    assert c.run_until(lambda: _healed(c), 300), c.core(c.check_one_leader()).membership
    final = c.one(b"after=wipe", 3)
    assert c.nodes[victim].fsm.applied_index >= final > last
    assert c.nodes[victim].fsm.read(b"k3") == b"v39"


def test_wiped_bootstrap_node_hears_its_cluster_and_joins_it() -> None:
    c = SimCluster(3, seed=22, config=CONFIG, membership_policy=True)
    c.one(b"a=1", 3)
    leader = c.check_one_leader()
    victim = next(i for i in c.ids if i != leader)
    c.wipe(victim, bootstrap_grace=30)
    assert c.run_until(lambda: _healed(c), 300)
    assert c.core(victim).membership.cluster_id == c.cluster_id
    assert c.one(b"a=2", 3)


def test_wiped_bootstrap_node_alone_founds_a_cluster_that_nobody_follows() -> None:
    """Cut off for its whole grace period, it founds a cluster of its own: the others refuse
    its frames, the policy never adds a stranger, and the old cluster goes on without it."""
    c = SimCluster(3, seed=23, config=CONFIG, membership_policy=True)
    c.one(b"a=1", 3)
    leader = c.check_one_leader()
    victim = next(i for i in c.ids if i != leader)
    c.disconnect(victim)
    c.wipe(victim, bootstrap_grace=5)
    assert c.run_until(lambda: c.core(victim).role == LEADER, 100)
    fork = c.core(victim).membership.cluster_id
    assert fork and fork != c.cluster_id
    c.connect(victim)
    c.tick(100)
    assert c.core(victim).membership.cluster_id == fork
    assert (leader, OTHER_CLUSTER) in c.nodes[victim].dropped
    main = c.core(leader)
    assert main.role == LEADER and main.membership.cluster_id == c.cluster_id
    assert main.membership.incarnations[victim] != c.nodes[victim].incarnation, "a stranger was added"
    index = main.propose(b"a=2")
    others = [i for i in c.ids if i != victim]
    assert c.run_until(lambda: all(c.nodes[i].fsm.applied_index >= index for i in others), 100)


def test_without_identity_a_wiped_voter_counted_as_its_old_self_loses_a_committed_entry() -> None:
    """x=1 is committed on the leader and one follower only; that follower loses its disk and
    the leader dies. In a legacy cluster the wiped node votes like the old voter, and the third
    node, which never had x=1, wins. With identities its vote is refused."""
    safe, leader, lagger = _lose_the_holder_of_x(identity=True)
    assert not safe.run_until(lambda: safe.core(lagger).role == LEADER, 200), "elected without x=1"
    safe.start(leader)
    safe.one(b"x=2", 2)
    legacy, _, legacy_lagger = _lose_the_holder_of_x(identity=False)
    with pytest.raises(InvariantViolation, match="leader completeness"):
        legacy.run_until(lambda: legacy.core(legacy_lagger).role == LEADER, 200)


def _lose_the_holder_of_x(identity: bool) -> tuple[SimCluster, str, str]:
    """x=1 commits on the leader and one follower while the other is cut off; then the leader
    dies and that follower loses its disk. Returns the cluster, the dead leader and the node
    that never had x=1."""
    c = SimCluster(3, seed=24, config=CONFIG, identity=identity)
    c.one(b"x=0", 3)
    leader = c.check_one_leader()
    holder, lagger = (i for i in c.ids if i != leader)
    c.disconnect(lagger)
    c.one(b"x=1", 2)
    c.crash(leader)
    c.wipe(holder)
    c.connect(lagger)
    return c, leader, lagger


def test_without_identity_a_wiped_bootstrap_node_forks_the_cluster() -> None:
    """An operator's report: a bootstrap node whose data dir was deleted founds a
    new one-voter cluster at once; with the membership policy it adds the others, who follow
    it and lose their committed entries."""
    c = SimCluster(3, seed=25, config=CONFIG, identity=False, membership_policy=True)
    for k in range(10):
        c.one(b"t%d=1" % k, 3)
    leader = c.check_one_leader()
    c.crash(leader)
    with pytest.raises(InvariantViolation):
        c.wipe(leader, bootstrap_grace=0)
        c.tick(300)


def test_member_that_missed_a_replacement_catches_up_from_the_replaced_leader() -> None:
    c = SimCluster(5, seed=26, config=CONFIG, membership_policy=True)
    c.one(b"a=1", 5)
    leader = c.check_one_leader()
    absent, replaced = [i for i in c.ids if i != leader][:2]
    c.crash(absent)
    c.wipe(replaced)
    new_life = c.nodes[replaced].incarnation
    assert c.run_until(lambda: c.core(leader).membership.incarnations.get(replaced) == new_life, 300)
    assert c.run_until(lambda: replaced in c.core(leader).membership.voters, 300)
    c.core(leader).transfer_leadership(replaced)
    assert c.run_until(lambda: c.core(replaced).role == LEADER, 100)
    c.start(absent)  # its configuration still records the old incarnation of the new leader
    final = c.one(b"a=2", 4)
    assert c.run_until(lambda: c.nodes[absent].fsm.applied_index >= final, 300)


def test_leader_does_not_ping_pong_with_a_wiped_member_whose_removal_is_pending() -> None:
    c = SimCluster(3, seed=27, config=CONFIG, membership_policy=True)
    c.one(b"a=1", 3)
    leader = c.check_one_leader()
    cut, victim = (i for i in c.ids if i != leader)
    c.net.partition([leader, victim], [cut])  # the removal cannot commit without it
    c.wipe(victim)
    sent = c.net.sent
    c.tick(50)  # "cluster did not settle" here was the ping-pong
    # A few heartbeats, appends and (once CheckQuorum steps the leader down) votes per tick;
    # the ping-pong was thousands of frames inside one tick.
    assert c.net.sent - sent < 50 * 20


def test_random_runs_with_disk_loss_keep_every_invariant() -> None:
    wiped = 0
    for seed in range(40):
        cluster = random_run(seed, disk_loss=True)
        wiped += cluster.membership_policy
    assert wiped >= 5, "too few seeds drew disk loss"


@pytest.mark.parametrize("seed", [46, 469, 502, 756])
def test_random_runs_with_disk_loss_that_met_the_identity_bugs(seed: int) -> None:
    random_run(seed, disk_loss=True)
