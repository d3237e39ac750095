"""Late duplicates through the client, the real API actor and the real state machine
(tests/api/fsm_raft.py stands in for consensus): a submit whose answer was lost and whose task
was removed before the retry is not an error for the client; a reused id of a removed task
is; a create carries one request id for all its retries, and a late one after the service
was removed is refused."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pykka
import pytest

from orion.actors.api_actor import ApiActor
from orion.api import protocol as api
from orion.api.server import ApiServer
from orion.client import Client, Conflict, NotFound
from orion.fsm.commands import CreateService, RemoveTask, UpsertNode
from orion.model import NodeMeta, TaskState
from tests.api.fsm_raft import FsmRaft

Handler = Callable[[api.Request, Callable[[api.Reply], None]], None]


class LosesOneAnswer:
    """The API handler, except that the answer to the next submit is lost (the node applied
    it; the client hears nothing) and ``then`` runs once it is applied."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.then: Callable[[api.SubmitTask, api.Reply], None] | None = None

    def __call__(self, request: api.Request, reply: Callable[[api.Reply], None]) -> None:
        then = self.then
        if then is not None and isinstance(request, api.SubmitTask):
            self.then = None
            self.handler(request, lambda reply: then(request, reply))
            return
        self.handler(request, reply)


@dataclass
class Stack:
    raft: pykka.ActorProxy
    handler: LosesOneAnswer
    endpoint: str


@pytest.fixture
def stack() -> Iterator[Stack]:
    fatal: list[str] = []
    raft_ref = FsmRaft.start()
    api_ref = ApiActor.start(raft_ref, 5.0, fatal.append)
    handler = LosesOneAnswer(api_ref.proxy().handler().get())
    server = ApiServer("127.0.0.1", 0, handler)
    server.start()
    raft = raft_ref.proxy()
    raft.commit(UpsertNode(at=1.0, meta=NodeMeta(id="n1", memory_total=1 << 34, cpu_total=4.0))).get()
    try:
        yield Stack(raft, handler, f"127.0.0.1:{server.port}")
    finally:
        server.stop()
        api_ref.stop()
        raft_ref.stop()
    assert fatal == []


def test_a_retry_after_the_task_was_removed_returns_it_as_removed(stack: Stack) -> None:
    def removed_at_once(request: api.SubmitTask, reply: api.Reply) -> None:
        # Runs on the Raft stand-in's thread: queue the removal, do not wait for it.
        assert reply.ok
        stack.raft.commit(RemoveTask(at=time.time(), task_id=request.id, force=True))

    stack.handler.then = removed_at_once
    with Client([stack.endpoint], timeout=0.5, retries=2) as client:
        task = client.submit("busybox", name="once", memory="64MiB")
        assert (task.name, task.image, task.state, task.desired) == (
            "once",
            "busybox",
            TaskState.STOPPED,
            "stop",
        )
        assert task.reason.startswith(f"task {task.id} was removed at ")
        with pytest.raises(NotFound):
            client.task(task.id)
    assert stack.raft.tasks().get() == []


def test_reusing_the_id_of_a_removed_task_is_a_conflict(stack: Stack) -> None:
    with Client([stack.endpoint], timeout=5.0) as client:
        client.submit("busybox", id="job-1")
        client.remove("job-1", force=True)
        with pytest.raises(Conflict, match=r"task job-1 was removed at .*; choose a new id"):
            client.submit("busybox", id="job-1")
        assert client.tasks() == []


def test_a_late_create_after_service_rm_is_refused(stack: Stack) -> None:
    with Client([stack.endpoint], timeout=5.0) as client:
        first = client.create_service("web", "web:1", replicas=2)
        scaled = client.scale_service("web", 3)
        create = stack.raft.commands().get()[-2]
        assert isinstance(create, CreateService) and len(create.request_id) == 32
        client.remove_service("web")
        late = stack.raft.commit(create).get()  # the create's first attempt, arriving now
        assert "this is a late retry of the create that made it" in late.message
        with pytest.raises(NotFound):
            client.service("web")
        again = client.create_service("web", "web:1", replicas=2)
        assert again.version == scaled.version + 1 > first.version
        other = stack.raft.commands().get()[-1]
        assert isinstance(other, CreateService) and other.request_id not in ("", create.request_id)
