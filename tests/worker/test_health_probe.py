"""HealthProber (orion/worker/health_probe.py) against real containers of orion-busybox,
published on 127.0.0.1: http status, tcp through Docker's proxy, exec exit codes and timeouts."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import docker
import pytest

from orion.model import HealthCheck, Task
from orion.testing.localcluster import wait_for
from orion.worker import DockerWorker
from orion.worker.health_probe import HealthProber, ProbeOutcome

pytestmark = pytest.mark.docker

IMAGE = "orion-busybox:latest"
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def worker() -> Iterator[DockerWorker]:
    """A worker of a node id of its own; every container it labelled is removed afterwards,
    whatever happened."""
    client = docker.from_env()
    client.images.get(IMAGE)  # built by tools/docker_setup.py; never pulled
    node_id = f"test-health-{uuid.uuid4().hex[:8]}"
    worker = DockerWorker(node_id, stop_timeout=1.0, client=client, cluster_id=uuid.uuid4().hex)
    try:
        yield worker
    finally:
        for container in client.containers.list(all=True, filters={"label": f"orion.node.id={node_id}"}):
            container.remove(force=True)
        client.close()


def start(worker: DockerWorker, task_id: str, command: list[str]) -> Task:
    port = free_port()
    task = Task(
        id=task_id,
        name=task_id,
        image=IMAGE,
        command=command,
        host_ports={"80/tcp": port},
        host_ip="127.0.0.1",
    )
    worker.start(task)
    return task


@pytest.fixture(scope="module")
def web(worker: DockerWorker) -> Task:
    task = start(worker, "web", HTTPD)
    prober = HealthProber(worker)
    check = HealthCheck(kind="http", port=80, path="/index.html")
    wait_for(lambda: prober.probe(task, check).passed, 20.0, what="httpd to serve")
    return task


@pytest.fixture(scope="module")
def silent(worker: DockerWorker) -> Task:
    """A container publishing port 80 with nothing listening on it."""
    return start(worker, "silent", ["sleep", "300"])


def test_http_passes_on_the_expected_status_only(worker: DockerWorker, web: Task) -> None:
    prober = HealthProber(worker)
    assert prober.probe(web, HealthCheck(kind="http", port=80, path="/")) == ProbeOutcome(True, "status 200")
    missing = prober.probe(web, HealthCheck(kind="http", port=80, path="/nope"))
    assert missing == ProbeOutcome(False, "status 404, expected 200")
    assert prober.probe(web, HealthCheck(kind="http", port=80, path="/nope", expect_status=404)).passed


def test_http_fails_where_nothing_listens_in_the_container(worker: DockerWorker, silent: Task) -> None:
    outcome = HealthProber(worker).probe(silent, HealthCheck(kind="http", port=80, timeout=1.0))
    assert not outcome.passed and outcome.detail, outcome


def test_tcp_tells_a_listening_server_from_dockers_proxy_alone(
    worker: DockerWorker, web: Task, silent: Task
) -> None:
    prober = HealthProber(worker)
    check = HealthCheck(kind="tcp", port=80, timeout=1.0)
    assert prober.probe(web, check).passed
    port = silent.host_ports["80/tcp"]
    assert prober.probe(silent, check) == ProbeOutcome(
        False, f"127.0.0.1:{port} closed the connection at once (nothing listening?)"
    )


def test_a_port_the_task_does_not_publish_or_nobody_holds_fails(worker: DockerWorker, web: Task) -> None:
    prober = HealthProber(worker)
    unpublished = prober.probe(web, HealthCheck(kind="tcp", port=8080))
    assert unpublished == ProbeOutcome(False, "the task publishes no host port for 8080/tcp")
    nobody = Task(id="x", name="x", image=IMAGE, host_ports={"80/tcp": free_port()}, host_ip="127.0.0.1")
    assert prober.probe(nobody, HealthCheck(kind="http", port=80)) == ProbeOutcome(
        False, "connection refused"
    )


def test_exec_runs_in_the_container_and_passes_on_exit_code_zero(worker: DockerWorker, web: Task) -> None:
    prober = HealthProber(worker)
    served = prober.probe(
        web, HealthCheck(kind="exec", command=["wget", "-q", "-O", "-", "http://127.0.0.1/"])
    )
    assert served == ProbeOutcome(True, "exit code 0")
    assert prober.probe(web, HealthCheck(kind="exec", command=["sh", "-c", "exit 3"])) == ProbeOutcome(
        False, "exit code 3"
    )


def test_exec_gives_up_at_its_timeout(worker: DockerWorker, web: Task) -> None:
    check = HealthCheck(kind="exec", command=["sleep", "30"], timeout=0.3)
    assert HealthProber(worker).probe(web, check) == ProbeOutcome(False, "no exit within 0.3s")


def test_exec_in_a_missing_container_fails(worker: DockerWorker) -> None:
    ghost = Task(id="ghost", name="ghost", image=IMAGE)
    outcome = HealthProber(worker).probe(ghost, HealthCheck(kind="exec", command=["true"]))
    assert outcome == ProbeOutcome(False, "the task's container does not exist")
