"""What the service tests share: the web images, the CLI, the ingress addresses, and the
conditions the tests wait for (a service converged, its containers, traffic through it).

Services are changed through the CLI (``orion service ...``, the interface users have) and
read through the Python client (``service``, ``service_tasks``). Node N of a LocalCluster has
its own address 127.0.0.N, and its ingress listens there on every published port (read from
each node's config, so the tests follow LocalCluster's layout).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tomllib
from collections import Counter
from typing import Any

import docker

from orion.model import Desired, Health, Task, TaskState
from orion.testing.localcluster import LocalCluster, wait_for
from orion.testing.traffic import TrafficLoop

V1, V2, BROKEN = "orion-web:v1", "orion-web:v2", "orion-web:broken"
BODY = {V1: "v1", V2: "v2", BROKEN: "broken"}
# A check every second: an unhealthy task is known within ~3 s (retries 3), a healthy one in ~1 s.
HEALTH = ["--health-http", "80:/health", "--health-interval", "1s"]
SETTLED_STATES = ("completed", "rolled_back")
PUBLISHED_RANGE = (24500, 24999)  # published ports of these tests: outside Orion's dynamic range


def orion(cluster: LocalCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``orion ARGS`` against the cluster; with ``check``, a non-zero exit fails the test with
    the command's own words."""
    env = {**os.environ, **cluster.client_env()}
    result = subprocess.run(
        [sys.executable, "-m", "orion", *args], env=env, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        said = result.stderr.strip() or result.stdout.strip()
        raise AssertionError(f"orion {' '.join(args)} exited {result.returncode}: {said}")
    return result


def published_port(cluster: LocalCluster) -> int:
    """A port free on every node's address (none of this machine's services holds it)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(*PUBLISHED_RANGE)
        if all(_bindable(address, port) for address in node_addresses(cluster)):
            return port
    raise RuntimeError(f"no free port in {PUBLISHED_RANGE}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def node_addresses(cluster: LocalCluster, running_only: bool = True) -> list[str]:
    """Each node's ingress address, as its config sets it: [ingress] address, else [docker]
    host_ip, else the advertise address 127.0.0.1 (LocalCluster gives node N 127.0.0.N)."""
    addresses = []
    for node in cluster.nodes:
        if node.running or not running_only:
            config = tomllib.loads(node.config_path.read_text())
            address = config.get("ingress", {}).get("address") or config.get("docker", {}).get("host_ip")
            addresses.append(address or "127.0.0.1")
    return addresses


def ingress(cluster: LocalCluster, port: int) -> list[tuple[str, int]]:
    """Every running node's ingress address for a published port."""
    return [(address, port) for address in node_addresses(cluster)]


def create(cluster: LocalCluster, name: str, image: str, port: int, replicas: int, *flags: str) -> None:
    orion(
        cluster, "service", "create", name, image, "--replicas", str(replicas), "-p", f"{port}:80/tcp",
        *HEALTH, *flags,
    )  # fmt: skip


def active(tasks: list[Task]) -> list[Task]:
    """Tasks meant to run and not finished (a slot's current task, or one being replaced)."""
    return [
        t for t in tasks if t.desired == Desired.RUN and t.state not in (TaskState.FAILED, TaskState.STOPPED)
    ]


def converged(client: Any, name: str, replicas: int, image: str | None = None) -> list[Task] | None:
    """The service's tasks once exactly ``replicas`` of them run its current template, available
    (healthy, not draining), no other is active and no update is under way; else None."""
    service = client.service(name)
    tasks = active(client.service_tasks(name))
    if service.update.state not in SETTLED_STATES or len(tasks) != replicas:
        return None
    for task in tasks:
        if task.state != TaskState.RUNNING or task.version != service.template_version or task.drain_at:
            return None
        if task.health_check is not None and task.health != Health.HEALTHY:
            return None
        if image is not None and task.image != image:
            return None
    return tasks


def wait_converged(
    cluster: LocalCluster,
    name: str,
    replicas: int,
    image: str | None = None,
    timeout: float = 120.0,
    avoiding: str = "",
) -> list[Task]:
    """Until ``converged`` (and, with ``avoiding``, no active task is on that node id)."""

    def done(client: Any) -> list[Task] | None:
        tasks = converged(client, name, replicas, image)
        if tasks is None or any(t.node_id == avoiding for t in tasks):
            return None
        return tasks

    with cluster.client(timeout=5.0, retries=2) as client:
        try:
            return wait_for(
                lambda: done(client),
                timeout,
                interval=0.25,
                what=f"service {name} to run {replicas} available replicas"
                + (f" of {image}" if image else ""),
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{describe(client, name)}") from None


def describe(client: Any, name: str) -> str:
    """The service and its tasks, for a failure message."""
    try:
        service = client.service(name)
        tasks = client.service_tasks(name)
    except Exception as exc:
        return f"(cannot read service {name}: {exc!r})"
    lines = [
        f"service {name}: version {service.version}, template_version {service.template_version}, "
        f"replicas {service.spec.replicas}, image {service.spec.template.image}, update {service.update}"
    ]
    lines += [
        f"  {t.id[:12]} {t.name} v{t.version} {t.image} {t.state}/{t.desired} on {t.node_id or '-'} "
        f"health={t.health or '-'} drain_at={t.drain_at} reason={t.reason!r}"
        for t in tasks
    ]
    return "\n".join(lines)


def per_node(tasks: list[Task]) -> Counter[str]:
    return Counter(t.node_id for t in tasks)


def running_containers(cluster: LocalCluster, task_ids: set[str]) -> list[str]:
    """Task ids of the running containers (on any node of the cluster) of ``task_ids``."""
    engine = docker.from_env()
    try:
        found = []
        for node in cluster.nodes:
            for container in engine.containers.list(filters={"label": f"orion.node.id={node.node_id}"}):
                task_id = container.labels.get("orion.task.id", "")
                if task_id in task_ids:
                    found.append(task_id)
        return found
    finally:
        engine.close()


def serves_everywhere(cluster: LocalCluster, port: int, body: str, timeout: float = 60.0) -> None:
    """Until every running node's ingress answers ``body`` on ``port``: traffic measured after
    this meets a service already reachable, so a failure is the change's fault, not start-up's."""
    probe = TrafficLoop(ingress(cluster, port))

    def everywhere() -> bool:
        for host, published in ingress(cluster, port):
            try:
                if probe.request(host, published) != body:
                    return False
            except Exception:
                return False
        return True

    wait_for(everywhere, timeout, interval=0.25, what=f"{body!r} from every node's ingress on port {port}")
