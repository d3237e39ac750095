"""A task's ``stop_grace`` (orion/worker/docker_worker.py): its container gets that long
between SIGTERM and SIGKILL, whatever the node's ``stop_timeout``; without one, the node's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest

from orion.model import Task
from orion.worker import DockerWorker

pytestmark = pytest.mark.docker

IMAGE = "orion-busybox:latest"
# Shuts down in about a second once asked to (SIGTERM), exiting 0: killed before that, 137.
SLOW_SHUTDOWN = ["sh", "-c", "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.1; done"]


@pytest.fixture
def worker() -> Iterator[DockerWorker]:
    client = docker.from_env()
    node_id = f"test-grace-{uuid.uuid4().hex[:8]}"
    # A node default of 0 s: SIGKILL right after SIGTERM unless the task says otherwise.
    worker = DockerWorker(node_id, stop_timeout=0.0, client=client, cluster_id=uuid.uuid4().hex)
    try:
        yield worker
    finally:
        for container in client.containers.list(all=True, filters={"label": f"orion.node.id={node_id}"}):
            container.remove(force=True)
        client.close()


def stop_and_exit_code(worker: DockerWorker, task: Task) -> int | None:
    worker.start(task)
    worker.halt(task.id, task.stop_grace)  # stop and keep it: its exit code tells how it ended
    info = worker.inspect(task.id)
    assert info is not None and info.status == "exited", info
    return info.exit_code


def test_a_task_with_a_stop_grace_shuts_down_in_its_own_time(worker: DockerWorker) -> None:
    graceful = Task(id="graceful", name="graceful", image=IMAGE, command=SLOW_SHUTDOWN, stop_grace=5.5)
    assert stop_and_exit_code(worker, graceful) == 0


def test_without_one_the_nodes_stop_timeout_applies(worker: DockerWorker) -> None:
    hurried = Task(id="hurried", name="hurried", image=IMAGE, command=SLOW_SHUTDOWN)
    assert stop_and_exit_code(worker, hurried) == 137


def test_stop_removes_after_the_grace(worker: DockerWorker) -> None:
    task = Task(id="removed", name="removed", image=IMAGE, command=SLOW_SHUTDOWN, stop_grace=5.0)
    worker.start(task)
    worker.stop(task.id, task.stop_grace)
    assert worker.inspect(task.id) is None
