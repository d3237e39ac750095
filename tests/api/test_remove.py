"""``orion task rm``: client, CLI and REST through the real API actor and the real state machine
(tests/api/fsm_raft.py stands in for consensus), and the in-memory node's matching behaviour."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pykka
import pytest

from orion.actors.api_actor import ApiActor
from orion.api.http import HttpApi
from orion.api.server import ApiServer
from orion.client import Client, InvalidRequest, NotFound
from orion.fsm.commands import AssignTasks, RemoveTask, ReportTaskState, UpsertNode
from orion.model import NodeMeta, TaskState
from tests.api.fsm_raft import FsmRaft
from tests.api.memory_node import MemoryNode
from tests.api.test_cli import orion
from tests.api.test_http import call


@dataclass
class Stack:
    raft: pykka.ActorProxy
    client: Client
    endpoint: str
    http: HttpApi
    fatal: list[str]

    def running(self, name: str) -> str:
        """A task taken to Running on node n1 (as the scheduler and the node would)."""
        task = self.client.submit("busybox", name=name, memory="64MiB")
        self.raft.commit(AssignTasks(at=2.0, assignments=[(task.id, "n1")])).get()
        self.raft.commit(
            ReportTaskState(at=3.0, task_id=task.id, node_id="n1", state=TaskState.RUNNING)
        ).get()
        assert self.client.task(task.id).state == TaskState.RUNNING
        return task.id


@pytest.fixture
def stack() -> Iterator[Stack]:
    fatal: list[str] = []
    raft_ref = FsmRaft.start()
    api_ref = ApiActor.start(raft_ref, 5.0, fatal.append)
    handler = api_ref.proxy().handler().get()
    server = ApiServer("127.0.0.1", 0, handler)
    http = HttpApi("127.0.0.1", 0, handler, timeout=5.0)
    server.start()
    http.start()
    raft = raft_ref.proxy()
    raft.commit(UpsertNode(at=1.0, meta=NodeMeta(id="n1", memory_total=1 << 34, cpu_total=4.0))).get()
    endpoint = f"127.0.0.1:{server.port}"
    client = Client([endpoint], timeout=5.0)
    try:
        yield Stack(raft, client, endpoint, http, fatal)
    finally:
        client.close()
        http.stop()
        server.stop()
        api_ref.stop()
        raft_ref.stop()
    assert fatal == []


def test_client_remove_refuses_active_tasks_and_removes_stopped_ones(stack: Stack) -> None:
    client = stack.client
    task_id = stack.running("web")
    with pytest.raises(InvalidRequest, match=rf"task {task_id} is Running: stop it first"):
        client.remove(task_id)
    assert client.task(task_id).state == TaskState.RUNNING

    client.stop(task_id)
    removed = client.remove(task_id)
    assert (removed.id, removed.state) == (task_id, TaskState.STOPPED)
    with pytest.raises(NotFound, match=f"no task with id {task_id}"):
        client.task(task_id)
    with pytest.raises(NotFound, match=f"no task with id {task_id}"):
        client.remove(task_id)
    assert stack.raft.fsm.get().allocated("n1") == (0, 0.0, 0)


def test_client_remove_force_stops_and_removes(stack: Stack) -> None:
    task_id = stack.running("web")
    removed = stack.client.remove(task_id, force=True)
    assert (removed.state, removed.desired) == (TaskState.STOPPED, "stop")
    assert stack.client.tasks() == []
    assert stack.raft.commands().get()[-1] == RemoveTask(task_id=task_id, force=True, at=removed.updated_at)


def test_cli_task_rm(stack: Stack) -> None:
    task_id = stack.running("web")
    refused = orion("task", "rm", task_id, endpoint=stack.endpoint)
    assert refused.returncode == 2, refused.stderr
    assert f"task {task_id} is Running: stop it first, or remove it with force" in refused.stderr

    forced = orion("--json", "task", "rm", "--force", task_id, endpoint=stack.endpoint)
    assert forced.returncode == 0, forced.stderr
    shown = json.loads(forced.stdout)
    assert (shown["id"], shown["state"], shown["nodeId"]) == (task_id, "Stopped", "n1")

    other = stack.client.submit("busybox", name="batch")
    stack.client.stop(other.id)
    plain = orion("task", "rm", other.id, endpoint=stack.endpoint)
    assert (plain.returncode, plain.stdout.strip()) == (0, f"{other.id}  removed")

    missing = orion("task", "rm", other.id, endpoint=stack.endpoint)
    assert missing.returncode == 4 and f"no task with id {other.id}" in missing.stderr
    assert stack.client.tasks() == []


def test_rest_delete_with_remove(stack: Stack) -> None:
    task_id = stack.running("web")
    status, body = call(stack.http, "DELETE", f"/tasks/{task_id}?remove=true")
    assert (status, body["code"]) == (400, "invalid") and "stop it first" in body["error"]

    status, body = call(stack.http, "DELETE", f"/tasks/{task_id}?force=true")
    assert (status, body["field"]) == (400, "force") and "remove=true" in body["error"]
    status, body = call(stack.http, "DELETE", f"/tasks/{task_id}?remove=yes")
    assert (status, body["field"]) == (400, "remove")
    assert stack.client.task(task_id).state == TaskState.RUNNING  # nothing above changed it

    status, body = call(stack.http, "DELETE", f"/tasks/{task_id}")  # without remove: stop only
    assert (status, body["state"]) == (200, "Stopped")
    assert stack.client.task(task_id).state == TaskState.STOPPED

    status, body = call(stack.http, "DELETE", f"/tasks/{task_id}?remove=true")
    assert (status, body["id"], body["state"]) == (200, task_id, "Stopped")
    status, body = call(stack.http, "DELETE", f"/tasks/{task_id}?remove=true")
    assert (status, body["code"]) == (404, "not_found")

    forced_id = stack.running("api")
    status, body = call(stack.http, "DELETE", f"/tasks/{forced_id}?remove=true&force=true")
    assert (status, body["state"], body["desired"]) == (200, "Stopped", "stop")
    assert stack.client.tasks() == []


def test_memory_node_refuses_removing_an_active_task_as_the_fsm_does(
    api: ApiServer, node: MemoryNode
) -> None:
    with Client([f"127.0.0.1:{api.port}"], timeout=2.0) as client:
        task = client.submit("nginx")
        with pytest.raises(InvalidRequest, match="stop it first"):
            client.remove(task.id)
        client.stop(task.id)
        assert client.remove(task.id).id == task.id
        assert node.tasks == {}
        with pytest.raises(NotFound):
            client.remove(task.id)
