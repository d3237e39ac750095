"""The first hour of a new user on a real ``orion node`` process and the real Docker engine:
SIGHUP re-reads the token file, GET /health needs no token, a reused id with another spec is a
conflict while a retry is not, and ``orion task stop`` says Stopping until the node has stopped
the container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from orion.client import Client, Conflict, Unauthorized
from orion.testing.localcluster import LocalCluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.docker]
IMAGE = "orion-busybox:latest"
OLD = "first-token-0123456789abcdef"
NEW = "second-token-fedcba9876543210"
ORION = str(Path(sys.executable).parent / "orion")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    engine = docker.from_env()  # fails, never skips, without an engine
    try:
        engine.ping()
        engine.images.get(IMAGE)
    finally:
        engine.close()
    local = LocalCluster(1, tmp_path, token=OLD)
    try:
        local.start(timeout=60)
        yield local
    finally:
        local.close()
    assert local.leaked_secrets() == []


def orion(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORION_")}
    env.update(cluster.client_env())
    return subprocess.run([ORION, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def http_get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def accepts(cluster: LocalCluster, token: str) -> bool:
    with Client(cluster.endpoints, timeout=3.0, retries=1, token=token) as client:
        try:
            client.raft()
        except Unauthorized:
            return False
    return True


def test_sighup_reloads_the_token_file_and_health_needs_no_token(cluster: LocalCluster) -> None:
    node = cluster.node(1)
    status, body = http_get(node.http_port, "/health")
    assert status == 200 and body["status"] == "ok" and body["node"] == node.node_id
    assert body["role"] == "leader" and set(body) <= {"status", "node", "role", "apiPort"}
    assert http_get(node.http_port, "/tasks")[0] == 401

    assert accepts(cluster, OLD) and not accepts(cluster, NEW)
    cluster.token_path.write_text(f"{NEW}\n")
    os.kill(node.pid, signal.SIGHUP)
    wait_for(lambda: accepts(cluster, NEW), 20, what="the new token to be accepted after SIGHUP")
    assert not accepts(cluster, OLD)
    assert node.running  # SIGHUP reloads; it does not end the node
    assert "token reload" in node.log_path.read_text()


def test_reused_id_conflict_and_stopping_on_a_real_node(cluster: LocalCluster) -> None:
    submit = ["task", "submit", IMAGE, "--id", "web-13", "-p", "0:80", "--memory", "32MiB"]
    command = ["--", "httpd", "-f", "-p", "80", "-h", "/www"]
    first = orion(cluster, *submit, *command)
    assert first.returncode == 0, first.stderr
    retry = orion(cluster, *submit, *command)  # the same spec again: the task it made
    assert retry.returncode == 0 and retry.stdout.split()[0] == "web-13", retry.stderr
    other = orion(cluster, *submit, "--", "sleep", "3600")
    assert other.returncode == 1 and other.stderr.startswith("orion: conflict: task web-13 already exists")
    assert "different command" in other.stderr and len(other.stderr.strip().splitlines()) == 1
    with cluster.client() as client:
        with pytest.raises(Conflict):
            client.submit("other-image", id="web-13")
        wait_for(lambda: client.task("web-13").state == "Running", 60, what="web-13 Running")

        stopped = orion(cluster, "task", "stop", "web-13")
        assert stopped.returncode == 0 and stopped.stdout.strip() == "web-13  Stopping", stopped.stdout
        # The node stops the container and reports its ports free: then it is Stopped.
        wait_for(
            lambda: "State:      Stopped" in orion(cluster, "task", "inspect", "web-13").stdout,
            60,
            what="web-13 shown Stopped once its container stopped",
        )
        assert client.task("web-13").state == "Stopped"
