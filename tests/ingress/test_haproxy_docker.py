"""The ingress's data path for real: HAProxy started by the supervisor in front of two busybox
httpd containers, driven through the runtime API while a client loop runs. Draining one and
then stopping its container, and a reload for a new published port, cost no request."""

from __future__ import annotations

import os
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from orion.ingress.haproxy_config import render_config
from orion.ingress.routing import Endpoint, Mode, RoutingTable, plan_changes
from orion.ingress.supervisor import HAProxySupervisor, find_haproxy
from orion.testing.localcluster import wait_for
from orion.testing.traffic import TrafficLoop

pytestmark = pytest.mark.docker

IMAGE = "orion-busybox:latest"
BACKEND_IP = "127.0.0.2"  # where the containers publish (a node's [docker] host_ip)
INGRESS_IP = "127.0.0.3"  # where the ingress listens (another node's address)
LABEL = "orion.test.ingress"


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def answers(address: str, port: int) -> str | None:
    try:
        return urllib.request.urlopen(f"http://{address}:{port}/", timeout=1).read().decode().strip()
    except OSError:
        return None


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    try:
        yield client
    finally:
        for container in client.containers.list(all=True, filters={"label": LABEL}):
            container.remove(force=True)
        client.close()


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[HAProxySupervisor]:
    if find_haproxy("haproxy") is None:
        pytest.fail("haproxy is not installed (make setup installs it)")
    supervisor = HAProxySupervisor("haproxy", tmp_path / "ingress")
    try:
        yield supervisor
    finally:
        supervisor.stop(timeout=1.0)


def web(engine: docker.DockerClient, body: str) -> Endpoint:
    container = engine.containers.run(
        IMAGE,
        ["sh", "-c", f"mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www"],
        detach=True,
        labels={LABEL: body},
        ports={"80/tcp": (BACKEND_IP, None)},
    )
    container.reload()
    port = int(container.ports["80/tcp"][0]["HostPort"])
    wait_for(lambda: answers(BACKEND_IP, port) == body, 20, what=f"container {body} serving")
    return Endpoint(BACKEND_IP, port)


def apply(supervisor: HAProxySupervisor, table: RoutingTable) -> list[str]:
    changes = plan_changes(table, supervisor.runtime.servers())
    if changes.needs_reload:
        supervisor.reload(render_config(INGRESS_IP, supervisor.admin_socket, table))
        changes = plan_changes(table, supervisor.runtime.servers())
    for command in changes.commands:
        supervisor.runtime.apply(command)
    assert plan_changes(table, supervisor.runtime.servers()).commands == []  # converged
    return changes.commands


def test_drain_then_stop_and_a_reload_fail_no_request(
    engine: docker.DockerClient, supervisor: HAProxySupervisor
) -> None:
    published = free_port(INGRESS_IP)
    v1 = web(engine, "v1")
    v2 = web(engine, "v2")
    supervisor.start(render_config(INGRESS_IP, supervisor.admin_socket, {published: (v1,)}))
    assert answers(INGRESS_IP, published) == "v1"
    assert apply(supervisor, {published: (v1, v2)}) == [
        f"set server port_{published}/s2 addr {v2.address} port {v2.port}",
        f"set server port_{published}/s2 state ready",
    ]
    with TrafficLoop([(INGRESS_IP, published)], pause=0.005) as traffic:
        wait_for(lambda: traffic.seen["v1"] >= 5 and traffic.seen["v2"] >= 5, 30, what="both served")

        # Drain v1: no new connection reaches it, so its container can stop.
        apply(supervisor, {published: (Endpoint(v1.address, v1.port, Mode.DRAIN), v2)})
        traffic.wait_for_content("v2", timeout=30, settle=30)
        v1_answers = traffic.seen["v1"]
        container = engine.containers.list(filters={"label": f"{LABEL}=v1"})[0]
        container.stop(timeout=2)
        traffic.wait_for_requests(30, timeout=30)
        apply(supervisor, {published: (v2,)})  # its task stopped: the slot goes to maint
        traffic.wait_for_requests(30, timeout=30)
        assert traffic.seen["v1"] == v1_answers

        # A new published port needs a reload; the port in use keeps answering across it.
        other = free_port(INGRESS_IP)
        worker = supervisor.runtime.worker_pid()
        apply(supervisor, {published: (v2,), other: (v2,)})
        assert supervisor.runtime.worker_pid() != worker
        assert answers(INGRESS_IP, other) == "v2"
        traffic.wait_for_requests(30, timeout=30)
    assert traffic.failed == 0, traffic.describe()
    servers = supervisor.runtime.servers()[published]
    assert [(s.name, s.mode) for s in servers if s.mode != Mode.MAINT] == [("s1", Mode.READY)]


def test_haproxy_that_dies_is_detected_and_a_restart_serves_again(
    engine: docker.DockerClient, supervisor: HAProxySupervisor
) -> None:
    published = free_port(INGRESS_IP)
    v1 = web(engine, "v1")
    config = render_config(INGRESS_IP, supervisor.admin_socket, {published: (v1,)})
    supervisor.start(config)
    pid = supervisor.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not supervisor.running(), 10, what="HAProxy's exit seen")
    assert supervisor.exit_status() == -signal.SIGKILL
    # The worker of a killed master leaves too, so the port is free for the new one.
    supervisor.start(config)
    wait_for(lambda: answers(INGRESS_IP, published) == "v1", 10, what="the restarted HAProxy serving")
