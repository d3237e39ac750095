"""Records of the cluster state shared by the FSM, the scheduler, the worker and the API."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class TaskState(StrEnum):
    PENDING = "Pending"  # waiting for a node; ``reason`` says why
    SCHEDULED = "Scheduled"  # assigned to ``node_id``; that node's reconciler will start it
    RUNNING = "Running"
    FAILED = "Failed"  # for good: restart attempts exhausted, or the image cannot be had
    STOPPED = "Stopped"  # stopped by a user; its container is removed


ACTIVE_STATES = frozenset({TaskState.SCHEDULED, TaskState.RUNNING})


class TaskEvent(msgspec.Struct, frozen=True):
    """One line of a task's history, shown by ``orion task inspect``."""

    at: float
    state: str
    node_id: str = ""
    reason: str = ""


class Task(msgspec.Struct, kw_only=True):
    id: str
    name: str
    image: str
    state: str = TaskState.PENDING
    memory: int = 0  # bytes
    cpu: float = 0.0  # cores
    disk: int = 0  # bytes
    node_selectors: dict[str, str] = {}
    port_bindings: dict[str, str] = {}  # "80/tcp" -> "8080"
    command: list[str] | None = None
    env: dict[str, str] = {}
    node_id: str = ""
    reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    desired: str = "run"  # "run" or "stop"
    restarts: int = 0
    exit_code: int | None = None
    history: list[TaskEvent] = []


class NodeMeta(msgspec.Struct, kw_only=True, frozen=True):
    """What a node says about itself, piggybacked on gossip (kept under 512 bytes encoded)."""

    id: str
    role: str = "node"
    address: str = "127.0.0.1"  # advertise host
    raft_port: int = 0
    gossip_port: int = 0
    api_port: int = 0
    http_port: int = 0
    memory_total: int = 0
    memory_used: int = 0
    cpu_total: float = 0.0
    disk_total: int = 0
    tags: dict[str, str] = {}
    version: int = 0  # bumped on every change so newer meta wins

    @property
    def raft_address(self) -> str:
        return f"{self.address}:{self.raft_port}"

    @property
    def gossip_address(self) -> str:
        return f"{self.address}:{self.gossip_port}"

    @property
    def api_address(self) -> str:
        return f"{self.address}:{self.api_port}"
