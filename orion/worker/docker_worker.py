"""The Muscle: start, watch and stop one node's containers through the Docker SDK.

Every call blocks (Docker takes hundreds of milliseconds), so the node runs these on a thread
pool, never on the actors that drive Raft or gossip. The class keeps no state of its own
about containers: Docker's labels are the record, which is what lets a restarted node adopt
what it already runs instead of starting it twice. Several nodes may share one engine, so
every query is filtered by this node's labels: its node id and its cluster id (two clusters on
one engine may use the same node ids). Until the node knows its cluster id (``set_cluster_id``,
once it holds the Raft configuration) the worker lists, starts, stops and removes nothing.

Containers that carry this node's id but no cluster id were made by an Orion from before
cluster ids; nothing proves which cluster they belong to, so they are never touched:
``unclaimed`` names them so the node can say so once, and an operator removes them.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from orion.model import Task
from orion.network.docker_net import NetworkNotReady, await_network
from orion.worker.image_pull import PullOutcome, pull_image
from orion.worker.reasons import port_in_use, pull_failure, start_failure
from orion.worker.types import (
    LABEL_CLUSTER,
    LABEL_MANAGED,
    LABEL_NODE,
    LABEL_TASK,
    ContainerExit,
    ContainerInfo,
    NoClusterIdError,
    PortInUseError,
    WorkerError,
)

_EVENT_WINDOW = 1.0  # seconds per events request when only a flag can end ``events``
# With an EventsStop the stream is closed under the reader to end it, so a window only bounds how
# long one request lasts: one request a minute instead of one a second on an idle node.
_CANCELLABLE_EVENT_WINDOW = 60.0
_RUNNING_STATES = ("running", "restarting", "paused")


CLUSTER_IN_NAME = 8  # hex digits of the cluster id in container names


class EventsStop:
    """Ends ``DockerWorker.events`` at once: ``set`` also closes the stream being read, so the
    reader need not wake every second to look at a flag (it blocks on the socket instead)."""

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None

    def set(self) -> None:
        with self._lock:
            self._flag.set()
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()  # docker's CancellableStream: shuts the socket down under the reader

    def is_set(self) -> bool:
        return self._flag.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._flag.wait(timeout)

    def reading(self, stream: Any) -> bool:
        """Register the stream ``set`` closes; False (and the stream closed) if already set."""
        with self._lock:
            if not self._flag.is_set():
                self._stream = stream
                return True
        stream.close()
        return False


def container_name(node_id: str, task_id: str, cluster_id: str) -> str:
    """One name per task per node per cluster, so Docker itself refuses a second container
    for it, and two clusters with the same node and task ids do not collide on one engine."""
    return f"orion-{node_id}-{task_id}-{cluster_id[:CLUSTER_IN_NAME]}"


def _info(container: Container) -> ContainerInfo:
    state = container.attrs.get("State", {})
    labels = container.labels
    status = state.get("Status", container.status)
    exited = status in ("exited", "dead")
    return ContainerInfo(
        task_id=labels.get(LABEL_TASK, ""),
        node_id=labels.get(LABEL_NODE, ""),
        container_id=container.id,
        name=container.name,
        image=container.attrs.get("Config", {}).get("Image", ""),
        status=status,
        exit_code=state.get("ExitCode") if exited else None,
        oom_killed=bool(state.get("OOMKilled", False)),
        error=state.get("Error") or "",
        host_ports=_published(container.attrs.get("HostConfig", {}).get("PortBindings") or {}),
    )


def _published(bindings: dict[str, Any]) -> dict[str, int]:
    """Docker's {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]} -> {"80/tcp": 8080}."""
    ports: dict[str, int] = {}
    for container_port, hosts in bindings.items():
        for host in hosts or ():
            port = str(host.get("HostPort") or "")
            if port.isdigit():
                ports[container_port] = int(port)
                break
    return ports


def _port_bindings(task: Task, host_ip: str) -> dict[str, tuple[str, int]]:
    """The ports the scheduler assigned (``host_ports`` on ``host_ip``, both recorded in the
    task), so the container binds exactly what the cluster accounts for. A task placed before
    ports were assigned falls back to its static bindings: {"80/tcp": "8080"} -> (host_ip,
    8080); "ip:port" picks its own address."""
    if task.host_ports:
        ip = task.host_ip or host_ip
        return {container_port: (ip, port) for container_port, port in task.host_ports.items()}
    bindings: dict[str, tuple[str, int]] = {}
    for container_port, host in task.port_bindings.items():
        ip, _, port = str(host).rpartition(":")
        try:
            number = int(port)
        except ValueError as exc:
            raise WorkerError(
                f"bad port binding {container_port}: {host!r} (expected a port number)"
            ) from exc
        if number == 0:
            raise WorkerError(f"no host port assigned for {container_port}")
        bindings[container_port] = (ip or host_ip, number)
    return bindings


def _start_error(explanation: str, image: str) -> WorkerError:
    reason = start_failure(explanation, image)
    taken = port_in_use(explanation)
    if taken is not None:
        return PortInUseError(reason, *taken)
    return WorkerError(reason)


def _trust_no_environment(client: docker.DockerClient) -> None:
    """A client of a local engine (unix socket) skips what ``requests`` reads from the process
    environment on every call: proxy variables (every one of them scanned, twice, and matched
    against the URL) and ~/.netrc (stat'ed). Neither applies to a unix socket; on an idle node
    they were about a quarter of the Python of each of the reconciler's container lists (one
    every reconcile interval, on a docker pool thread). A TCP engine keeps its proxy settings."""
    api = client.api
    if str(api.base_url).startswith("http+docker://"):
        api.trust_env = False


class DockerWorker:
    def __init__(
        self,
        node_id: str,
        host_ip: str = "127.0.0.1",
        stop_timeout: float = 2.0,
        pull_timeout: float = 30.0,
        client: docker.DockerClient | None = None,
        cluster_id: str = "",
        volumes: Callable[[Task], list[Any]] | None = None,
        network: str = "",
    ) -> None:
        """``cluster_id``: the cluster this node belongs to; "" until ``set_cluster_id``.
        ``volumes``: a task's cluster volumes as Docker mounts (orion/worker/node_volumes.py).
        ``network``: the overlay's Docker network tasks run on (orion/network); "" = Docker's default."""
        self.node_id = node_id
        self.host_ip = host_ip
        self.stop_timeout = stop_timeout
        self.pull_timeout = pull_timeout
        if client is None:
            client = docker.from_env()
            _trust_no_environment(client)
        self.client = client
        self.cluster_id = cluster_id
        self.volumes = volumes
        self.network = network

    def set_cluster_id(self, cluster_id: str) -> None:
        """Called by the node once its Raft configuration names the cluster (a plain attribute
        write: the threads that call Docker read it per call)."""
        self.cluster_id = cluster_id

    def _cluster(self) -> str:
        cluster_id = self.cluster_id
        if not cluster_id:
            raise NoClusterIdError(
                f"{self.node_id} does not know its cluster id yet: no container is touched"
            )
        return cluster_id

    def _filter(self, node_id: str | None = None) -> list[str]:
        """Docker label filters for the containers of ``node_id`` (default: this node) in this cluster."""
        return [
            f"{LABEL_NODE}={node_id or self.node_id}",
            f"{LABEL_MANAGED}=1",
            f"{LABEL_CLUSTER}={self._cluster()}",
        ]

    # -- images ---------------------------------------------------------------------------

    def ensure_image(self, image: str) -> None:
        """Pull ``image`` only if the engine lacks it; WorkerError with the registry's message
        on failure, or when the pull takes longer than ``pull_timeout`` (the engine's pull is
        then cancelled, orion/worker/image_pull.py, so a retry does not run beside it)."""
        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise WorkerError(f"cannot inspect image {image}: {exc.explanation}") from exc
        result = pull_image(self.client.api, image, self.pull_timeout)
        if result.outcome is not PullOutcome.PULLED:
            raise WorkerError(pull_failure(image, result.message))

    # -- host ---------------------------------------------------------------------------

    def port_space(self) -> str:
        """Which host ports this node shares with others: nodes driving the same Docker engine
        publish into one network namespace (orion/scheduler/ports.py). A digest of the engine's
        ID keeps the gossip metadata short; "" when the engine does not answer."""
        try:
            engine_id = str(self.client.info().get("ID") or "")
        except (docker.errors.DockerException, OSError):
            return ""
        if not engine_id:
            return ""
        return "engine-" + hashlib.sha256(engine_id.encode()).hexdigest()[:16]

    def running_tasks_of(self, node_id: str) -> set[str]:
        """Ids of the tasks whose containers ``node_id`` left running on this engine. Read
        only: a node manages its own containers alone, but one sharing its engine may look,
        to tell the cluster that a node that left has no container holding a port any more."""
        containers = self.client.containers.list(
            filters={"label": self._filter(node_id), "status": "running"}, ignore_removed=True
        )
        return {container.labels.get(LABEL_TASK, "") for container in containers}

    # -- containers -----------------------------------------------------------------------

    def start(self, task: Task) -> ContainerInfo:
        """Create and start the task's container, or return the one that already exists.

        An existing container is adopted as it is (running or exited: the caller decides what
        an exit means); one left "created" by a crash between create and start is started.
        On failure nothing is left behind and WorkerError says why.
        """
        existing = self._find(task.id)
        if existing is not None:
            if existing.status == "created":
                return self._start_created(existing, task)
            return _info(existing)
        self.ensure_image(task.image)
        cluster_id = self._cluster()
        options: dict[str, Any] = {
            "name": container_name(self.node_id, task.id, cluster_id),
            "command": task.command,
            "environment": dict(task.env),
            "labels": {
                LABEL_TASK: task.id,
                LABEL_NODE: self.node_id,
                LABEL_MANAGED: "1",
                LABEL_CLUSTER: cluster_id,
            },
            "ports": _port_bindings(task, self.host_ip),
            "detach": True,
        }
        if task.memory > 0:
            # Swap limit equal to the memory limit: the task gets no swap on top of it.
            options["mem_limit"] = task.memory
            options["memswap_limit"] = task.memory
        if task.cpu > 0:
            options["nano_cpus"] = int(task.cpu * 1e9)
        if task.volumes:
            if self.volumes is None:
                raise WorkerError(f"task {task.id} mounts volumes and this node has no volume support")
            options["mounts"] = self.volumes(task)
        if self.network:  # the overlay: on this node's subnet, once the network is made
            try:
                gateway = await_network(self.client, self.network, self.pull_timeout)
            except NetworkNotReady as exc:
                raise WorkerError(str(exc)) from exc
            options["network"] = self.network
            options["dns"] = [gateway]  # the node resolves service names there (orion/network/dns.py)
        try:
            container = self.client.containers.create(task.image, **options)
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # a concurrent start made it first: adopt that one
                raced = self._find(task.id)
                if raced is not None:
                    return _info(raced)
            raise _start_error(str(exc.explanation or exc), task.image) from exc
        return self._start_created(container, task)

    def _start_created(self, container: Container, task: Task) -> ContainerInfo:
        try:
            container.start()
            container.reload()
        except docker.errors.APIError as exc:
            self._remove_quietly(container)
            raise _start_error(str(exc.explanation or exc), task.image) from exc
        return _info(container)

    def inspect(self, task_id: str) -> ContainerInfo | None:
        container = self._find(task_id)
        return None if container is None else _info(container)

    def list_managed(self) -> list[ContainerInfo]:
        """Every container this node manages, in any state."""
        containers = self.client.containers.list(
            all=True, filters={"label": self._filter()}, ignore_removed=True
        )
        return [_info(container) for container in containers]

    def unclaimed(self) -> list[str]:
        """Names of the containers labelled with this node's id but no cluster id (made by an
        Orion from before cluster ids): never touched, only named so an operator can remove them."""
        containers = self.client.containers.list(
            all=True,
            filters={"label": [f"{LABEL_NODE}={self.node_id}", f"{LABEL_MANAGED}=1"]},
            ignore_removed=True,
        )
        return sorted(c.name for c in containers if LABEL_CLUSTER not in c.labels)

    def _stop_seconds(self, grace: float | None) -> int:
        """Docker's stop timeout (whole seconds) for a task's ``stop_grace``: rounded up, so a
        container is never killed before its grace is over; None: this node's ``stop_timeout``."""
        if grace is None:
            return max(0, round(self.stop_timeout))
        return max(0, math.ceil(grace))

    def stop(self, task_id: str, grace: float | None = None) -> None:
        """Stop (SIGTERM, then SIGKILL after ``grace`` seconds, default ``stop_timeout``) and
        remove; no error if gone."""
        container = self._find(task_id)
        if container is None:
            return
        try:
            if container.status in _RUNNING_STATES:
                container.stop(timeout=self._stop_seconds(grace))
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            pass  # removal with force below still ends it
        self._remove_quietly(container)

    def halt(self, task_id: str, grace: float | None = None) -> None:
        """Stop the container but keep it (``docker stop``, ``grace`` as in ``stop``): a task
        that ended keeps its container, logs and exit state for inspection until the task is
        removed."""
        container = self._find(task_id)
        if container is None or container.status not in _RUNNING_STATES:
            return
        try:
            container.stop(timeout=self._stop_seconds(grace))
        except docker.errors.NotFound:
            return

    def remove_all(self) -> int:
        """Remove every container of this node at once (force); returns how many. For tests
        and for a node leaving for good."""
        containers = self.client.containers.list(
            all=True, filters={"label": self._filter()}, ignore_removed=True
        )
        for container in containers:
            self._remove_quietly(container)
        return len(containers)

    def container(self, task_id: str) -> Container | None:
        """This node's container of ``task_id`` (None: it has none), e.g. to read its logs."""
        return self._find(task_id)

    def _find(self, task_id: str) -> Container | None:
        cluster_id = self._cluster()
        try:
            container = self.client.containers.get(container_name(self.node_id, task_id, cluster_id))
        except docker.errors.NotFound:
            return None
        # The name is ours by construction; the labels confirm it is not a stranger's.
        labels = container.labels
        if (
            labels.get(LABEL_NODE) != self.node_id
            or labels.get(LABEL_TASK) != task_id
            or labels.get(LABEL_CLUSTER) != cluster_id
        ):
            raise WorkerError(
                f"container {container.name} exists but is not managed by {self.node_id} "
                f"of cluster {cluster_id}"
            )
        return container

    @staticmethod
    def _remove_quietly(container: Container) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: a removal is already in progress
                raise

    # -- events ---------------------------------------------------------------------------

    def events(self, stop_event: threading.Event | EventsStop) -> Iterator[ContainerExit]:
        """Yield each exit of this node's containers until ``stop_event`` is set.

        Docker's stream is read in windows (``since``/``until``), each starting where the last
        one ended, so no event falls between two windows. Only this node's containers are asked
        for (label filters, applied by the engine), so other users of a shared engine cost
        nothing here. With a plain ``threading.Event`` the generator notices it within a window
        of ``_EVENT_WINDOW`` seconds; an ``EventsStop`` closes the stream under the reader, so
        its windows are a minute long. Exits are "die" events; an "oom" event just before marks
        the exit as an OOM kill.
        """
        cancellable = isinstance(stop_event, EventsStop)
        window = _CANCELLABLE_EVENT_WINDOW if cancellable else _EVENT_WINDOW
        since = time.time()
        seen: set[tuple[str, str, int]] = set()  # (container, action, timeNano): windows overlap
        oom_killed: set[str] = set()
        while not stop_event.is_set():
            if not self.cluster_id:
                # No container of this node can be told apart yet; the reconciler's listing,
                # once the id is known, sees any exit missed meanwhile.
                stop_event.wait(_EVENT_WINDOW)
                since = time.time()
                continue
            filters = {"type": "container", "label": self._filter(), "event": ["die", "oom"]}
            until = time.time() + window
            stream = self.client.events(
                since=f"{since:.9f}", until=f"{until:.9f}", filters=filters, decode=True
            )
            if isinstance(stop_event, EventsStop) and not stop_event.reading(stream):
                return
            for event in stream:
                action = event.get("Action") or event.get("status", "")
                container_id = event.get("id", "")
                key = (container_id, action, int(event.get("timeNano", 0)))
                if key in seen:
                    continue
                seen.add(key)
                if action == "oom":
                    oom_killed.add(container_id)
                elif action == "die":
                    attributes = event.get("Actor", {}).get("Attributes", {})
                    yield ContainerExit(
                        task_id=attributes.get(LABEL_TASK, ""),
                        container_id=container_id,
                        exit_code=int(attributes.get("exitCode", -1)),
                        oom_killed=container_id in oom_killed or self._was_oom_killed(container_id),
                        at=int(event.get("timeNano", 0)) / 1e9,
                    )
                    oom_killed.discard(container_id)
            if stop_event.is_set():
                return  # closed under the reader
            if cancellable and time.time() < until - _EVENT_WINDOW:
                # The engine ended the stream early: read this window again from its start (what
                # was seen is skipped), after a pause so an engine that keeps closing is not spun on.
                stop_event.wait(_EVENT_WINDOW)
                continue
            since = until
            if len(seen) > 10_000:  # only the overlap matters; keep memory flat
                seen.clear()

    def _was_oom_killed(self, container_id: str) -> bool:
        try:
            return bool(self.client.api.inspect_container(container_id)["State"].get("OOMKilled"))
        except docker.errors.APIError:
            return False  # already removed: the oom event, if any, was the only evidence
