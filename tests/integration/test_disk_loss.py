"""A node that loses its data dir and is started again with the same config rejoins
the cluster as a new incarnation and catches up; it never founds a second cluster that the
others follow, and no acknowledged write is lost anywhere. Real ``orion node`` processes,
real DuckDB files; the tasks are unplaceable, so no container starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orion.raft.duckdb_store import DuckDBStore
from orion.testing.localcluster import LocalCluster, wait_for
from tests.integration.disk_loss import (
    assert_nothing_lost,
    stale_task_ids,
    submit_small,
    wait_caught_up,
)

pytestmark = pytest.mark.cluster

CATCH_UP_S = 120.0


def stored_incarnation(store_path: Path) -> str | None:
    store = DuckDBStore(store_path)
    try:
        store.load()
        return store.load_identity()
    finally:
        store.close()


def gossip_status(cluster: LocalCluster, index: int, node_id: str) -> str:
    with cluster.client(index, timeout=3.0, retries=1) as client:
        return next((n.status for n in client.nodes(stale=True) if n.id == node_id), "unknown")


def assert_same_tasks_everywhere(cluster: LocalCluster, acked: list[str]) -> None:
    """Nothing but the acknowledged tasks were written, so every replica holds exactly them."""
    for node in cluster.nodes:
        held = stale_task_ids(cluster, node.index)
        assert held == set(acked), (
            f"{node.node_id} holds {len(held)} tasks, expected the {len(acked)} acknowledged ones: "
            f"missing {sorted(set(acked) - held)[:5]}, unexpected {sorted(held - set(acked))[:5]}"
        )


def test_wiped_follower_rejoins_and_serves_every_acknowledged_task(make_cluster):
    cluster = make_cluster(3)
    acked = submit_small(cluster, 20, "before")
    leader = cluster.leader_index()
    assert leader is not None
    # A follower that is not the bootstrap node: this test is about the plain rejoin path.
    follower = next(n.index for n in cluster.nodes if n.index not in (leader, 1))
    cluster.wipe(follower)
    acked += submit_small(cluster, 5, "during")
    wait_caught_up(
        cluster,
        follower,
        acked,
        CATCH_UP_S,
        f"wiped follower {cluster.node(follower).node_id} to rejoin as a voter with the leader's "
        f"commit index and serve all {len(acked)} acknowledged tasks from its replica",
    )
    acked += submit_small(cluster, 3, "after")
    assert_nothing_lost(cluster, acked)
    assert_same_tasks_everywhere(cluster, acked)


@pytest.mark.parametrize("node1_role", ["leader", "follower"])
def test_wiped_bootstrap_node_rejoins_and_never_forks(make_cluster, tmp_path: Path, node1_role: str):
    cluster = make_cluster(3)
    first = cluster.node(1)
    if node1_role == "follower" and cluster.leader_index() == 1:
        # A graceful stop hands leadership over; node 1 comes back as a follower.
        cluster.stop_node(1)
        wait_for(lambda: cluster.leader_index() not in (None, 1), 30, what="a leader other than node 1")
        cluster.start_node(1)
        cluster.wait_ready(60)
        # The others held node 1 "left": wait until their gossip sees it alive again, so the
        # wipe below hits a settled follower (not a node still rejoining after its leave).
        wait_for(
            lambda: all(gossip_status(cluster, i, first.node_id) == "alive" for i in (2, 3)),
            60,
            what="nodes 2 and 3 to see node 1 alive again after its restart",
        )
    acked = submit_small(cluster, 20, "before")
    wait_for(
        lambda: (leader := cluster.leader_index()) is not None and (leader == 1) == (node1_role == "leader"),
        30,
        what=f"node 1 to be the {node1_role}",
    )
    others = [n.index for n in cluster.nodes if n.index != 1]
    before = {i: cluster.raft_status(i) for i in others}

    cluster.kill(1)
    old_data = tmp_path / "node1-before-wipe"
    shutil.copytree(first.data_dir, old_data)  # the store and its WAL, for the incarnation it held
    cluster.wipe(1)  # same config: bootstrap = true, no join list

    # While node 1 rejoins, nodes 2 and 3 may follow it only once it holds what they hold:
    # following an empty node 1 is the fork the identity checks prevent (its short log overwrites theirs).
    forks: list[str] = []

    def rejoined_without_fork() -> bool:
        for index in others:
            status = cluster.raft_status(index)
            # Right after the kill a follower may still name the old node 1 as leader of the
            # term it led; a fork is node 1 leading a later term while it lacks the state.
            if status.leader_id == first.node_id and status.term > before[index].term:
                lacking = set(acked) - stale_task_ids(cluster, 1)
                if lacking:
                    forks.append(
                        f"{status.node_id} follows the wiped {first.node_id} in term {status.term} "
                        f"(was term {before[index].term}, leader {before[index].leader_id}) while "
                        f"{first.node_id} lacks {len(lacking)} of the {len(acked)} acknowledged tasks: "
                        "a second cluster"
                    )
                    return True
            if status.term < before[index].term:
                forks.append(f"{status.node_id}'s term went back from {before[index].term} to {status.term}")
                return True
        return not cluster.catch_up_gap(1, acked)

    failure = ""
    try:
        wait_for(rejoined_without_fork, CATCH_UP_S, interval=0.3, what="the wiped bootstrap node to rejoin")
    except TimeoutError as exc:
        failure = f"{exc}; node 1 still lacks: {cluster.catch_up_gap(1, acked)}"
    if forks or failure:
        pytest.fail(forks[0] if forks else failure, pytrace=False)
    acked += submit_small(cluster, 3, "after")
    assert_nothing_lost(cluster, acked)
    assert_same_tasks_everywhere(cluster, acked)

    for node in cluster.nodes:
        cluster.stop_node(node.index)
    old = stored_incarnation(old_data / "raft.duckdb")
    new = stored_incarnation(first.data_dir / "raft.duckdb")
    assert old and new and old != new, f"node 1 should rejoin as a new incarnation: before {old}, after {new}"
