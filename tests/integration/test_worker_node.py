"""A real node beyond ``[raft] max_members`` is a worker (issue 20): no replica of the log, its
tasks come through the worker feed, and it runs them in Docker and reports them to the leader
the feed names. A 4-node cluster with ``max_members = 3``: node 4 never enters the configuration.

The task mounts a cluster volume (local driver): the worker reads its record from the feed,
makes it and reports it ready; its logs are served by the worker itself; cluster-wide reads on
the worker, linearizable or stale, are refused naming the members' API endpoints, and the CLI
with the worker listed first moves on to a member; once the volume is removed, the worker
deletes its data (the removal reached it through the feed) and the record is purged.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

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


def _voters(cluster: LocalCluster) -> set[str]:
    leader = cluster.leader_index()
    return set() if leader is None else set(cluster.raft_status(leader).voters)


def _formed(cluster: LocalCluster, worker_id: str) -> bool:
    leader = cluster.leader_index()
    if leader is None:
        return False
    status = cluster.raft_status(leader)
    if len(status.voters) != 3 or worker_id in status.voters or worker_id in status.non_voters:
        return False
    with cluster.client(leader) as client:
        return any(n.id == worker_id and n.status == "alive" for n in client.nodes())


@pytest.fixture
def volumes_removed() -> Iterator[list[LocalCluster]]:
    """Clusters whose Docker volumes are removed after the test (closed first: their nodes
    would start the containers holding them again)."""
    clusters: list[LocalCluster] = []
    yield clusters
    engine = docker.from_env()
    try:
        for cluster in clusters:
            cluster.close()
            for volume in engine.volumes.list():
                if volume.name.startswith(f"orion-{cluster.prefix}"):
                    with contextlib.suppress(docker.errors.APIError):
                        volume.remove(force=True)
    finally:
        engine.close()


def test_a_node_beyond_max_members_runs_its_tasks_as_a_worker(make_cluster, volumes_removed):
    cluster = make_cluster(
        WORKER,
        start=False,
        settings={"raft": {"max_voters": 3, "max_members": 3}},
        per_node={WORKER: {"tags": {"place": "worker"}}},
    )
    volumes_removed.append(cluster)
    # The first three to join gossip become the members, in whatever order their joins are
    # answered (a seed answers once it has bootstrapped): node 4 starts after they formed.
    for index in range(1, WORKER):
        cluster.start_node(index)
    members = {cluster.node(index).node_id for index in range(1, WORKER)}
    wait_for(lambda: _voters(cluster) == members, 90, what="nodes 1-3 the voters")
    cluster.start_node(WORKER)
    worker_id = cluster.node(WORKER).node_id
    wait_for(lambda: _formed(cluster, worker_id), 90, what="3 voters, and node 4 alive outside them")

    volume = f"{cluster.prefix}-wdata"
    with cluster.client(1, 2, 3) as client:
        client.create_volume(volume)
        task = client.submit(
            IMAGE,
            command=["sh", "-c", "echo hello-from-the-worker; echo kept > /data/f; sleep 3600"],
            node_selectors={"place": "worker"},
            volumes={volume: "/data"},
        )

        def running() -> bool:
            seen = client.task(task.id, stale=True)
            return seen.state == "Running" and seen.node_id == worker_id

        wait_for(running, 120, what=f"task {task.id} Running on the worker {worker_id}")
        made = client.volume(volume, stale=True).volume
        assert (made.node_id, made.state) == (worker_id, "ready")
    engine = docker.from_env()
    try:
        [container] = containers_of(engine, task.id)
        assert container.labels.get("orion.node.id") == worker_id
        assert [m["Name"] for m in container.attrs["Mounts"] if m["Destination"] == "/data"] == [made.source]
    finally:
        engine.close()

    # `orion task ls` against the voters lists it Running.
    voters = ",".join(cluster.node(i).api_endpoint for i in (1, 2, 3))
    listing = _orion(cluster, "--endpoints", voters, "task", "ls")
    assert listing.returncode == 0, listing.stderr
    [line] = [line for line in listing.stdout.splitlines() if task.id[:8] in line]
    assert "Running" in line

    # The worker holds only its own tasks: a cluster-wide read there, linearizable or stale, is
    # refused (retryable), naming the members' API endpoints, so a client moves on to another.
    member_api = cluster.node(1).api_endpoint
    with cluster.client(WORKER, retries=1) as alone:
        for stale in (False, True):
            with pytest.raises(OrionError) as refused:
                alone.tasks(stale=stale)
            assert "worker" in str(refused.value) and member_api in str(refused.value)
        # What concerns the node itself it serves: its status, its own task's logs.
        status = alone.raft()
        assert status.role == "worker" and status.leader_id in {cluster.node(i).node_id for i in (1, 2, 3)}
        assert "hello-from-the-worker" in "".join(alone.logs(task.id))
        # A submit through it goes to the leader the feed names.
        parked = alone.submit(IMAGE, command=["true"], node_selectors={"role": "nowhere"})
    with cluster.client(1, 2, 3) as client:
        assert client.task(parked.id).state == "Pending"
    worker_first = ",".join(cluster.node(i).api_endpoint for i in (WORKER, 1, 2, 3))
    listing = _orion(cluster, "--endpoints", worker_first, "task", "ls")
    assert listing.returncode == 0, listing.stderr
    assert any(task.id[:8] in line and "Running" in line for line in listing.stdout.splitlines())
    rest = f"http://127.0.0.1:{cluster.node(WORKER).http_port}"
    with pytest.raises(urllib.error.HTTPError) as unavailable:
        urllib.request.urlopen(
            urllib.request.Request(f"{rest}/tasks?stale=true", headers=cluster.auth_headers()), timeout=10
        )
    assert unavailable.value.code == 503 and b"worker" in unavailable.value.read()
    with urllib.request.urlopen(
        urllib.request.Request(f"{rest}/health", headers=cluster.auth_headers()), timeout=10
    ) as health:
        assert json.load(health)["status"] == "ok"

    # Stopped through a voter: the feed tells the worker, which stops the container.
    with cluster.client(1, 2, 3) as client:
        client.stop(task.id)
    engine = docker.from_env()
    try:
        wait_for(lambda: not containers_of(engine, task.id), 60, what="the worker stops the container")
        # Removed: the record says removing until the worker deleted the data (it heard of the
        # removal through the feed: no task of it changed) and purged it.
        with cluster.client(1, 2, 3) as client:
            client.remove_volume(volume)

            def purged() -> bool:
                return all(v.volume.name != volume for v in client.volumes(stale=True))

            wait_for(purged, 60, what=f"volume {volume} deleted by the worker and purged")
        assert not [v for v in engine.volumes.list() if v.name == made.source]
    finally:
        engine.close()
