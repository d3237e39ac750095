"""Values the worker returns: what a managed container is doing, and how one ended."""

from __future__ import annotations

import msgspec

LABEL_TASK = "orion.task.id"
LABEL_NODE = "orion.node.id"
LABEL_MANAGED = "orion.managed"
# The cluster whose node made the container (the Raft configuration's cluster id): two
# clusters on one engine may have the same node ids, and neither may touch the other's.
LABEL_CLUSTER = "orion.cluster.id"


class WorkerError(Exception):
    """A container could not be had, with a reason fit for a task's ``reason`` field
    ("port 8080 on 127.0.0.1 already in use"), never a stack trace."""


class NoClusterIdError(WorkerError):
    """The node does not know its cluster id yet (it has not received the Raft configuration):
    without it the worker cannot tell its containers from another cluster's, so it touches none."""


class PortInUseError(WorkerError):
    """Docker refused the container because ``host_ip:port`` is already bound on the host by
    something the cluster does not know: the task moves elsewhere instead of failing."""

    def __init__(self, message: str, host_ip: str, port: int) -> None:
        super().__init__(message)
        self.host_ip = host_ip
        self.port = port


class ContainerInfo(msgspec.Struct, frozen=True):
    task_id: str
    node_id: str
    container_id: str
    name: str
    image: str
    status: str  # Docker's: "created", "running", "paused", "restarting", "exited", "dead"
    exit_code: int | None = None  # set once the container has exited
    oom_killed: bool = False
    error: str = ""  # Docker's State.Error, e.g. why it could not start
    host_ports: dict[str, int] = {}  # what it publishes: "80/tcp" -> 8080

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting", "paused")


class ContainerExit(msgspec.Struct, frozen=True):
    """A managed container died (seen in Docker's event stream)."""

    task_id: str
    container_id: str
    exit_code: int
    oom_killed: bool
    at: float  # Docker's event time, seconds since the epoch
