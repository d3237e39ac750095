"""The REST mirror with urllib, against the in-memory node handler (tests/api/memory_node.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from orion.api.http import HttpApi
from tests.api.memory_node import MemoryNode


@pytest.fixture
def http(node: MemoryNode) -> Iterator[HttpApi]:
    server = HttpApi("127.0.0.1", 0, node, timeout=5.0, max_body=16 * 1024)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def call(http: HttpApi, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http.port}{path}",
        data=body,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_prd_payload_works_as_written(http: HttpApi, node: MemoryNode) -> None:
    status, task = call(
        http, "POST", "/tasks", b'{"image":"nginx","memory":1000,"portBindings":{"80/tcp":"8080"}}'
    )
    assert status == 201
    assert task["image"] == "nginx" and task["memory"] == 1000
    assert task["portBindings"] == {"80/tcp": "8080"}
    assert task["state"] == "Pending" and "nodeId" in task and "createdAt" in task
    assert list(node.tasks) == [task["id"]]


def test_round_trip_with_every_route(http: HttpApi, node: MemoryNode) -> None:
    body = {
        "id": "web-1",
        "name": "web",
        "image": "nginx",
        "memory": "256MiB",
        "cpu": 0.5,
        "nodeSelectors": {"zone": "a"},
        "portBindings": {"80": 8080},
        "env": {"SOME_KEY": "v"},
        "command": ["nginx", "-g", "daemon off;"],
    }
    status, task = call(http, "POST", "/tasks", json.dumps(body).encode())
    assert status == 201
    assert task["memory"] == 256 * 1024**2
    assert task["nodeSelectors"] == {"zone": "a"} and task["portBindings"] == {"80/tcp": "8080"}
    assert task["env"] == {"SOME_KEY": "v"}  # user keys are not camelCased
    assert call(http, "GET", "/tasks/web-1") == (200, task)
    status, tasks = call(http, "GET", "/tasks")
    assert status == 200 and [t["id"] for t in tasks] == ["web-1"]
    status, stopped = call(http, "DELETE", "/tasks/web-1")
    assert status == 200 and stopped["state"] == "Stopped"
    status, nodes = call(http, "GET", "/nodes")
    assert status == 200 and nodes[0]["id"] == "node1" and nodes[0]["meta"]["memoryTotal"] == 16 * 1024**3
    status, raft = call(http, "GET", "/raft")
    assert status == 200 and raft["leaderId"] == "node1" and raft["nonVoters"] == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"{not json", "", "malformed JSON"),
        (b'{"memory": 5}', "image", "is required"),
        (b'{"image": "nginx", "memory": -1}', "memory", "must be >= 0"),
        (b'{"image": "nginx", "memory": "huge"}', "memory", "cannot parse size"),
        (b'{"image": ""}', "image", "must not be empty"),
        (b'{"image": "nginx", "portBindings": {"80/tcp": "99999"}}', "portBindings", "not in 1-65535"),
        (b'{"image": "nginx", "cpu": "fast"}', "cpu", "Expected `float`, got `str`"),
        (b'{"image": "nginx", "colour": "red"}', "colour", "unknown field"),
    ],
)
def test_bad_bodies_get_400_naming_the_field(
    http: HttpApi, node: MemoryNode, body: bytes, field: str, message: str
) -> None:
    status, error = call(http, "POST", "/tasks", body)
    assert status == 400
    assert error.get("field", "") == field
    assert message in error["error"]
    assert node.submits_seen == []


def test_not_found_no_quorum_and_limits(http: HttpApi, node: MemoryNode) -> None:
    assert call(http, "GET", "/tasks/missing")[0] == 404
    assert call(http, "DELETE", "/tasks/missing")[0] == 404
    status, error = call(http, "GET", "/nope")
    assert status == 404 and "no route" in error["error"]
    status, error = call(
        http, "POST", "/tasks", json.dumps({"image": "x", "env": {"A": "b" * 20_000}}).encode()
    )
    assert status == 413
    node.no_quorum = True
    status, error = call(http, "POST", "/tasks", b'{"image": "nginx"}')
    assert status == 503 and error["code"] == "no_quorum" and "no quorum" in error["error"]
    assert node.tasks == {}


def test_a_leader_handing_over_is_a_503_to_retry(http: HttpApi, node: MemoryNode) -> None:
    node.not_leader_next = 1
    request = urllib.request.Request(
        f"http://127.0.0.1:{http.port}/tasks", data=b'{"image": "nginx", "id": "t1"}', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "1"
    assert json.loads(refused.value.read())["code"] == "not_leader"
    assert node.tasks == {}
    assert call(http, "POST", "/tasks", b'{"image": "nginx", "id": "t1"}')[0] == 201  # the retry
