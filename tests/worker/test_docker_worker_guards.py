"""Two guards of the Docker worker that a one-line slip would drop, checked on the real engine:
a container is only touched when its labels say it is this node's, and a task's memory limit
leaves it no swap on top."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest

from orion.model import Task
from orion.worker import DockerWorker, WorkerError, container_name

pytestmark = pytest.mark.docker

IMAGE = "orion-busybox:latest"
MiB = 1024**2


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    client.ping()  # Docker must answer: this test fails rather than skips
    client.images.get(IMAGE)  # built by tools/docker_setup.py; never pulled
    yield client
    client.close()


@pytest.fixture
def worker(engine: docker.DockerClient) -> Iterator[DockerWorker]:
    """A node of its own on the engine; every container labelled with its id removed afterwards."""
    node_id = f"guard-{uuid.uuid4().hex[:10]}"
    yield DockerWorker(node_id, stop_timeout=1.0, client=engine, cluster_id=uuid.uuid4().hex)
    for container in engine.containers.list(all=True, filters={"label": f"orion.node.id={node_id}"}):
        container.remove(force=True)


def sleeper(task_id: str, **fields: object) -> Task:
    return Task(id=task_id, name=task_id, image=IMAGE, command=["sleep", "300"], **fields)


def test_a_container_with_our_name_but_another_nodes_label_is_never_touched(
    worker: DockerWorker, engine: docker.DockerClient
) -> None:
    """The lookup goes by name, which anyone can take: the owner label must match too, or the
    worker would adopt, stop and remove another node's container that happens to bear it."""
    stranger = engine.containers.run(
        IMAGE,
        ["sleep", "300"],
        detach=True,
        name=container_name(worker.node_id, "t1", worker.cluster_id),
        labels={
            "orion.task.id": "t1",
            "orion.node.id": f"{worker.node_id}-elsewhere",
            "orion.managed": "1",
            "orion.cluster.id": worker.cluster_id,
        },
    )
    try:
        for touch in (
            lambda: worker.inspect("t1"),
            lambda: worker.stop("t1"),
            lambda: worker.halt("t1"),
            lambda: worker.start(sleeper("t1")),
        ):
            with pytest.raises(WorkerError, match="not managed by"):
                touch()
        stranger.reload()
        assert stranger.status == "running"
        assert worker.list_managed() == []
    finally:
        stranger.remove(force=True)


def test_the_memory_limit_allows_no_swap_on_top(worker: DockerWorker, engine: docker.DockerClient) -> None:
    info = worker.start(sleeper("capped", memory=64 * MiB))
    host = engine.api.inspect_container(info.container_id)["HostConfig"]
    assert host["Memory"] == 64 * MiB
    assert host["MemorySwap"] == host["Memory"]  # memory + swap = memory: no swap at all


def test_a_local_engine_client_reads_no_proxy_or_netrc_from_the_environment(
    engine: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's own client of a unix-socket engine skips requests' environment lookups (every
    call scanned the proxy variables and stat'ed ~/.netrc), and still works with a proxy set
    that could never apply to a unix socket; a client handed in is left as it was given."""
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")  # a closed port: any use would fail
    node_id = f"guard-{uuid.uuid4().hex[:10]}"
    own = DockerWorker(node_id, cluster_id=uuid.uuid4().hex)
    try:
        assert str(own.client.api.base_url).startswith("http+docker://")
        assert own.client.api.trust_env is False
        assert own.list_managed() == []
    finally:
        own.client.close()
    given = DockerWorker(node_id, client=engine, cluster_id=uuid.uuid4().hex)
    assert given.client is engine and engine.api.trust_env is True
