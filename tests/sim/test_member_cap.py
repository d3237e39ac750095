"""The membership policy's cap (``[raft] max_members``, issue 20) in the simulator: nodes
beyond it stay workers (outside every node's configuration), and a dead member's seat goes to
a live worker once the grace has passed, with every committed entry kept."""

from __future__ import annotations

from orion.raft.core import RaftConfig
from orion.sim.raft_cluster import SimCluster

CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2)


def _members_everywhere(c: SimCluster) -> int:
    """The largest configuration any running node holds."""
    return max(len(node.core.membership.all_ids()) for node in c.nodes.values() if node.core is not None)


def test_nodes_beyond_the_cap_stay_workers_until_a_dead_members_seat_frees() -> None:
    c = SimCluster(3, seed=31, config=CONFIG, membership_policy=True)
    c.max_members = 4
    c.remove_after = 40.0
    c.one(b"a=1", 3)
    for node_id in ("n4", "n5", "n6"):
        c.add_node(node_id)
    leader = c.check_one_leader()
    assert c.run_until(lambda: "n4" in c.core(leader).membership.all_ids(), 300)
    for _ in range(100):  # the cap holds on every node, tick after tick
        c.tick()
        assert _members_everywhere(c) <= 4
    membership = c.core(leader).membership
    assert set(membership.all_ids()) == {"n1", "n2", "n3", "n4"}
    assert set(membership.voters) == {"n1", "n2", "n3"}  # max_voters stays 3 (the founders)

    victim = next(i for i in ("n1", "n2", "n3") if i != leader)
    c.crash(victim)
    # Once the grace has passed the dead voter leaves (n4, caught up, can take its seat), the
    # lowest worker fills the member seat, and a caught-up standby fills the voter seat.
    assert c.run_until(lambda: victim not in c.core(c.check_one_leader()).membership.all_ids(), 500)
    assert c.run_until(lambda: "n5" in c.core(c.check_one_leader()).membership.all_ids(), 300)
    assert c.run_until(lambda: len(c.core(c.check_one_leader()).membership.voters) == 3, 300)
    final = c.one(b"a=2", 3)
    assert c.run_until(lambda: c.nodes["n5"].fsm.applied_index >= final, 300)
    assert c.nodes["n5"].fsm.read(b"a") == b"2"
    assert "n6" not in c.core(c.check_one_leader()).membership.all_ids()
    assert _members_everywhere(c) <= 4


def test_with_every_seat_a_voter_a_dead_voters_seat_still_goes_to_a_worker() -> None:
    """max_members == max_voters: the floor keeps the dead voter until a standby is caught up,
    and the standby joins on the seat the dead voter no longer holds once its grace passed."""
    c = SimCluster(3, seed=32, config=CONFIG, membership_policy=True)
    c.max_members = 3
    c.remove_after = 40.0
    c.one(b"a=1", 3)
    for node_id in ("n4", "n5"):
        c.add_node(node_id)
    c.tick(100)
    assert _members_everywhere(c) == 3
    victim = next(i for i in ("n1", "n2", "n3") if i != c.check_one_leader())
    c.crash(victim)

    def replaced() -> bool:
        membership = c.core(c.check_one_leader()).membership
        return victim not in membership.all_ids() and len(membership.voters) == 3

    assert c.run_until(replaced, 1000)
    membership = c.core(c.check_one_leader()).membership
    assert set(membership.voters) == ({"n1", "n2", "n3", "n4"} - {victim}) and not membership.non_voters
    final = c.one(b"a=2", 3)
    assert c.run_until(lambda: c.nodes["n4"].fsm.applied_index >= final, 300)
    assert "n5" not in c.core(c.check_one_leader()).membership.all_ids()
