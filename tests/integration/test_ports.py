"""Host ports are a scheduled resource, on real `orion node` processes and a
real Docker engine.

The nodes of a LocalCluster share one engine. A LocalCluster gives node N its own address
(``[docker] host_ip = 127.0.0.N``); most tests here set ``host_ip = 127.0.0.1`` on every node
instead (SHARED), so one port is one port for the whole cluster. The static ports here (2318x)
and the dynamic range (232xx) are used by no other test; every container is removed by the
cluster fixture, even when a test fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from orion.model import Task
from orion.testing.localcluster import LocalCluster, wait_for
from tests.integration.conftest import IMAGE, containers_of

pytestmark = [pytest.mark.cluster, pytest.mark.docker]

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]
DYNAMIC_LOW, DYNAMIC_HIGH = 23200, 23219
SHARED = {
    "scheduler": {"dynamic_ports": f"{DYNAMIC_LOW}-{DYNAMIC_HIGH}"},
    "docker": {"host_ip": "127.0.0.1"},  # every node publishes on one address: one port space
}
OWN_ADDRESSES = {index: {"docker": {"host_ip": f"127.0.0.{index}"}} for index in (1, 2, 3)}


def page(host: str, port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def serves(host: str, port: int, timeout: float = 30.0) -> str:
    return wait_for(lambda: page(host, port), timeout, what=f"a page on {host}:{port}")


def submit_web(client: Any, name: str, ports: dict[str, Any]) -> Task:
    return client.submit(IMAGE, name=name, command=HTTPD, ports=ports, memory="32MiB", cpu=0.1)


class Watch:
    """Polls one task and remembers every state it was seen in: a task that waits for a port
    must never be Failed, not even for one poll."""

    def __init__(self, client: Any, task_id: str) -> None:
        self.client, self.task_id = client, task_id
        self.seen: set[str] = set()

    def until(self, condition: Any, timeout: float, what: str) -> Task:
        def check() -> Task | None:
            task = self.client.task(self.task_id)
            self.seen.add(task.state)
            return task if condition(task) else None

        task = wait_for(check, timeout, what=what)
        assert "Failed" not in self.seen and all(event.state != "Failed" for event in task.history)
        return task


def running(task: Task) -> bool:
    return task.state == "Running"


def index_of(cluster: LocalCluster, node_id: str) -> int:
    return next(node.index for node in cluster.nodes if node.node_id == node_id)


def test_one_port_on_one_engine_the_second_task_waits_with_the_reason_then_runs(make_cluster, docker_engine):
    cluster = make_cluster(3, settings=SHARED)
    port = 23181
    with cluster.client() as client:
        first = Watch(client, submit_web(client, "web-a", {"80/tcp": port}).id).until(running, 60, "web-a")
        assert first.host_ports == {"80/tcp": port} and first.host_ip == "127.0.0.1"
        second = Watch(client, submit_web(client, "web-b", {"80/tcp": port}).id)
        waiting = second.until(lambda t: "nodes fit" in t.reason, 30, "web-b's pending reason")
        # Every node shares the engine where web-a holds the port: all three are filtered.
        assert waiting.state == "Pending"
        assert waiting.reason == f"0/3 nodes fit: 3 port {port}/tcp in use on {first.node_id}"
        assert "served by orion" in serves("127.0.0.1", port)
        client.stop(first.id)
        # The port frees once web-a's node has removed its container; then web-b runs there.
        placed = second.until(running, 60, "web-b Running once web-a is gone")
        assert placed.host_ports == {"80/tcp": port}
    assert "served by orion" in serves("127.0.0.1", port)
    assert [c.labels["orion.task.id"] for c in containers_of(docker_engine, placed.id)] == [placed.id]


def test_nodes_publishing_on_their_own_addresses_each_take_the_same_port(make_cluster, docker_engine):
    cluster = make_cluster(3, settings=SHARED, per_node=OWN_ADDRESSES)
    port = 23182
    with cluster.client() as client:
        ids = [submit_web(client, f"web-{i}", {"80/tcp": port}).id for i in range(3)]
        tasks = [Watch(client, task_id).until(running, 90, f"task {task_id}") for task_id in ids]
        assert len({t.node_id for t in tasks}) == 3
        for task in tasks:
            assert task.host_ip == f"127.0.0.{index_of(cluster, task.node_id)}"
            assert "served by orion" in serves(task.host_ip, port)
        extra = Watch(client, submit_web(client, "web-extra", {"80/tcp": port}).id)
        waiting = extra.until(lambda t: "nodes fit" in t.reason, 30, "the fourth task's reason")
    expected = ", ".join(
        f"1 port {port}/tcp in use on {node_id}" for node_id in sorted(t.node_id for t in tasks)
    )
    assert waiting.reason == f"0/3 nodes fit: {expected}"


def test_dynamic_ports_from_the_client_the_cli_and_rest_are_picked_shown_and_answer(
    make_cluster, docker_engine
):
    cluster = make_cluster(3, settings=SHARED)
    env = {**os.environ, **cluster.client_env()}

    def orion(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orion", *args], env=env, capture_output=True, text=True, timeout=60
        )

    with cluster.client() as client:
        by_client = submit_web(client, "dyn-client", {"80/tcp": 0}).id
        # Submits carry their ids, so a retry on a loaded machine never makes a second task.
        by_cli, by_rest = f"dyn-cli-{uuid.uuid4().hex[:8]}", f"dyn-rest-{uuid.uuid4().hex[:8]}"

        def submit_by_cli() -> bool:
            done = orion("--json", "task", "submit", IMAGE, "--id", by_cli, "-p", "80", "--", *HTTPD)
            assert done.returncode in (0, 1, 3), done.stderr  # 1, 3: the cluster was busy or away
            return done.returncode == 0

        wait_for(submit_by_cli, 90, interval=1.0, what="the CLI submit")
        body = json.dumps(
            {"id": by_rest, "image": IMAGE, "portBindings": {"80/tcp": ""}, "command": HTTPD}
        ).encode()

        def submit_by_rest() -> bool:
            request = urllib.request.Request(
                f"http://127.0.0.1:{cluster.node(1).http_port}/tasks",
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", **cluster.auth_headers()},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())["id"] == by_rest

        wait_for(submit_by_rest, 90, interval=1.0, what="the REST submit")
        tasks = [
            Watch(client, task_id).until(running, 90, f"task {task_id}")
            for task_id in (by_client, by_cli, by_rest)
        ]
    ports = [task.host_ports["80/tcp"] for task in tasks]
    assert all(DYNAMIC_LOW <= p <= DYNAMIC_HIGH for p in ports) and len(set(ports)) == 3
    assert all(task.port_bindings == {"80/tcp": "0"} for task in tasks)  # the request is kept as asked
    for p in ports:
        assert "served by orion" in serves("127.0.0.1", p)
    inspect = orion("task", "inspect", by_cli)
    assert inspect.returncode == 0 and f"127.0.0.1:{ports[1]}->80/tcp" in inspect.stdout
    listing = orion("task", "ls")
    assert all(f"127.0.0.1:{p}->80/tcp" in listing.stdout for p in ports)
    get = urllib.request.Request(
        f"http://127.0.0.1:{cluster.node(2).http_port}/tasks/{by_rest}", headers=cluster.auth_headers()
    )
    with urllib.request.urlopen(get, timeout=10) as response:
        record = json.loads(response.read())
    assert record["hostPorts"] == {"80/tcp": ports[2]} and record["hostIp"] == "127.0.0.1"


def test_demo_kill_9_on_a_shared_engine_waits_for_the_old_container_then_runs_elsewhere(
    make_cluster, docker_engine
):
    """Three nodes, one engine, all publishing on 127.0.0.1. kill -9 leaves the node's
    container running and holding the port, so the task waits (Pending, with the reason) and
    never fails; when that container is gone a surviving node runs it on the same port."""
    cluster = make_cluster(3, settings=SHARED)
    port = 23183
    with cluster.client() as client:
        web = Watch(client, submit_web(client, "web", {"80/tcp": port}).id).until(running, 60, "web")
    victim = index_of(cluster, web.node_id)
    cluster.kill(victim)
    survivors = [n.index for n in cluster.nodes if n.index != victim]
    with cluster.client(*survivors, timeout=3.0, retries=5) as client:
        watch = Watch(client, web.id)
        held = f"port {port}/tcp in use on {web.node_id} (container not yet removed)"
        waiting = watch.until(lambda t: held in t.reason, 90, "web to wait for its port")
        assert waiting.state == "Pending" and waiting.reason.startswith("0/3 nodes fit: 2 " + held)
        assert "served by orion" in serves("127.0.0.1", port)  # the old copy still answers
        # An operator removes the orphan (what `make demo-stop` or a restart of the node does).
        (orphan,) = containers_of(docker_engine, web.id)
        orphan.remove(force=True)
        moved = watch.until(running, 90, "web Running on a surviving node")
        assert moved.node_id != web.node_id and moved.host_ports == {"80/tcp": port}
        assert "served by orion" in serves("127.0.0.1", port)
        cluster.start_node(victim)
        wait_for(lambda: any(n.id == web.node_id and n.status == "alive" for n in client.nodes()), 60)
        assert client.task(web.id).node_id == moved.node_id
    running_copies = containers_of(docker_engine, web.id)
    assert [c.labels["orion.node.id"] for c in running_copies] == [moved.node_id]


def test_kill_9_on_a_shared_engine_then_the_node_returns_and_the_task_runs_again(make_cluster, docker_engine):
    cluster = make_cluster(3, settings=SHARED)
    port = 23184
    with cluster.client() as client:
        web = Watch(client, submit_web(client, "web", {"80/tcp": port}).id).until(running, 60, "web")
    victim = index_of(cluster, web.node_id)
    cluster.kill(victim)
    survivors = [n.index for n in cluster.nodes if n.index != victim]
    with cluster.client(*survivors, timeout=3.0, retries=5) as client:
        watch = Watch(client, web.id)
        watch.until(lambda t: "container not yet removed" in t.reason, 90, "web to wait for its port")
        # The node comes back, removes its old copy and says the port is free.
        cluster.start_node(victim)
        final = watch.until(running, 120, "web Running again after the node returned")
    assert final.host_ports == {"80/tcp": port}
    assert "served by orion" in serves("127.0.0.1", port)
    assert [c.labels["orion.node.id"] for c in containers_of(docker_engine, web.id)] == [final.node_id]


def test_kill_9_with_own_addresses_moves_the_task_at_once_and_it_answers_there(make_cluster, docker_engine):
    cluster = make_cluster(3, settings=SHARED, per_node=OWN_ADDRESSES)
    port = 23185
    with cluster.client() as client:
        web = Watch(client, submit_web(client, "web", {"80/tcp": port}).id).until(running, 60, "web")
    victim = index_of(cluster, web.node_id)
    cluster.kill(victim)
    survivors = [n.index for n in cluster.nodes if n.index != victim]
    with cluster.client(*survivors, timeout=3.0, retries=5) as client:
        moved = Watch(client, web.id).until(
            lambda t: running(t) and t.node_id != web.node_id, 90, "web Running on another node"
        )
    assert moved.host_ip == f"127.0.0.{index_of(cluster, moved.node_id)}"
    assert "served by orion" in serves(moved.host_ip, port)


def test_a_port_taken_outside_orion_reschedules_instead_of_failing(make_cluster, docker_engine):
    cluster = make_cluster(3, settings=SHARED)
    port = 23186
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with cluster.client() as client:
            watch = Watch(client, submit_web(client, "web", {"80/tcp": port}).id)
            blocked = watch.until(lambda t: "outside Orion" in t.reason, 60, "web to wait for the port")
            assert blocked.state == "Pending" and blocked.reason.startswith(
                f"0/3 nodes fit: 3 port {port}/tcp in use outside Orion on 127.0.0.1"
            )
            conflict = [e for e in blocked.history if "already in use" in e.reason]
            assert conflict and conflict[0].state == "Pending" and "placing it again" in conflict[0].reason
    # The squatter is gone: once the block lapses the task is placed again and runs.
    with cluster.client() as client:
        final = Watch(client, blocked.id).until(running, 90, "web Running once the port is free")
    assert "served by orion" in serves("127.0.0.1", final.host_ports["80/tcp"])
