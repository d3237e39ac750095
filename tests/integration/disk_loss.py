"""Helpers of the disk-loss and big-state tests: acknowledged writes, catch-up waits
that say what did not happen, and the check that no committed entry was lost anywhere."""

from __future__ import annotations

import functools
import uuid

import pytest

from orion.testing.localcluster import UNPLACEABLE, LocalCluster, wait_for

IMAGE = "orion-busybox:latest"


def submit_small(cluster: LocalCluster, count: int, prefix: str) -> list[str]:
    """``count`` unplaceable tasks, each acknowledged (a retry reuses its id)."""
    ids = []
    with cluster.client(timeout=5.0, retries=3) as client:
        for number in range(count):
            task_id = f"{prefix}-{number:03d}-{uuid.uuid4().hex[:8]}"
            submit = functools.partial(client.submit, IMAGE, id=task_id, node_selectors=UNPLACEABLE)
            wait_for(submit, 60, what=f"submit of {task_id}")
            ids.append(task_id)
    return ids


def wait_caught_up(cluster: LocalCluster, index: int, acked: list[str], timeout: float, what: str) -> None:
    """Until node ``index`` is a voter with the leader's commit index serving every acknowledged
    task from its replica; on timeout the test fails naming what was still missing."""
    gap = ["no answer yet"]

    def caught_up() -> bool:
        gap[0] = "no answer from the nodes"
        gap[0] = cluster.catch_up_gap(index, acked)
        return not gap[0]

    try:
        wait_for(caught_up, timeout, interval=0.5, what=what)
        return
    except TimeoutError as exc:
        failure = f"{exc}; still missing: {gap[0]}"
    pytest.fail(failure, pytrace=False)


def assert_nothing_lost(cluster: LocalCluster, acked: list[str], timeout: float = 60.0) -> None:
    """Every node is a voter of one configuration with the same commit index, and serves
    every acknowledged task from its own replica; a linearizable read sees them all too."""
    for node in cluster.nodes:
        wait_caught_up(cluster, node.index, acked, timeout, f"{node.node_id} to hold every acknowledged task")
    node_ids = sorted(n.node_id for n in cluster.nodes)
    seen: dict[str, tuple[int, list[str]]] = {}

    def agree() -> bool:
        for node in cluster.nodes:
            status = cluster.raft_status(node.index)
            seen[node.node_id] = (status.commit_index, sorted(status.voters))
        return len(set(map(str, seen.values()))) == 1 and next(iter(seen.values()))[1] == node_ids

    try:
        wait_for(agree, timeout, interval=0.5, what="every node to report the same commit index and voters")
        failure = ""
    except TimeoutError as exc:
        failure = f"{exc}; (commit index, voters) per node: {seen}"
    if failure:
        pytest.fail(failure, pytrace=False)
    with cluster.client(timeout=10.0, retries=3) as client:
        linearizable = {t.id for t in wait_for(client.tasks, 30, what="a linearizable task list")}
    missing = set(acked) - linearizable
    assert not missing, (
        f"{len(missing)} acknowledged tasks missing from a linearizable read: {sorted(missing)[:5]}"
    )


def stale_task_ids(cluster: LocalCluster, index: int) -> set[str]:
    with cluster.client(index, timeout=10.0, retries=1) as client:
        return {t.id for t in client.tasks(stale=True)}
