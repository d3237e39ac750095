"""Host ports in the worker, against the real Docker engine: assigned ports are what is bound,
a taken port is a PortInUseError naming the address, the engine names the port space."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import docker
import pytest

from orion.model import Task
from orion.worker import DockerWorker, WorkerError
from orion.worker.reasons import port_in_use
from orion.worker.types import PortInUseError

pytestmark = pytest.mark.docker

IMAGE = "orion-busybox:latest"
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_task(task_id: str = "t1", **fields: object) -> Task:
    fields.setdefault("command", HTTPD)
    return Task(id=task_id, name=task_id, image=IMAGE, **fields)


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    engine = docker.from_env()
    engine.ping()
    engine.images.get(IMAGE)
    yield engine
    engine.close()


@pytest.fixture
def make_worker(client: docker.DockerClient) -> Iterator[object]:
    """Workers with node ids of this test's own; every container they labelled is removed."""
    made: list[DockerWorker] = []
    cluster_id = uuid.uuid4().hex  # one cluster: its nodes may look at each other's containers

    def make() -> DockerWorker:
        worker = DockerWorker(
            f"test-{uuid.uuid4().hex[:10]}", stop_timeout=1.0, client=client, cluster_id=cluster_id
        )
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.remove_all()


def test_the_assigned_port_and_address_are_what_is_bound(make_worker) -> None:
    worker = make_worker()
    port = free_port()
    # The request said "0" (dynamic); the cluster assigned a port: the container binds that one.
    task = make_task(port_bindings={"80/tcp": "0"}, host_ports={"80/tcp": port}, host_ip="127.0.0.1")
    info = worker.start(task)
    assert info.host_ports == {"80/tcp": port}
    assert worker.inspect(task.id).host_ports == {"80/tcp": port}


def test_a_dynamic_binding_without_an_assigned_port_is_refused(make_worker) -> None:
    with pytest.raises(WorkerError, match="no host port assigned for 80/tcp"):
        make_worker().start(make_task(port_bindings={"80/tcp": "0"}))


def test_a_port_held_outside_orion_is_a_port_in_use_error_with_its_address(make_worker) -> None:
    worker = make_worker()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError) as caught:
            worker.start(make_task(port_bindings={"80/tcp": str(port)}))
    assert (caught.value.host_ip, caught.value.port) == ("127.0.0.1", port)
    assert str(caught.value) == f"port {port} on 127.0.0.1 already in use"
    assert worker.list_managed() == []


def test_a_port_held_by_another_nodes_container_on_the_engine_is_a_port_in_use_error(make_worker) -> None:
    first, second = make_worker(), make_worker()
    port = free_port()
    first.start(make_task("a", port_bindings={"80/tcp": str(port)}))
    with pytest.raises(PortInUseError) as caught:
        second.start(make_task("b", port_bindings={"80/tcp": str(port)}))
    assert caught.value.port == port


def test_nodes_on_one_engine_share_a_port_space(make_worker) -> None:
    first, second = make_worker(), make_worker()
    space = first.port_space()
    assert space.startswith("engine-") and space == second.port_space()


def test_a_node_sees_which_containers_another_node_left_running(make_worker) -> None:
    gone, looker = make_worker(), make_worker()
    gone.start(make_task("up", command=["sleep", "300"]))
    gone.start(make_task("ended", command=["true"]))
    assert looker.running_tasks_of(gone.node_id) in ({"up"}, {"up", "ended"})  # "ended" may still run
    gone.stop("up")
    assert "up" not in looker.running_tasks_of(gone.node_id)


@pytest.mark.parametrize(
    ("explanation", "expected"),
    [
        ("Bind for 127.0.0.1:8080 failed: port is already allocated", ("127.0.0.1", 8080)),
        (
            "driver failed programming external connectivity on endpoint x: Error starting userland "
            "proxy: listen tcp4 0.0.0.0:9090: bind: address already in use",
            ("0.0.0.0", 9090),
        ),
        ("Bind for [::]:8080 failed: port is already allocated", ("::", 8080)),
        ("no such image", None),
    ],
)
def test_docker_texts_for_a_taken_port_are_recognised(explanation: str, expected: object) -> None:
    assert port_in_use(explanation) == expected
