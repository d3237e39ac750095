"""The worker against the real Docker engine and the local image (never pulls, never skips)."""

from __future__ import annotations

import functools
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import docker
import pytest

from orion.model import Task
from orion.testing.localcluster import wait_for as shared_wait_for
from orion.worker import ContainerExit, DockerWorker, NoClusterIdError, WorkerError, container_name
from orion.worker.docker_worker import EventsStop

pytestmark = pytest.mark.docker

IMAGE = "orion-busybox:latest"
MiB = 1024**2
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]


wait_for = functools.partial(shared_wait_for, timeout=20.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_task(task_id: str = "t1", **fields: object) -> Task:
    fields.setdefault("command", ["sleep", "300"])
    return Task(id=task_id, name=task_id, image=IMAGE, **fields)


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    engine = docker.from_env()
    engine.ping()  # Docker must answer: this test fails rather than skips
    engine.images.get(IMAGE)  # built by tools/docker_setup.py; never pulled
    yield engine
    engine.close()


def _remove_by_node_label(client: docker.DockerClient, node_id: str) -> None:
    for container in client.containers.list(all=True, filters={"label": f"orion.node.id={node_id}"}):
        container.remove(force=True)


@pytest.fixture
def node_id(client: docker.DockerClient) -> Iterator[str]:
    """A node id of this test's own, and every container it labelled removed afterwards."""
    node = f"test-{uuid.uuid4().hex[:10]}"
    yield node
    _remove_by_node_label(client, node)


@pytest.fixture
def cluster_id() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def worker(client: docker.DockerClient, node_id: str, cluster_id: str) -> DockerWorker:
    return DockerWorker(node_id, stop_timeout=1.0, pull_timeout=20.0, client=client, cluster_id=cluster_id)


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def test_a_task_serves_its_page_on_the_published_port(worker: DockerWorker) -> None:
    port = free_port()
    info = worker.start(make_task(command=HTTPD, port_bindings={"80/tcp": str(port)}))
    assert info.status == "running" and info.task_id == "t1" and info.node_id == worker.node_id
    page = wait_for(lambda: fetch(f"http://127.0.0.1:{port}/"), what="the page")
    assert "served by orion" in str(page)


def test_labels_name_limits_command_and_env_are_set(
    worker: DockerWorker, client: docker.DockerClient
) -> None:
    port = free_port()
    task = make_task(
        memory=64 * MiB,
        cpu=0.5,
        port_bindings={"80/tcp": str(port)},
        command=["sleep", "300"],
        env={"GREETING": "hello"},
    )
    info = worker.start(task)
    attrs = client.api.inspect_container(info.container_id)
    assert attrs["Name"] == f"/{container_name(worker.node_id, 't1', worker.cluster_id)}"
    assert attrs["Config"]["Labels"] == {
        "orion.task.id": "t1",
        "orion.node.id": worker.node_id,
        "orion.managed": "1",
        "orion.cluster.id": worker.cluster_id,
    }
    assert attrs["Config"]["Cmd"] == ["sleep", "300"]
    assert "GREETING=hello" in attrs["Config"]["Env"]
    host = attrs["HostConfig"]
    assert host["Memory"] == 64 * MiB
    assert host["NanoCpus"] == 500_000_000
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}


def test_a_port_held_by_a_host_process_is_a_clear_error_and_leaves_nothing(worker: DockerWorker) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(WorkerError) as caught:
            worker.start(make_task(command=HTTPD, port_bindings={"80/tcp": str(port)}))
    assert str(caught.value) == f"port {port} on 127.0.0.1 already in use"
    assert worker.list_managed() == []


def test_a_port_held_by_another_task_is_a_clear_error(worker: DockerWorker) -> None:
    port = free_port()
    first = worker.start(make_task("a", command=HTTPD, port_bindings={"80/tcp": str(port)}))
    with pytest.raises(WorkerError, match=f"^port {port} on 127.0.0.1 already in use$"):
        worker.start(make_task("b", command=HTTPD, port_bindings={"80/tcp": str(port)}))
    assert [info.container_id for info in worker.list_managed()] == [first.container_id]


def test_a_bad_command_is_a_clear_error_and_leaves_nothing(worker: DockerWorker) -> None:
    with pytest.raises(
        WorkerError, match="command 'no-such-command' not found in image orion-busybox:latest"
    ):
        worker.start(make_task(command=["no-such-command"]))
    assert worker.list_managed() == []


def test_starting_twice_adopts_the_existing_container(
    worker: DockerWorker, client: docker.DockerClient
) -> None:
    first = worker.start(make_task())
    again = worker.start(make_task())
    # A fresh worker for the same node, as after a node restart, adopts it as well.
    restarted = DockerWorker(worker.node_id, client=client, cluster_id=worker.cluster_id).start(make_task())
    assert first.container_id == again.container_id == restarted.container_id
    assert [info.task_id for info in worker.list_managed()] == ["t1"]


def test_nodes_sharing_an_engine_see_only_their_own_containers(
    worker: DockerWorker, client: docker.DockerClient
) -> None:
    other_node = f"{worker.node_id}-other"
    other = DockerWorker(other_node, client=client, cluster_id=worker.cluster_id)
    try:
        mine = worker.start(make_task("same-id"))
        theirs = other.start(make_task("same-id"))
        assert mine.container_id != theirs.container_id
        assert [info.container_id for info in worker.list_managed()] == [mine.container_id]
        assert [info.container_id for info in other.list_managed()] == [theirs.container_id]
    finally:
        _remove_by_node_label(client, other_node)


def test_two_clusters_with_the_same_node_and_task_ids_never_touch_each_others_containers(
    worker: DockerWorker, client: docker.DockerClient
) -> None:
    """Containers used to be matched by ``orion.node.id`` alone, so a second cluster on the
    engine with the same node ids (two demos, two test runs) listed, stopped and removed them."""
    twin = DockerWorker(worker.node_id, stop_timeout=1.0, client=client, cluster_id=uuid.uuid4().hex)
    mine = worker.start(make_task("same-id"))
    theirs = twin.start(make_task("same-id"))
    twin.start(make_task("only-theirs"))
    assert mine.container_id != theirs.container_id
    assert [info.container_id for info in worker.list_managed()] == [mine.container_id]
    assert worker.running_tasks_of(worker.node_id) == {"same-id"}
    assert worker.inspect("only-theirs") is None
    worker.halt("same-id")
    worker.stop("only-theirs")  # nothing of ours by that id: no error, and theirs stays
    assert worker.remove_all() == 1
    assert {info.task_id for info in twin.list_managed() if info.running} == {"same-id", "only-theirs"}
    assert client.containers.get(theirs.container_id).status == "running"


def test_without_a_cluster_id_no_container_is_listed_started_or_stopped(
    worker: DockerWorker, client: docker.DockerClient
) -> None:
    running = worker.start(make_task("up"))
    unknown = DockerWorker(worker.node_id, stop_timeout=1.0, client=client)  # not joined yet
    for call in (
        unknown.list_managed,
        unknown.remove_all,
        lambda: unknown.start(make_task("new")),
        lambda: unknown.stop("up"),
        lambda: unknown.running_tasks_of(worker.node_id),
    ):
        with pytest.raises(NoClusterIdError, match="does not know its cluster id yet"):
            call()
    assert client.containers.get(running.container_id).status == "running"
    unknown.set_cluster_id(worker.cluster_id)
    assert [info.container_id for info in unknown.list_managed()] == [running.container_id]


def test_a_container_without_a_cluster_id_is_named_and_left_alone(
    worker: DockerWorker, client: docker.DockerClient
) -> None:
    # As made by an Orion from before cluster ids: it cannot be told to be this cluster's.
    legacy = client.containers.run(
        IMAGE,
        ["sleep", "300"],
        detach=True,
        name=f"orion-{worker.node_id}-old",
        labels={"orion.task.id": "old", "orion.node.id": worker.node_id, "orion.managed": "1"},
    )
    assert worker.unclaimed() == [f"orion-{worker.node_id}-old"]
    assert worker.list_managed() == []
    assert worker.remove_all() == 0
    worker.stop("old")
    legacy.reload()
    assert legacy.status == "running"


class ExitWatcher:
    """Runs ``worker.events`` on a thread, as the node does, and keeps what it yields."""

    def __init__(self, worker: DockerWorker, stop: threading.Event | EventsStop | None = None) -> None:
        self.exits: list[ContainerExit] = []
        self.stop = stop if stop is not None else threading.Event()
        self.thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
        self.thread.start()

    def _run(self, worker: DockerWorker) -> None:
        for exit_ in worker.events(self.stop):
            self.exits.append(exit_)

    def exit_of(self, task_id: str) -> ContainerExit | None:
        return next((exit_ for exit_ in self.exits if exit_.task_id == task_id), None)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "events() did not end when asked"


@pytest.fixture
def watcher(worker: DockerWorker) -> Iterator[ExitWatcher]:
    watching = ExitWatcher(worker)
    yield watching
    watching.close()


def test_exit_code_is_reported_by_events_and_listing(worker: DockerWorker, watcher: ExitWatcher) -> None:
    started = worker.start(make_task("exits", command=["sh", "-c", "exit 3"]))
    exit_ = wait_for(lambda: watcher.exit_of("exits"), what="the die event")
    assert isinstance(exit_, ContainerExit)
    assert (exit_.container_id, exit_.exit_code, exit_.oom_killed) == (started.container_id, 3, False)
    [info] = worker.list_managed()
    assert (info.status, info.exit_code, info.oom_killed) == ("exited", 3, False)
    assert worker.inspect("exits") == info


def test_events_with_an_events_stop_arrive_live_and_end_at_once(worker: DockerWorker) -> None:
    # Its windows last a minute: the exit must come while the window is open, and set() must
    # end the reader blocked on the stream (ExitWatcher.close allows 10 s), not wait the window out.
    watcher = ExitWatcher(worker, EventsStop())
    try:
        worker.start(make_task("exits-live", command=["sh", "-c", "exit 4"]))
        exit_ = wait_for(lambda: watcher.exit_of("exits-live"), what="the die event")
        assert isinstance(exit_, ContainerExit) and exit_.exit_code == 4
    finally:
        watcher.close()


def test_an_oom_kill_is_reported(worker: DockerWorker, watcher: ExitWatcher) -> None:
    # The shell doubles a string until the 16 MiB limit kills it.
    hog = ["sh", "-c", "a=xxxxxxxxxxxxxxxx; while :; do a=$a$a; done"]
    worker.start(make_task("hog", memory=16 * MiB, command=hog))
    exit_ = wait_for(lambda: watcher.exit_of("hog"), what="the OOM kill")
    assert isinstance(exit_, ContainerExit)
    assert exit_.oom_killed and exit_.exit_code == 137
    info = worker.inspect("hog")
    assert info is not None and info.oom_killed and info.exit_code == 137


def test_stop_removes_the_container_and_is_idempotent(worker: DockerWorker) -> None:
    worker.start(make_task("doomed", command=["sleep", "300"]))
    worker.start(make_task("kept", command=["sleep", "300"]))
    worker.stop("doomed")
    assert worker.inspect("doomed") is None
    worker.stop("doomed")
    worker.stop("never-existed")
    assert [info.task_id for info in worker.list_managed()] == ["kept"]


def test_a_created_but_never_started_container_is_started_on_adoption(
    worker: DockerWorker, client: docker.DockerClient
) -> None:
    # As if the node died between create and start.
    client.containers.create(
        IMAGE,
        ["sleep", "300"],
        name=container_name(worker.node_id, "half", worker.cluster_id),
        labels={
            "orion.task.id": "half",
            "orion.node.id": worker.node_id,
            "orion.managed": "1",
            "orion.cluster.id": worker.cluster_id,
        },
    )
    info = worker.start(make_task("half"))
    assert info.status == "running"
    assert len(worker.list_managed()) == 1


@pytest.mark.timeout(90)
def test_a_failed_pull_fails_with_the_registry_message(worker: DockerWorker) -> None:
    # The image names a registry on loopback where nothing listens: dockerd is refused at once and
    # never looks up a public registry (traffic leaves 127.0.0.0/8 only into test-made namespaces).
    missing = "127.0.0.1:1/orion-test/no-such-image:0"
    with pytest.raises(WorkerError) as caught:
        worker.ensure_image(missing)
    message = str(caught.value)
    assert message.startswith(f"cannot pull image {missing}: ")
    assert len(message) > len(f"cannot pull image {missing}: ")  # Docker's own words follow
    with pytest.raises(WorkerError, match="cannot pull image"):
        worker.start(Task(id="nopull", name="nopull", image=missing))
    assert worker.list_managed() == []


def test_ensure_image_does_not_pull_a_present_image(worker: DockerWorker) -> None:
    worker.pull_timeout = 0.001  # a pull could not finish in this time; none is attempted
    worker.ensure_image(IMAGE)
