"""A container runtime that "starts" containers at once and keeps them in memory.

It answers the calls the reconciler makes of ``orion.worker.docker_worker.DockerWorker``
(start, stop, halt, list_managed, inspect, running_tasks_of, port_space, set_cluster_id), with
the same values (``ContainerInfo``), so a hollow node's reconcile rounds run the real planner.
Nothing is ever refused (no port conflicts, no pulls) and nothing exits unless ``crash`` says so.
"""

from __future__ import annotations

import itertools

from orion.model import Task
from orion.worker.types import ContainerInfo, NoClusterIdError

_container_ids = itertools.count(1)


class FakeRuntime:
    def __init__(self, node_id: str, port_space: str = "") -> None:
        self.node_id = node_id
        self._port_space = port_space or f"hollow:{node_id}"
        self._cluster_id = ""
        self._containers: dict[str, ContainerInfo] = {}  # task id -> its container
        self.starts = 0

    def set_cluster_id(self, cluster_id: str) -> None:
        self._cluster_id = cluster_id

    def port_space(self) -> str:
        """Each hollow node has host ports of its own (no two share an engine)."""
        return self._port_space

    def ensure_image(self, image: str) -> None:
        """Every image is present."""

    def start(self, task: Task) -> ContainerInfo:
        if not self._cluster_id:
            raise NoClusterIdError("the cluster id is not known yet")
        info = ContainerInfo(
            task_id=task.id,
            node_id=self.node_id,
            container_id=f"hollow{next(_container_ids):012x}",
            name=f"orion-{self.node_id}-{task.id}",
            image=task.image,
            status="running",
            host_ports={port: int(host) for port, host in task.port_bindings.items() if str(host).isdigit()},
        )
        self._containers[task.id] = info
        self.starts += 1
        return info

    def stop(self, task_id: str, grace: float | None = None) -> None:
        """Stop and remove."""
        self._containers.pop(task_id, None)

    def halt(self, task_id: str, grace: float | None = None) -> None:
        """Stop and keep."""
        info = self._containers.get(task_id)
        if info is not None and info.running:
            self._containers[task_id] = _exited(info, 137)

    def crash(self, task_id: str, exit_code: int = 1) -> None:
        """The container exits on its own (for tests of restarts and reports)."""
        info = self._containers.get(task_id)
        if info is not None:
            self._containers[task_id] = _exited(info, exit_code)

    def inspect(self, task_id: str) -> ContainerInfo | None:
        return self._containers.get(task_id)

    def list_managed(self) -> list[ContainerInfo]:
        return list(self._containers.values())

    def running_tasks_of(self, node_id: str) -> set[str]:
        if node_id != self.node_id:
            return set()
        return {task_id for task_id, info in self._containers.items() if info.running}

    def remove_all(self) -> int:
        count = len(self._containers)
        self._containers.clear()
        return count


def _exited(info: ContainerInfo, exit_code: int) -> ContainerInfo:
    return ContainerInfo(
        task_id=info.task_id,
        node_id=info.node_id,
        container_id=info.container_id,
        name=info.name,
        image=info.image,
        status="exited",
        exit_code=exit_code,
        host_ports=info.host_ports,
    )
