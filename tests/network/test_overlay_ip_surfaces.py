"""A task's overlay address as the client, the REST mirror and ``orion task inspect`` show it
(against the in-memory node handler of tests/api: the three front ends see the same Task)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from orion.api.http import HttpApi
from orion.api.server import ApiServer
from orion.client import Client
from orion.model import Task, TaskState
from tests.api.conftest import plain_api_servers, private_cache  # noqa: F401  (autouse fixtures)
from tests.api.memory_node import MemoryNode
from tests.api.test_cli import orion


@pytest.fixture
def node() -> MemoryNode:
    node = MemoryNode()
    node.tasks["t-overlay"] = Task(
        id="t-overlay",
        name="web",
        image="orion-busybox",
        state=TaskState.RUNNING,
        node_id="node1",
        overlay_ip="10.42.3.7",
    )
    node.tasks["t-plain"] = Task(id="t-plain", name="plain", image="orion-busybox")
    return node


@pytest.fixture
def api(node: MemoryNode) -> Iterator[ApiServer]:
    server = ApiServer("127.0.0.1", 0, node, max_request=64 * 1024)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_client_cli_and_rest_show_the_overlay_ip(api: ApiServer, node: MemoryNode) -> None:
    endpoint = f"127.0.0.1:{api.port}"
    with Client([endpoint], timeout=5.0) as client:
        assert client.task("t-overlay").overlay_ip == "10.42.3.7"
        assert client.task("t-plain").overlay_ip == ""

    inspect = orion("task", "inspect", "t-overlay", endpoint=endpoint)
    assert inspect.returncode == 0, inspect.stderr
    assert "Overlay IP: 10.42.3.7" in inspect.stdout
    plain = orion("task", "inspect", "t-plain", endpoint=endpoint)
    assert plain.returncode == 0 and "Overlay IP" not in plain.stdout  # overlay off: as before
    as_json = orion("--json", "task", "inspect", "t-overlay", endpoint=endpoint)
    assert json.loads(as_json.stdout)["overlayIp"] == "10.42.3.7"

    http = HttpApi("127.0.0.1", 0, node, timeout=5.0, max_body=16 * 1024)
    http.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http.port}/tasks/t-overlay", timeout=10) as response:
            assert json.loads(response.read())["overlayIp"] == "10.42.3.7"
    finally:
        http.stop()
