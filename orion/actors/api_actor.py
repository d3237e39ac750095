"""The API's shell: turns client requests (ZeroMQ, REST, both through one handler) into
FSM commands and reads, and answers each when its outcome is known."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import Outcome, Propose, Read
from orion.actors.state_view import StateView
from orion.actors.volume_requests import volume_command, volume_query
from orion.api import protocol as api
from orion.api.lookup import filtered_tasks, resolve_task, with_node_state
from orion.api.requests import task_of
from orion.api.server import ReplyFn
from orion.fsm import commands as fsm_commands
from orion.model import Task


@dataclass(frozen=True, slots=True)
class ApiCall:
    request: api.Request
    reply: ReplyFn


def _reply_with(reply: ReplyFn) -> Any:
    def callback(outcome: Outcome) -> None:
        if outcome.ok:
            value = outcome.value
            reply(api.Reply.success(value if _passes_as_is(value) else msgspec.to_builtins(value)))
        else:
            reply(api.Reply.failure(outcome.code or api.ErrorCode.INTERNAL, outcome.message))

    return callback


def _passes_as_is(value: Any) -> bool:
    """Builtins, and a Task: a submit's answer, the hot reply. The FSM never changes a stored
    Task in place (a change stores a new one), so it may leave the Raft thread as it is; the
    encoders write it byte for byte as its builtins, and the submit's conflict check
    (``checked_reply``) then compares it without converting it back."""
    return value is None or isinstance(value, str | int | float | bool | list | dict | Task)


def _task_query(ref: str) -> Any:
    """The task ``ref`` names (id, unique id prefix or name: orion/api/lookup.py)."""

    def query(view: StateView) -> Any:
        return msgspec.to_builtins(resolve_task(view.fsm, ref))

    return query


def _task_id_query(ref: str) -> Any:
    def query(view: StateView) -> Any:
        return resolve_task(view.fsm, ref).id

    return query


def _tasks_query(request: api.ListTasks) -> Any:
    def query(view: StateView) -> Any:
        # Encoded inside the Raft actor's thread: the FSM's records keep changing after we reply.
        return msgspec.to_builtins(filtered_tasks(view.fsm, request.states, request.node, request.service))

    return query


def _nodes_query(view: StateView) -> Any:
    return msgspec.to_builtins(with_node_state(view.nodes(), view.fsm))


def _node_query(node_id: str) -> Any:
    def query(view: StateView) -> Any:
        found = [info for info in view.nodes() if info.id == node_id]
        if not found:
            raise LookupError(f"no node with id {node_id}")
        return msgspec.to_builtins(with_node_state(found, view.fsm)[0])

    return query


def node_command(request: api.DrainNode | api.SetNodeEligibility, now: float) -> fsm_commands.Command:
    """The FSM command of a node write (drain, eligibility)."""
    if isinstance(request, api.DrainNode):
        return fsm_commands.DrainNode(node_id=request.node, deadline=request.deadline, at=now)
    return fsm_commands.SetNodeEligibility(node_id=request.node, eligible=request.eligible, at=now)


def _raft_query(view: StateView) -> Any:
    return msgspec.to_builtins(view.raft())


def _services_query(view: StateView) -> Any:
    return msgspec.to_builtins(view.fsm.services())


def _service_query(name: str) -> Any:
    def query(view: StateView) -> Any:
        service = view.fsm.service(name)
        if service is None:
            raise LookupError(f"no service named {name}")
        return msgspec.to_builtins(service)

    return query


def _service_tasks_query(name: str) -> Any:
    def query(view: StateView) -> Any:
        tasks = view.fsm.service_tasks(name)
        if not tasks and view.fsm.service(name) is None:
            raise LookupError(f"no service named {name}")
        return msgspec.to_builtins(tasks)

    return query


def submit_command(request: api.SubmitTask) -> bytes:
    """The encoded FSM command of a submit, stamped with this node's wall clock."""
    now = time.time()
    return fsm_commands.encode_command(fsm_commands.SubmitTask(task=task_of(request, now), at=now))


def service_command(request: api.Request, now: float) -> fsm_commands.Command | None:
    """The FSM command a service write asks for (None: not a service write)."""
    match request:
        case api.CreateService(spec=spec, request_id=request_id):
            return fsm_commands.CreateService(spec=spec, request_id=request_id, at=now)
        case api.UpdateService(spec=spec, expected_version=expected):
            return fsm_commands.UpdateService(spec=spec, expected_version=expected, at=now)
        case api.ScaleService(name=name, replicas=replicas, expected_version=expected):
            return fsm_commands.ScaleService(name=name, replicas=replicas, expected_version=expected, at=now)
        case api.RollbackService(name=name, expected_version=expected):
            return fsm_commands.RollbackService(
                name=name, reason="by user", expected_version=expected, at=now
            )
        case api.PauseService(name=name):
            return fsm_commands.PauseServiceUpdate(name=name, at=now)
        case api.ResumeService(name=name):
            return fsm_commands.ResumeServiceUpdate(name=name, at=now)
        case api.RemoveService(name=name, expected_version=expected):
            return fsm_commands.RemoveService(name=name, expected_version=expected, at=now)
    return None


class ApiActor(NodeActor):
    def __init__(
        self,
        raft: pykka.ActorRef,
        request_timeout: float,
        on_fatal: FatalHandler,
        block_peers: Callable[[set[str]], None] | None = None,
    ) -> None:
        super().__init__(on_fatal)
        self.raft = raft
        self.timeout = request_timeout
        self.block_peers = block_peers  # set only with [testing] fault_injection = true

    def handler(self) -> Any:
        """The callable the ZeroMQ and REST servers call from their own threads.

        A submit, the hot write, goes from the server's thread straight to the Raft actor
        (building and encoding its command takes microseconds): one thread hand-off and one
        mailbox pass fewer per submit than through this actor. Everything else comes here."""
        ref, raft, timeout = self.actor_ref, self.raft, self.timeout

        def handle(request: api.Request, reply: ReplyFn) -> None:
            try:
                if isinstance(request, api.SubmitTask):
                    raft.tell(Propose(submit_command(request), _reply_with(reply), timeout=timeout))
                else:
                    ref.tell(ApiCall(request, reply))
            except pykka.ActorDeadError:
                reply(api.Reply.failure(api.ErrorCode.UNAVAILABLE, "node is shutting down"))
            except Exception as exc:  # one bad request must never take the API down
                logger.exception("api: request {} failed", type(request).__name__)
                reply(api.Reply.failure(api.ErrorCode.INTERNAL, f"internal error: {exc}"))

        return handle

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, ApiCall):
            logger.warning("api actor: unexpected message {!r}", type(message).__name__)
            return None
        try:
            self._serve(message.request, message.reply)
        except Exception as exc:  # one bad request must never take the API down
            logger.exception("api: request {} failed", type(message.request).__name__)
            message.reply(api.Reply.failure(api.ErrorCode.INTERNAL, f"internal error: {exc}"))
        return None

    def _serve(self, request: api.Request, reply: ReplyFn) -> None:
        callback = _reply_with(reply)
        command = service_command(request, time.time()) or volume_command(request, time.time())
        if command is not None:
            self._write(command, callback)
            return
        match request:
            case api.SubmitTask():
                self.raft.tell(Propose(submit_command(request), callback, timeout=self.timeout))
            case api.StopTask(id=ref):
                self._write_resolved(
                    ref, lambda task_id: fsm_commands.StopTask(task_id=task_id, at=time.time()), callback
                )
            case api.RemoveTask(id=ref, force=force):
                self._write_resolved(
                    ref,
                    lambda task_id: fsm_commands.RemoveTask(task_id=task_id, force=force, at=time.time()),
                    callback,
                )
            case api.ListTasks():
                self.raft.tell(
                    Read(_tasks_query(request), callback, stale=request.stale, timeout=self.timeout)
                )
            case api.GetTask(id=task_id):
                self.raft.tell(
                    Read(_task_query(task_id), callback, stale=request.stale, timeout=self.timeout)
                )
            case api.DrainNode() | api.SetNodeEligibility():
                self._write_then_read(node_command(request, time.time()), _node_query(request.node), callback)
            case api.ListNodes():
                self.raft.tell(Read(_nodes_query, callback, stale=request.stale, timeout=self.timeout))
            case api.ListServices():
                self.raft.tell(Read(_services_query, callback, stale=request.stale, timeout=self.timeout))
            case api.GetService(name=name):
                self._read(_service_query(name), callback, request.stale)
            case api.ServiceTasks(name=name):
                self._read(_service_tasks_query(name), callback, request.stale)
            case api.ListVolumes() | api.GetVolume():
                self._read(volume_query(request), callback, request.stale)
            case api.RaftStatus():
                self.raft.tell(Read(_raft_query, callback, stale=True, timeout=self.timeout, local=True))
            case api.BlockPeers(addresses=addresses):
                if self.block_peers is None:
                    reply(
                        api.Reply.failure(
                            api.ErrorCode.INVALID,
                            "fault injection is disabled on this node ([testing] fault_injection = false)",
                        )
                    )
                    return
                self.block_peers(set(addresses))
                logger.warning("fault injection: blocking peers {}", sorted(addresses) or "none")
                reply(api.Reply.success(sorted(addresses)))

    def _read(self, query: Any, callback: Any, stale: bool) -> None:
        self.raft.tell(Read(query, callback, stale=stale, timeout=self.timeout))

    def _write_resolved(self, ref: str, command_for: Callable[[str], Any], callback: Any) -> None:
        """Resolve the task ``ref`` names on the leader's state, then propose the command for
        its id (the read is linearizable, so a task submitted just before is found)."""

        def resolved(outcome: Outcome) -> None:
            if outcome.ok:
                self._write(command_for(outcome.value), callback)
            else:
                callback(outcome)

        self._read(_task_id_query(ref), resolved, stale=False)

    def _write_then_read(self, command: Any, query: Any, callback: Any) -> None:
        """Propose ``command``; once applied, answer with ``query`` (e.g. the node as
        ``orion nodes`` shows it, rather than the FSM's bare record)."""

        def written(outcome: Outcome) -> None:
            if outcome.ok:
                self._read(query, callback, stale=False)
            else:
                callback(outcome)

        self._write(command, written)

    def _write(self, command: Any, callback: Any) -> None:
        data = fsm_commands.encode_command(command)
        self.raft.tell(Propose(data, callback, timeout=self.timeout))
