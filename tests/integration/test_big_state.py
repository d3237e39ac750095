"""Catch-up with a big state. A wiped follower catches up through a snapshot of more
than 50 MB (streamed in chunks: one InstallSnapshot frame of that size used to be dropped by
the transport's 8 MiB frame limit, forever); a follower 20 MB of entries behind catches up
(AppendEntries bounded in bytes: one batch of 20 MB used to be dropped the same way).

The state is made of unplaceable tasks with ~0.9 MB of env each (a request is at most
``max_request``, 1 MiB), so no container starts."""

from __future__ import annotations

import pytest

from orion.testing.localcluster import wait_for
from tests.integration.disk_loss import assert_nothing_lost, submit_small, wait_caught_up

pytestmark = pytest.mark.cluster

SNAPSHOT_STATE_MB = 52
LAG_MB = 20
# Lag entries of 100 KB: more than the leader pipelines to a silent follower (max_inflight
# appends), so the rest must be re-sent as batches after the outage, and those must be
# bounded in bytes to pass the transport's frame limit.
LAG_ENTRY_BYTES = 100_000
CATCH_UP_S = 240.0


def test_wiped_follower_catches_up_through_a_50mb_snapshot(make_cluster):
    # A snapshot every 16 entries and few entries kept behind it: the leader no longer holds
    # the log from index 1, so the wiped follower can only catch up by a snapshot.
    cluster = make_cluster(
        3, settings={"raft": {"snapshot_threshold": 16, "snapshot_log_ratio": 0, "trailing_entries": 16}}
    )
    acked = submit_small(cluster, 5, "small")
    acked += cluster.fill_state(SNAPSHOT_STATE_MB, prefix="big")
    leader = cluster.leader_index()
    assert leader is not None
    follower = next(n.index for n in cluster.nodes if n.index not in (leader, 1))
    wait_caught_up(cluster, follower, acked, CATCH_UP_S, "the follower to hold the state before the wipe")

    cluster.wipe(follower)
    wait_caught_up(
        cluster,
        follower,
        acked,
        CATCH_UP_S,
        f"wiped follower {cluster.node(follower).node_id} to catch up through a snapshot of "
        f"{SNAPSHOT_STATE_MB} MiB and serve all {len(acked)} acknowledged tasks",
    )
    acked += submit_small(cluster, 2, "after")
    assert_nothing_lost(cluster, acked, timeout=CATCH_UP_S)


@pytest.mark.parametrize("outage", ["kill", "pause"])
def test_follower_lagging_by_20mb_of_entries_catches_up(make_cluster, outage: str):
    # No snapshot during the test (the leader keeps every entry the follower lacks), and the
    # follower is not removed from the configuration while it is away.
    cluster = make_cluster(3, settings={"raft": {"snapshot_threshold": 100_000, "remove_dead_after": "600s"}})
    acked = submit_small(cluster, 5, "small")
    leader = cluster.leader_index()
    assert leader is not None
    follower = next(n.index for n in cluster.nodes if n.index != leader)
    before = cluster.raft_status(follower)
    if outage == "kill":
        cluster.kill(follower)
    else:
        cluster.pause(follower)
    try:
        others = tuple(n.index for n in cluster.nodes if n.index != follower)
        acked += cluster.fill_state(LAG_MB, entry_bytes=LAG_ENTRY_BYTES, prefix="lag", via=others)
    finally:
        if outage == "kill":
            cluster.start_node(follower)
        else:
            cluster.resume(follower)
    wait_for(
        lambda: cluster.raft_status(follower),
        60,
        what=f"follower {cluster.node(follower).node_id} to answer after its outage",
    )
    wait_caught_up(
        cluster,
        follower,
        acked,
        CATCH_UP_S,
        f"follower {cluster.node(follower).node_id} ({outage}, commit index {before.commit_index} "
        f"before) to catch up {LAG_MB} MiB of entries",
    )
    assert_nothing_lost(cluster, acked, timeout=CATCH_UP_S)
