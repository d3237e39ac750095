"""Cluster volumes on real `orion node` processes and real Docker (issue 18).

- a task writes a file to a volume, a later task mounts it and reads it; the node process is
  killed and restarted (the whole one-node cluster) and the data is still there;
- a second single-writer user waits Pending with the volume's reason; ``rm`` while in use is
  refused; once unused, ``rm`` deletes the Docker volume;
- a 1-replica service with a volume updates to a new image (stop-first) and keeps its data;
- bad specs: unknown driver, a host path outside ``[volumes] host_paths``, a missing volume;
- the CLI on the same cluster: ``orion volume create``, ``orion task submit -v``, ``orion volume
  rm`` refused (exit 1) while the task mounts it.

Volumes are named with the cluster's random prefix; the fixture removes their Docker volumes
(and the image tag it makes) even when a test fails. Containers go with the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from orion.cli import EXIT_CLUSTER_ERROR
from orion.client import Conflict, InvalidRequest
from orion.testing.localcluster import LocalCluster, wait_for
from tests.integration.conftest import containers_of
from tests.integration.services_support import orion

pytestmark = [pytest.mark.cluster, pytest.mark.docker]

IMAGE = "orion-busybox:latest"


@pytest.fixture
def volume_cleanup(docker_engine: docker.DockerClient) -> Iterator[list[LocalCluster]]:
    """Clusters whose Docker volumes (and image tag) are removed after the test: the cluster is
    closed first (its nodes would start the containers that hold the volumes again)."""
    clusters: list[LocalCluster] = []
    yield clusters
    for cluster in clusters:
        cluster.close()
        for volume in docker_engine.volumes.list():
            if volume.name.startswith(f"orion-{cluster.prefix}"):
                try:
                    volume.remove(force=True)
                except docker.errors.APIError:
                    pass
        # Only this tag: the image's other tags (orion-busybox:latest) are shared.
        try:
            docker_engine.images.remove(f"{cluster.prefix}-busybox:v2", noprune=True)
        except docker.errors.ImageNotFound:
            pass


def _logs(engine: docker.DockerClient, task_id: str) -> str:
    containers = containers_of(engine, task_id, running_only=False)
    return containers[0].logs().decode() if containers else ""


def _state(cluster: LocalCluster, task_id: str) -> tuple[str, str]:
    with cluster.client() as client:
        task = client.task(task_id)
    return task.state, task.reason


def test_data_outlives_tasks_and_a_node_restart(make_cluster, docker_engine, volume_cleanup):
    cluster = make_cluster(1)
    volume_cleanup.append(cluster)
    name = f"{cluster.prefix}-data"
    with cluster.client() as client:
        client.create_volume(name)
        writer = client.submit(IMAGE, command=["sh", "-c", "echo kept > /data/f"], volumes={name: "/data"})
        done = client.wait(writer.id, "Stopped", timeout=60)
        assert done.exit_code == 0, done
        reader = client.submit(
            IMAGE, command=["sh", "-c", "cat /data/f; sleep 3600"], volumes={name: "/data"}
        )
        client.wait(reader.id, "Running", timeout=60)
        wait_for(lambda: "kept" in _logs(docker_engine, reader.id), 30, what="the reader printed the file")
        # A second writer of the single-writer volume waits, saying why.
        second = client.submit(IMAGE, command=["sleep", "3600"], volumes={name: "/data"})
        reason = wait_for(
            lambda: (
                (t := client.task(second.id)).state == "Pending" and "single-writer" in t.reason and t.reason
            ),
            30,
            what="the second writer pending on the volume",
        )
        assert f"volume {name} is single-writer and in use by task {reader.id}" == reason
        with pytest.raises(Conflict, match=f"volume {name} is in use by 2 task"):
            client.remove_volume(name)
        info = client.volume(name)
        assert info.volume.state == "ready" and info.volume.node_id == cluster.node(1).node_id
        assert sorted(info.users) == sorted([reader.name, second.name])
    cluster.kill(1)
    cluster.start_node(1)
    cluster.wait_ready(60)
    with cluster.client(timeout=10) as client:
        assert client.volume(name).volume.state == "ready"
        client.stop(reader.id)
        client.stop(second.id)
        after = client.submit(IMAGE, command=["sh", "-c", "cat /data/f; sleep 3600"], volumes={name: "/data"})
        client.wait(after.id, "Running", timeout=60)
        wait_for(lambda: "kept" in _logs(docker_engine, after.id), 30, what="the data after the restart")
        client.stop(after.id)
        source = client.volume(name).volume.source
        wait_for(lambda: client.task(after.id).state == "Stopped", 30, what="the last user stopped")
        assert client.remove_volume(name).state == "removing"
        wait_for(lambda: name not in {v.volume.name for v in client.volumes()}, 30, what="the volume purged")
    with pytest.raises(docker.errors.NotFound):
        docker_engine.volumes.get(source)


def test_a_service_with_a_volume_updates_and_keeps_its_data(make_cluster, docker_engine, volume_cleanup):
    cluster = make_cluster(1)
    volume_cleanup.append(cluster)
    name = f"{cluster.prefix}-db"
    new_image = f"{cluster.prefix}-busybox:v2"
    docker_engine.images.get(IMAGE).tag(new_image)
    script = ["sh", "-c", "echo started >> /data/log; cat /data/log; sleep 3600"]
    with cluster.client() as client:
        client.create_volume(name)
        client.create_service("db", IMAGE, command=script, volumes={name: "/data"}, replicas=1)

        def running_task(image: str):
            tasks = [t for t in client.service_tasks("db") if t.state == "Running" and t.image == image]
            return tasks[0] if tasks else None

        first = wait_for(lambda: running_task(IMAGE), 60, what="the first replica running")
        wait_for(lambda: "started" in _logs(docker_engine, first.id), 30, what="the first replica wrote")
        client.update_service("db", image=new_image)
        second = wait_for(lambda: running_task(new_image), 90, what="the replica on the new image")
        # The new replica read the old one's line and added its own: the data was kept.
        wait_for(
            lambda: _logs(docker_engine, second.id).count("started") == 2, 30, what="two lines in the log"
        )
        # Stop-first: the old replica was stopped before the new one was placed.
        old = client.task(first.id)
        assert old.state == "Stopped"
        assert old.updated_at <= second.created_at


def test_bad_specs_get_clear_errors(make_cluster, docker_engine, volume_cleanup, tmp_path: Path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    cluster = make_cluster(1, start=False, settings={"volumes": {"host_paths": [str(allowed)]}})
    cluster.start(timeout=60)
    volume_cleanup.append(cluster)
    with cluster.client() as client:
        with pytest.raises(InvalidRequest, match="driver: unknown volume driver 'ceph'"):
            client.create_volume(f"{cluster.prefix}-x", driver="ceph")
        with pytest.raises(InvalidRequest, match=f"volume {cluster.prefix}-missing does not exist"):
            client.submit(IMAGE, command=["true"], volumes={f"{cluster.prefix}-missing": "/data"})
        etc = f"{cluster.prefix}-etc"
        client.create_volume(etc, options={"type": "none", "o": "bind", "device": "/etc"})
        task = client.submit(IMAGE, command=["ls", "/data"], volumes={etc: "/data"})
        reason = wait_for(
            lambda: "not allowed" in (r := client.task(task.id).reason) and r,
            60,
            what="the host path refused",
        )
        assert f"host path /etc is not allowed on this node ([volumes] host_paths: {allowed})" in reason
        client.stop(task.id)
        ok = f"{cluster.prefix}-ok"
        client.create_volume(ok, options={"type": "none", "o": "bind", "device": str(allowed)})
        (allowed / "hello").write_text("from the host\n")
        reader = client.submit(
            IMAGE, command=["sh", "-c", "cat /data/hello; sleep 3600"], volumes={ok: "/data:ro"}
        )
        client.wait(reader.id, "Running", timeout=60)
        wait_for(lambda: "from the host" in _logs(docker_engine, reader.id), 30, what="the allowed host path")
    # The same through the CLI: create, mount with -v, and rm refused while mounted.
    cli_volume = f"{cluster.prefix}-cli"
    created = json.loads(
        orion(cluster, "--json", "volume", "create", cli_volume, "--opt", "type=tmpfs").stdout
    )
    assert (created["name"], created["spec"]["options"]) == (cli_volume, {"type": "tmpfs"})
    submitted = orion(
        cluster,
        "--json",
        "task",
        "submit",
        IMAGE,
        "-v",
        f"{cli_volume}:/data",
        "--",
        "sh",
        "-c",
        "echo via-cli > /data/f; cat /data/f; sleep 3600",
    )
    task_id = json.loads(submitted.stdout)["id"]
    with cluster.client() as client:
        client.wait(task_id, "Running", timeout=60)
    wait_for(
        lambda: "via-cli" in _logs(docker_engine, task_id), 30, what="the task wrote to the CLI's volume"
    )
    refused = orion(cluster, "volume", "rm", cli_volume, check=False)
    assert (
        refused.returncode == EXIT_CLUSTER_ERROR
        and f"volume {cli_volume} is in use by 1 task" in refused.stderr
    )
    listed = {v["volume"]["name"]: v for v in json.loads(orion(cluster, "--json", "volume", "ls").stdout)}
    assert listed[cli_volume]["volume"]["state"] == "ready" and len(listed[cli_volume]["users"]) == 1
