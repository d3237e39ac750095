"""A real node beyond ``[raft] max_members`` is a worker (issue 20): no replica of the log, its
tasks come through the worker feed, and it runs them in Docker and reports them to the leader
the feed names. A 4-node cluster with ``max_members = 3``: node 4 never enters the configuration."""

from __future__ import annotations

import os
import subprocess
import sys

import docker
import pytest

from orion.client import OrionError
from orion.testing.localcluster import LocalCluster, wait_for
from tests.integration.conftest import containers_of

pytestmark = [pytest.mark.cluster, pytest.mark.docker]
IMAGE = "orion-busybox:latest"
WORKER = 4


def _orion(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cluster.client_env()}
    return subprocess.run(
        [sys.executable, "-m", "orion", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _formed(cluster: LocalCluster, worker_id: str) -> bool:
    leader = cluster.leader_index()
    if leader is None:
        return False
    status = cluster.raft_status(leader)
    if len(status.voters) != 3 or worker_id in status.voters or worker_id in status.non_voters:
        return False
    with cluster.client(leader) as client:
        return any(n.id == worker_id and n.status == "alive" for n in client.nodes())


def test_a_node_beyond_max_members_runs_its_tasks_as_a_worker(make_cluster):
    cluster = make_cluster(
        WORKER,
        start=False,
        settings={"raft": {"max_voters": 3, "max_members": 3}},
        per_node={WORKER: {"tags": {"place": "worker"}}},
    )
    for index in range(1, WORKER + 1):
        cluster.start_node(index)
    worker_id = cluster.node(WORKER).node_id
    wait_for(lambda: _formed(cluster, worker_id), 90, what="3 voters, and node 4 alive outside them")

    with cluster.client(1, 2, 3) as client:
        task = client.submit(IMAGE, command=["sleep", "3600"], node_selectors={"place": "worker"})

        def running() -> bool:
            seen = client.task(task.id, stale=True)
            return seen.state == "Running" and seen.node_id == worker_id

        wait_for(running, 120, what=f"task {task.id} Running on the worker {worker_id}")
    engine = docker.from_env()
    try:
        [container] = containers_of(engine, task.id)
        assert container.labels.get("orion.node.id") == worker_id
    finally:
        engine.close()

    # `orion task ls` against the voters lists it Running.
    voters = ",".join(cluster.node(i).api_endpoint for i in (1, 2, 3))
    listing = _orion(cluster, "--endpoints", voters, "task", "ls")
    assert listing.returncode == 0, listing.stderr
    [line] = [line for line in listing.stdout.splitlines() if task.id[:8] in line]
    assert "Running" in line

    # The worker holds only its own tasks: a cluster-wide read there is refused (retryable),
    # naming the members, so a client moves on to another endpoint.
    with cluster.client(WORKER, retries=1) as alone, pytest.raises(OrionError) as refused:
        alone.tasks()
    assert "worker" in str(refused.value)

    # Stopped through a voter: the feed tells the worker, which stops the container.
    with cluster.client(1, 2, 3) as client:
        client.stop(task.id)
    engine = docker.from_env()
    try:
        wait_for(lambda: not containers_of(engine, task.id), 60, what="the worker stops the container")
    finally:
        engine.close()
