"""``[raft] max_members`` on real node processes (issue 20): a node beyond the cap stays out of
the Raft configuration (a worker), and takes the seat of a member that died once its grace
(``remove_dead_after``, 10 s in LocalCluster) has passed, even with every seat a voter's."""

from __future__ import annotations

import pytest

from orion.testing.localcluster import wait_for

pytestmark = pytest.mark.cluster


def test_a_node_beyond_max_members_takes_a_dead_voters_seat(make_cluster):
    cluster = make_cluster(3, settings={"raft": {"max_voters": 3, "max_members": 3}})
    extra = cluster.add_node()
    cluster.start_node(extra.index)
    leader = wait_for(cluster.leader_index, 30, what="one agreed leader")

    def members() -> set[str]:
        status = cluster.raft_status(leader)
        found = set(status.voters) | set(status.non_voters)
        assert len(found) <= 4, found  # the cap, and at most the one standby a dead voter waits for
        return found

    with cluster.client(leader) as client:
        wait_for(
            lambda: any(n.id == extra.node_id and n.status == "alive" for n in client.nodes()),
            30,
            what="the leader's gossip to see the fourth node alive",
        )
    assert extra.node_id not in members()  # the configuration is full: it stays a worker

    victim = cluster.node(next(i for i in (1, 2, 3) if i != leader))
    cluster.kill(victim.index)
    wait_for(
        lambda: victim.node_id not in (m := members()) and extra.node_id in m,
        90,
        what="the dead voter's seat taken by the worker",
    )

    def voters() -> list[str] | None:
        status = cluster.raft_status(leader)
        return sorted(status.voters) if not status.non_voters and len(status.voters) == 3 else None

    expected = sorted(n.node_id for n in cluster.nodes if n.index not in (victim.index,))
    assert wait_for(voters, 30, what="the worker promoted") == expected
    # A member now, it serves the cluster's reads from its own replica: a follower gets no Tick
    # while heartbeats come, and the feed it watched as a worker must not keep it refusing them.
    with cluster.client(extra.index) as client:
        wait_for(
            lambda: {n.id for n in client.nodes(stale=True)} >= set(expected),
            30,
            what="the former worker to serve the cluster's reads",
        )
