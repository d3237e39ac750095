"""An in-memory stand-in for a node's API actor, used to test the API edges on their own.

It is a legitimate test double: the API server, REST mirror, client and CLI only see the
``handler(request, reply)`` contract, and this class fulfils it with a dict instead of Raft.
Like the real node it answers a repeated SubmitTask with the same id by returning the task
it already has (idempotent submit), and it answers from another thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgspec

from orion.api.protocol import (
    ErrorCode,
    GetTask,
    ListNodes,
    ListTasks,
    NodeInfo,
    RaftInfo,
    RaftStatus,
    RemoveTask,
    Reply,
    Request,
    StopTask,
    SubmitTask,
)
from orion.api.requests import task_of
from orion.model import Desired, NodeMeta, Task, TaskEvent, TaskState
from orion.raft.types import RaftRole


class MemoryNode:
    def __init__(self, node_id: str = "node1") -> None:
        self.node_id = node_id
        self.tasks: dict[str, Task] = {}
        self.submits_seen: list[str] = []  # ids of every SubmitTask that reached the handler
        self.swallow_next: int = 0  # this many requests are "lost": handled but never answered
        self.no_quorum = False
        self.unavailable = False
        self.unavailable_next: int = 0  # this many requests get "unavailable" (e.g. no leader yet)
        self.not_leader_next: int = 0  # this many writes get "not_leader" (a leader handing over)
        self.lock = threading.Lock()

    def __call__(self, request: Request, reply: Callable[[Reply], None]) -> None:
        answer = self.handle(request)
        with self.lock:
            if self.swallow_next > 0:
                self.swallow_next -= 1
                return
        # Answer from another thread, as the node's actor does.
        threading.Thread(target=reply, args=(answer,), daemon=True).start()

    def handle(self, request: Request) -> Reply:
        with self.lock:
            if self.unavailable_next > 0:
                self.unavailable_next -= 1
                return Reply.failure(ErrorCode.UNAVAILABLE, f"{self.node_id}: no leader known yet")
            if isinstance(request, SubmitTask | StopTask | RemoveTask) and self.not_leader_next > 0:
                self.not_leader_next -= 1
                return Reply.failure(ErrorCode.NOT_LEADER, "not the leader (leader: node2)")
            if self.unavailable:
                return Reply.failure(ErrorCode.UNAVAILABLE, f"{self.node_id} is starting")
            if isinstance(request, SubmitTask | StopTask | RemoveTask) and self.no_quorum:
                return Reply.failure(
                    ErrorCode.NO_QUORUM,
                    "no quorum: the cluster cannot commit writes (2 of 3 voters unreachable)",
                )
            if isinstance(request, SubmitTask):
                self.submits_seen.append(request.id)
                task = self.tasks.get(request.id)
                if task is None:
                    now = time.time()
                    task = msgspec.structs.replace(
                        task_of(request, now),  # as the node's API actor builds it
                        reason="no node has 15.9 GiB of free memory",
                        history=[TaskEvent(at=now, state=TaskState.PENDING, reason="submitted")],
                    )
                    self.tasks[request.id] = task
                return Reply.success(task)
            if isinstance(request, ListTasks):
                return Reply.success(list(self.tasks.values()))
            if isinstance(request, GetTask | StopTask):
                task = self.tasks.get(request.id)
                if task is None:
                    return Reply.failure(ErrorCode.NOT_FOUND, f"no task {request.id}")
                if isinstance(request, StopTask):
                    task.state = TaskState.STOPPED
                    task.desired = Desired.STOP
                return Reply.success(task)
            if isinstance(request, RemoveTask):
                # As the FSM does: only a terminal task goes, unless forced.
                task = self.tasks.get(request.id)
                if task is None:
                    return Reply.failure(ErrorCode.NOT_FOUND, f"no task with id {request.id}")
                if task.state not in (TaskState.STOPPED, TaskState.FAILED) and not request.force:
                    return Reply.failure(
                        ErrorCode.INVALID,
                        f"task {task.id} is {task.state}: stop it first, or remove it with force",
                    )
                return Reply.success(self.tasks.pop(request.id))
            if isinstance(request, ListNodes):
                meta = NodeMeta(id=self.node_id, memory_total=16 * 1024**3, cpu_total=4.0, tags={"zone": "a"})
                return Reply.success(
                    [
                        NodeInfo(
                            id=self.node_id,
                            address="127.0.0.1:7100",
                            role=RaftRole.LEADER,
                            suffrage="voter",
                            meta=meta,
                            allocated_memory=sum(t.memory for t in self.tasks.values()),
                        )
                    ]
                )
            if isinstance(request, RaftStatus):
                return Reply.success(
                    RaftInfo(
                        node_id=self.node_id,
                        role=RaftRole.LEADER,
                        term=3,
                        leader_id=self.node_id,
                        voters=[self.node_id],
                    )
                )
            return Reply.failure(ErrorCode.INTERNAL, f"unhandled {type(request).__name__}")
