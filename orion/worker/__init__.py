"""The Muscle: Docker access for one node (blocking calls, run off the actors)."""

from orion.worker.docker_worker import DockerWorker, container_name
from orion.worker.restart_policy import RestartDecision, RestartPolicy
from orion.worker.types import ContainerExit, ContainerInfo, WorkerError

__all__ = [
    "ContainerExit",
    "ContainerInfo",
    "DockerWorker",
    "RestartDecision",
    "RestartPolicy",
    "WorkerError",
    "container_name",
]
