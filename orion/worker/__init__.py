"""The Muscle: Docker access for one node (blocking calls, run off the actors)."""

from orion.worker.docker_worker import DockerWorker, container_name
from orion.worker.restart_policy import RestartDecision, RestartPolicy
from orion.worker.types import ContainerExit, ContainerInfo, NoClusterIdError, WorkerError

__all__ = [
    "ContainerExit",
    "ContainerInfo",
    "DockerWorker",
    "NoClusterIdError",
    "RestartDecision",
    "RestartPolicy",
    "WorkerError",
    "container_name",
]
