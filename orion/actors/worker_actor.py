"""The Muscle's shell: runs Docker calls on a small thread pool, never on the actors that
drive Raft and gossip (a container start takes ~200 ms), and watches Docker events so an
exit or an OOM kill wakes the reconciler at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import Callback, ClusterIdentity, ContainerExited, Outcome
from orion.api.protocol import ErrorCode
from orion.model import Task
from orion.worker.docker_worker import DockerWorker, EventsStop
from orion.worker.types import PortInUseError, WorkerError

# Measured on the CI machine: the engine starts ~9 containers/s from 8 threads, ~5/s from one.
DOCKER_THREADS = 8


@dataclass(frozen=True, slots=True)
class StartContainer:
    task: Task
    callback: Callback


@dataclass(frozen=True, slots=True)
class StopContainer:
    task_id: str
    callback: Callback | None = None
    remove: bool = True  # False: stop it and keep it (a task that ended, until it is removed)
    grace: float | None = None  # the task's stop_grace (SIGTERM to SIGKILL); None: the node's default


@dataclass(frozen=True, slots=True)
class ListContainers:
    callback: Callback


@dataclass(frozen=True, slots=True)
class ListRunningOf:
    """Task ids of the running containers another node (sharing this engine) left behind."""

    node_id: str
    callback: Callback


class WorkerActor(NodeActor):
    def __init__(
        self,
        worker: DockerWorker,
        on_exit: Callable[[ContainerExited], None],
        on_fatal: FatalHandler,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """``on_error(kind)``: a Docker call failed (kind: port_in_use, refused, engine); metrics."""
        super().__init__(on_fatal)
        self.on_error = on_error
        self.worker = worker
        self.on_exit = on_exit
        self._pool = ThreadPoolExecutor(DOCKER_THREADS, thread_name_prefix="docker")
        self._stop_events = EventsStop()  # closes the event stream under its reader at once
        self._events_thread = threading.Thread(target=self._watch_events, name="docker-events", daemon=True)

    def on_start(self) -> None:
        self._events_thread.start()

    def on_stop(self) -> None:
        self._stop_events.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def on_receive(self, message: Any) -> Any:
        match message:
            case StartContainer(task, callback):
                self._pool.submit(self._call, callback, self._replace_and_start, task)
            case StopContainer(task_id, callback, remove, grace):
                action = self.worker.stop if remove else self.worker.halt
                self._pool.submit(self._call, callback, action, task_id, grace)
            case ListContainers(callback):
                self._pool.submit(self._call, callback, self.worker.list_managed)
            case ListRunningOf(node_id, callback):
                self._pool.submit(self._call, callback, self.worker.running_tasks_of, node_id)
            case ClusterIdentity(cluster_id, _) if cluster_id and cluster_id != self.worker.cluster_id:
                # Set here, before any later request is handed to the pool: requests the
                # reconciler sends once it knows the id find it set.
                self.worker.set_cluster_id(cluster_id)
                self._pool.submit(self._name_unclaimed)
            case ClusterIdentity():
                pass  # not known yet (""), or already set
            case _:
                logger.warning("worker actor: unexpected message {!r}", type(message).__name__)
        return None

    def _name_unclaimed(self) -> None:
        """Say once which containers of this node id carry no cluster id (made by an Orion from
        before cluster ids): they are never touched, so an operator must remove them."""
        try:
            names = self.worker.unclaimed()
        except Exception as exc:  # a warning only: never stop the node over it
            logger.debug("worker: cannot list containers without a cluster id: {}", exc)
            return
        if names:
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            logger.warning(
                "worker: {} container(s) labelled orion.node.id={} carry no orion.cluster.id (made by an "
                "older Orion; not known to belong to this cluster): left alone; remove them with "
                "docker rm -f: {}",
                len(names),
                self.worker.node_id,
                shown,
            )

    def _replace_and_start(self, task: Task) -> Any:
        existing = self.worker.inspect(task.id)
        if existing is not None and existing.status != "running":
            self.worker.stop(task.id)  # a dead container of an earlier attempt: replace it
        self.worker.ensure_image(task.image)
        return self.worker.start(task)

    def _call(self, callback: Callback | None, function: Callable[..., Any], *args: Any) -> None:
        failed = ""  # what kind of failure, for the node's metrics
        try:
            outcome = Outcome.success(function(*args))
        except PortInUseError as exc:
            # The value carries the address and port: the reconciler blocks that port there.
            outcome = Outcome(False, exc, ErrorCode.PORT_IN_USE, str(exc))
            failed = "port_in_use"
        except WorkerError as exc:
            outcome = Outcome.failure(ErrorCode.DOCKER, str(exc))
            failed = "refused"
        except Exception as exc:  # the engine itself misbehaving: report, never crash the node
            logger.exception("docker call {} failed", getattr(function, "__name__", function))
            outcome = Outcome.failure(ErrorCode.DOCKER, f"docker engine error: {exc}")
            failed = "engine"
        if failed and self.on_error is not None:
            self.on_error(failed)
        if callback is not None:
            callback(outcome)

    def _watch_events(self) -> None:
        while not self._stop_events.is_set():
            try:
                for exited in self.worker.events(self._stop_events):
                    self.on_exit(ContainerExited(exited.task_id, exited.exit_code, exited.oom_killed))
            except Exception as exc:  # the periodic reconcile loop is the backstop
                if self._stop_events.is_set():
                    return  # the stream was closed under the reader to stop it
                logger.warning("docker events stream broke ({}); reconnecting", exc)
                self._stop_events.wait(1.0)
