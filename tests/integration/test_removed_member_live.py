"""A member removed while away comes back to a full configuration (issue 20), on real processes.

3 voters (``max_voters = max_members = 3``) and a fourth node (a worker). A voter is killed;
after ``remove_dead_after`` the worker takes its seat. The killed voter is started again with
its data, and every seat is taken. Its own log either still names it a member (Raft never tells
a removed server so: having heard no leader for a while, it asks the feed and learns it) or has
its removal (frames the leader sent while it was down, queued by the transport, may reach it
when it is back). Either way it runs as a worker: its status says so and names the leader; a
read of the cluster there is refused the retryable way, naming the members; the leader's
configuration still has three members. (The asking path alone: tests/cluster/test_feed_worker.py.)
"""

from __future__ import annotations

import pytest

from orion.client import OrionError
from orion.testing.localcluster import wait_for

pytestmark = pytest.mark.cluster


def test_a_removed_member_back_to_a_full_configuration_runs_as_a_worker(make_cluster):
    cluster = make_cluster(3, settings={"raft": {"max_voters": 3, "max_members": 3}})
    extra = cluster.add_node()
    cluster.start_node(extra.index)
    leader = wait_for(cluster.leader_index, 30, what="one agreed leader")

    def members() -> set[str]:
        status = cluster.raft_status(leader)
        return set(status.voters) | set(status.non_voters)

    with cluster.client(leader) as client:
        wait_for(
            lambda: any(n.id == extra.node_id and n.status == "alive" for n in client.nodes()),
            30,
            what="the leader's gossip to see the fourth node alive",
        )
    victim = cluster.node(next(i for i in (1, 2, 3) if i != leader))
    cluster.kill(victim.index)
    wait_for(
        lambda: victim.node_id not in (m := members()) and extra.node_id in m,
        90,
        what="the dead voter's seat taken by the worker",
    )

    def promoted() -> bool:
        # The worker a voter now, every entry committed: the removal is committed too, and the
        # leader has stopped replicating to the victim.
        status = cluster.raft_status(leader)
        return (
            not status.non_voters
            and extra.node_id in status.voters
            and status.commit_index == status.last_index
        )

    wait_for(promoted, 60, what="the worker promoted and the removal committed")
    cluster.start_node(victim.index)

    def a_worker() -> bool:
        try:
            status = cluster.raft_status(victim.index)
        except OrionError:
            return False  # still starting
        return status.role == "worker" and bool(status.leader_id)

    wait_for(a_worker, 90, what="the removed member to learn it was removed and run as a worker")
    assert cluster.raft_status(victim.index).leader_id == cluster.raft_status(leader).leader_id
    with cluster.client(victim.index, retries=1) as alone, pytest.raises(OrionError) as refused:
        alone.tasks(stale=True)
    assert "worker" in str(refused.value) and cluster.node(leader).api_endpoint in str(refused.value)
    assert victim.node_id not in members() and len(members()) == 3
