"""Serves ``orion task logs`` from whichever node runs the task.

A request reaches any node. This actor finds the task in its own state (a stale read: which
node runs it changes rarely, and a wrong guess only answers "no container here"; on a worker,
issue 20, only its own tasks are there and it refuses the others as not_leader), then reads
the container's output itself when the task runs here, or sends the request to the node that
runs it over the NODE channel and relays its answer. That node reads Docker on a small thread
pool, never on an actor (a read may hold a long poll), and answers at most ``max_bytes``.
A forwarded request is served where it arrives and never forwarded again, so two nodes that
disagree about a task cannot bounce it between them.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker.errors
import msgspec
import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import Read, Tick
from orion.actors.state_view import StateView
from orion.actors.ticker import TickPlan
from orion.api import protocol as api
from orion.api.lookup import resolve_task
from orion.api.server import ReplyFn
from orion.cluster.node_requests import NodeAnswer, NodeAsk, decode_node_message, encode_node_message
from orion.cluster.outcome import Outcome
from orion.transport.frames import Channel
from orion.worker.docker_worker import DockerWorker
from orion.worker.log_reader import CursorError, read_logs
from orion.worker.types import WorkerError

READERS = 8  # Docker log reads at once on this node
IDLE_TICK_S = 5.0  # between ticks while no forwarded request is out
MAX_READS = 64  # reads queued or running; more are refused (unavailable) until some finish


@dataclass(frozen=True, slots=True)
class LogsCall:
    request: api.TaskLogs
    reply: ReplyFn


@dataclass(frozen=True, slots=True)
class _Located:
    request: api.TaskLogs
    reply: ReplyFn
    outcome: Outcome
    local: bool = False  # the read looked at this node's own tasks only (see _locate_task)


@dataclass(frozen=True, slots=True)
class _NodeFrame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class TaskPlace:
    task_id: str
    state: str
    node_id: str
    address: str  # the node's Raft address ("" unknown)


def _locate(ref: str) -> Callable[[StateView], TaskPlace]:
    def query(view: StateView) -> TaskPlace:
        task = resolve_task(view.fsm, ref)
        address = ""
        record = view.fsm.node(task.node_id) if task.node_id else None
        if record is not None and record.meta.raft_port:
            address = f"{record.meta.address}:{record.meta.raft_port}"
        return TaskPlace(task.id, task.state, task.node_id, address)

    return query


class LogsActor(NodeActor):
    def __init__(
        self,
        node_id: str,
        origin: str,
        raft: pykka.ActorRef,
        docker_worker: DockerWorker,
        send: Callable[[str, Channel, bytes], None],
        on_fatal: FatalHandler,
        request_timeout: float,
    ) -> None:
        """``origin``: this node's Raft address (answers to our requests come there);
        ``send(address, channel, payload)``: the peer transport's send."""
        super().__init__(on_fatal)
        self.node_id = node_id
        self.origin = origin
        self.raft = raft
        self.docker = docker_worker
        self.send = send
        self.timeout = request_timeout
        self._tick_plan = TickPlan()
        self._req_ids = itertools.count(1)
        self._sent: dict[int, tuple[ReplyFn, float]] = {}  # req id -> (reply, deadline)
        self._reads = threading.BoundedSemaphore(MAX_READS)
        self._pool = ThreadPoolExecutor(READERS, thread_name_prefix=f"{node_id}-logs")

    def on_stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for reply, _ in self._sent.values():
            reply(api.Reply.failure(api.ErrorCode.UNAVAILABLE, "node is shutting down"))
        self._sent.clear()

    def frame_handler(self) -> Callable[[Channel, bytes], None]:
        """A transport callback (the transport's thread): hands NODE frames to this actor."""
        ref = self.actor_ref

        def on_frame(channel: Channel, payload: bytes) -> None:
            if channel == Channel.NODE:
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.tell(_NodeFrame(payload))

        return on_frame

    def on_receive(self, message: Any) -> Any:
        match message:
            case LogsCall(request, reply):
                self._locate_task(request, reply, local=True)
            case _Located(request, reply, outcome, True) if outcome.code == api.ErrorCode.NOT_FOUND:
                self._locate_task(request, reply, local=False)
            case _Located(request, reply, outcome):
                self._route(request, reply, outcome)
            case _NodeFrame(payload):
                try:
                    self._on_frame(payload)
                except (msgspec.DecodeError, msgspec.ValidationError, api.RequestError) as exc:
                    logger.debug("logs: dropped a malformed node frame: {}", exc)
            case Tick(now, gate):
                if gate is not None:
                    gate.release()
                self._tick_plan.ticked(gate)
                self._expire(now)
            case _:
                logger.warning("logs actor: unexpected message {!r}", type(message).__name__)
        # Ticks only expire forwarded requests: with none out the actor sleeps; otherwise it is
        # ticked when the first of them is due.
        if self._sent:
            self._tick_plan.ask(min(deadline for _, deadline in self._sent.values()))
        elif isinstance(message, Tick):
            self._tick_plan.ask(message.now + IDLE_TICK_S)
        return None

    def _locate_task(self, request: api.TaskLogs, reply: ReplyFn, *, local: bool) -> None:
        """Find the task: first as a node-local read (a worker, issue 20, serves the logs of its
        own tasks from its fed state), and only when it is not found there as a read of the
        cluster (a worker refuses it as not_leader, naming the members: the client asks one)."""
        ref = self.actor_ref

        def located(outcome: Outcome) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_Located(request, reply, outcome, local))

        self.raft.tell(Read(_locate(request.id), located, stale=True, timeout=self.timeout, local=local))

    def _route(self, request: api.TaskLogs, reply: ReplyFn, outcome: Outcome) -> None:
        if not outcome.ok:
            reply(api.Reply.failure(outcome.code or api.ErrorCode.INTERNAL, outcome.message))
            return
        place: TaskPlace = outcome.value
        if not place.node_id:
            reply(
                api.Reply.failure(
                    api.ErrorCode.NOT_FOUND, f"task {place.task_id} is {place.state} on no node: no logs yet"
                )
            )
        elif place.node_id == self.node_id:
            self._read_here(place.task_id, request, reply)
        elif not place.address:
            reply(
                api.Reply.failure(
                    api.ErrorCode.UNAVAILABLE,
                    f"task {place.task_id} runs on {place.node_id}, whose address is not known yet",
                )
            )
        else:
            req_id = next(self._req_ids)
            self._sent[req_id] = (reply, time.monotonic() + request.wait + self.timeout)
            ask = NodeAsk(req_id, self.origin, place.task_id, api.encode_request(request))
            self.send(place.address, Channel.NODE, encode_node_message(ask))

    def _on_frame(self, payload: bytes) -> None:
        message = decode_node_message(payload)
        if isinstance(message, NodeAnswer):
            sent = self._sent.pop(message.req_id, None)
            if sent is not None:
                sent[0](api.decode_reply(message.reply))
            return
        request = api.decode_request(message.request)
        if not isinstance(request, api.TaskLogs):
            return
        origin, req_id, send = message.origin, message.req_id, self.send

        def answer(reply: api.Reply) -> None:
            send(origin, Channel.NODE, encode_node_message(NodeAnswer(req_id, api.encode_reply(reply))))

        self._read_here(message.task_id, request, answer)

    def _expire(self, now: float) -> None:
        expired = [req_id for req_id, (_, deadline) in self._sent.items() if deadline <= now]
        for req_id in expired:
            reply, _ = self._sent.pop(req_id)
            why = "the node running the task did not answer in time"
            reply(api.Reply.failure(api.ErrorCode.TIMEOUT, why))

    def _read_here(self, task_id: str, request: api.TaskLogs, reply: ReplyFn) -> None:
        if not self._reads.acquire(blocking=False):
            reply(api.Reply.failure(api.ErrorCode.UNAVAILABLE, f"{self.node_id}: too many log reads at once"))
            return
        try:
            self._pool.submit(self._read, task_id, request, reply)
        except RuntimeError:  # shutting down
            self._reads.release()
            reply(api.Reply.failure(api.ErrorCode.UNAVAILABLE, "node is shutting down"))

    def _read(self, task_id: str, request: api.TaskLogs, reply: ReplyFn) -> None:
        """On a pool thread: Docker calls block."""
        try:
            reply(self._read_reply(task_id, request))
        except Exception as exc:  # never lose the reply: the client would wait out its timeout
            logger.exception("logs: reading task {} failed", task_id)
            reply(api.Reply.failure(api.ErrorCode.INTERNAL, f"reading logs failed: {exc}"))
        finally:
            self._reads.release()

    def _read_reply(self, task_id: str, request: api.TaskLogs) -> api.Reply:
        try:
            container = self.docker.container(task_id)
            if container is None:
                return api.Reply.failure(
                    api.ErrorCode.NOT_FOUND,
                    f"task {task_id} has no container on {self.node_id} (not started yet, or removed)",
                )
            read = read_logs(
                container,
                request.cursor,
                tail=request.tail,
                since=request.since,
                max_bytes=request.max_bytes,
                wait=request.wait,
            )
        except CursorError as exc:
            return api.Reply.failure(api.ErrorCode.INVALID, str(exc))
        except docker.errors.NotFound:
            return api.Reply.failure(
                api.ErrorCode.NOT_FOUND, f"task {task_id}: its container on {self.node_id} was removed"
            )
        except (docker.errors.DockerException, WorkerError) as exc:
            return api.Reply.failure(api.ErrorCode.UNAVAILABLE, f"{self.node_id}: docker: {exc}")
        chunk = api.LogChunk(text=read.text, cursor=read.cursor, running=read.running, node=self.node_id)
        return api.Reply.success(chunk)
