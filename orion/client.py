"""The Python client of an Orion cluster (DESIGN.md "Client surface").

    from orion import client
    task = client.submit("nginx", memory="256MiB", ports={"80/tcp": "8080"})
    client.Client(["127.0.0.1:7300", "127.0.0.1:7301"]).wait(task.id, "Running", timeout=30)

Requests use the Lazy Pirate pattern (ZeroMQ guide, chapter 4): a REQ socket, a poll with a
timeout, and on silence the socket is closed, reopened on the next endpoint, and the request
sent again. A submit carries an id chosen here once, so a retried submit never creates a
second task.

Credentials: a secured cluster (the default) wants a client token with every request. The
token is taken from ``Client(token=...)``, else ``ORION_TOKEN``, else the file named by
``ORION_TOKEN_FILE`` (first line). It travels as its own frame before the request.

Thread safety: a Client owns a ZeroMQ socket, which must not be shared between threads.
Use one Client per thread. The module-level helpers use one default Client per thread.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import zmq

from orion.api.protocol import (
    MAX_REPLY,
    WRITE_REQUESTS,
    BlockPeers,
    ErrorCode,
    ListNodes,
    ListTasks,
    NodeInfo,
    RaftInfo,
    RaftStatus,
    Request,
    RequestError,
    decode_reply,
    encode_request,
    restart_fields,
    typed_result,
    validate_request,
)
from orion.model import RestartSpec, Task, TaskState
from orion.security.keys import read_tokens
from orion.units import parse_size

DEFAULT_ENDPOINT = "127.0.0.1:7300"
TERMINAL_STATES = frozenset({TaskState.FAILED, TaskState.STOPPED})

__all__ = [
    "Client",
    "InvalidRequest",
    "NoQuorum",
    "NotFound",
    "OrionError",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "default_endpoints",
    "default_token",
    "nodes",
    "raft",
    "remove",
    "stop",
    "submit",
    "task",
    "tasks",
    "wait",
]


class OrionError(Exception):
    """An error reported by the cluster (or about reaching it); ``code`` as in the protocol."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(OrionError):
    pass


class InvalidRequest(OrionError):
    pass


class NoQuorum(OrionError):
    pass


class Unavailable(OrionError):
    pass


class Timeout(OrionError):
    pass


class Unauthorized(OrionError):
    """The cluster wants a (valid) client token: set ORION_TOKEN or pass ``token=``."""


_ERRORS: dict[str, type[OrionError]] = {
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.INVALID: InvalidRequest,
    ErrorCode.NO_QUORUM: NoQuorum,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.TIMEOUT: Timeout,
    ErrorCode.UNAUTHORIZED: Unauthorized,
}


def error_for(code: str, message: str) -> OrionError:
    return _ERRORS.get(code, OrionError)(code, message)


def default_endpoints() -> list[str]:
    raw = os.environ.get("ORION_ENDPOINTS", "")
    endpoints = [e.strip() for e in raw.split(",") if e.strip()]
    return endpoints or [DEFAULT_ENDPOINT]


def default_token() -> str | None:
    """ORION_TOKEN, else the first token in the file ORION_TOKEN_FILE names, else None."""
    token = os.environ.get("ORION_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("ORION_TOKEN_FILE", "").strip()
    return read_token_file(path) if path else None


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The first token of a token file (as written by ``orion keygen``)."""
    return read_tokens(Path(path))[0]


def normalize_ports(ports: dict[str, str | int | None] | None) -> dict[str, str]:
    """{"80/tcp": "8080"}; a container port without protocol means tcp; host ports may be ints.
    A host port of 0, "" or None asks the cluster to pick a free one (the task's
    ``host_ports`` then says which)."""
    result: dict[str, str] = {}
    for container, host in (ports or {}).items():
        key = str(container)
        result[key if "/" in key else f"{key}/tcp"] = "0" if host in (None, "") else str(host)
    return result


class Client:
    def __init__(
        self,
        endpoints: list[str] | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        token: str | None = None,
    ) -> None:
        """``timeout`` bounds each attempt; ``retries`` is how many rounds over all endpoints.

        ``token``: the client token of a secured cluster (default: ``default_token()``).
        """
        self.endpoints = list(endpoints) if endpoints else default_endpoints()
        token = token if token is not None else default_token()
        self._token = token.encode() if token else b""
        if timeout <= 0 or retries < 1:
            raise ValueError("timeout must be > 0 and retries >= 1")
        self.timeout = timeout
        self.retries = retries
        self._context = zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._current = 0  # index of the endpoint that answered last

    # ------------------------------------------------------------------ API

    def submit(
        self,
        image: str,
        *,
        name: str | None = None,
        memory: int | str = 0,
        cpu: float = 0.0,
        disk: int | str = 0,
        ports: dict[str, str | int | None] | None = None,
        node_selectors: dict[str, str] | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        id: str | None = None,
        restart: str | dict[str, Any] | RestartSpec | None = None,
    ) -> Task:
        task_id = id or uuid.uuid4().hex  # chosen once: every retry carries the same id
        try:
            fields: dict[str, Any] = {
                "op": "SubmitTask",
                "id": task_id,
                "name": name if name is not None else f"task-{task_id[:8]}",
                "image": image,
                "memory": parse_size(memory, "memory"),
                "cpu": cpu,
                "disk": parse_size(disk, "disk"),
                "port_bindings": normalize_ports(ports),
                "node_selectors": dict(node_selectors or {}),
                "command": list(command) if command is not None else None,
                "env": dict(env or {}),
                # "always", or {"policy": "on-failure", "attempts": 5, "interval": "10m", ...}
                "restart": restart_fields(restart),
            }
        except ValueError as exc:
            raise InvalidRequest(ErrorCode.INVALID, str(exc)) from None
        return self._call(self._checked(fields))

    def tasks(self, *, stale: bool = False) -> list[Task]:
        return self._call(ListTasks(stale=stale))

    def task(self, id: str, *, stale: bool = False) -> Task:
        return self._call(self._checked({"op": "GetTask", "id": id, "stale": stale}))

    def stop(self, id: str) -> Task:
        return self._call(self._checked({"op": "StopTask", "id": id}))

    def remove(self, id: str, force: bool = False) -> Task:
        """Delete a Stopped or Failed task from the cluster state and return it as it was.

        An active task (Pending, Scheduled, Running) is refused with InvalidRequest unless
        ``force``, which stops and removes it (as ``docker rm --force``). NotFound when there
        is no such task, also when a retry follows an attempt that got no answer but removed it.
        """
        return self._call(self._checked({"op": "RemoveTask", "id": id, "force": force}))

    def nodes(self, *, stale: bool = False) -> list[NodeInfo]:
        return self._call(ListNodes(stale=stale))

    def raft(self, *, stale: bool = True) -> RaftInfo:
        """Raft status of the node that answers (stale by default: it is that node's view)."""
        return self._call(RaftStatus(stale=stale))

    def block_peers(self, addresses: list[str]) -> list[str]:
        """Fault injection for tests: the answering node drops traffic with these peers."""
        return self._call(BlockPeers(addresses=list(addresses)))

    def wait(self, id: str, state: str, timeout: float = 60.0, interval: float = 0.2) -> Task:
        """Poll until the task reaches ``state``; Timeout after ``timeout`` seconds.

        Raises OrionError("unexpected_state") when the task ends in another terminal state
        (e.g. Failed while waiting for Running), with the task's reason.
        """
        deadline = time.monotonic() + timeout
        while True:
            current = self.task(id)
            if current.state == state:
                return current
            if current.state in TERMINAL_STATES:
                raise OrionError(
                    "unexpected_state",
                    f"task {id} is {current.state}, not {state}: {current.reason or 'no reason'}",
                )
            if time.monotonic() >= deadline:
                raise Timeout(
                    ErrorCode.TIMEOUT,
                    f"task {id} still {current.state} after {timeout:g}s (waiting for {state})"
                    + (f": {current.reason}" if current.reason else ""),
                )
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ Lazy Pirate

    @staticmethod
    def _checked(fields: dict[str, Any]) -> Request:
        try:
            return validate_request(fields)
        except RequestError as exc:
            raise InvalidRequest(ErrorCode.INVALID, str(exc)) from None

    def _open(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY)
            sock.connect(f"tcp://{self.endpoints[self._current]}")
            self._socket = sock
        return self._socket

    def _rotate(self) -> None:
        """Drop the socket (a REQ socket cannot resend after silence) and try the next endpoint."""
        self.close()
        self._current = (self._current + 1) % len(self.endpoints)

    def _call(self, request: Request) -> Any:
        body = encode_request(request)
        failures: list[str] = []
        unanswered = False  # an earlier attempt went silent: it may still be applied
        attempts = self.retries * len(self.endpoints)
        for attempt in range(attempts):
            endpoint = self.endpoints[self._current]
            sock = self._open()
            if self._token:
                sock.send_multipart((self._token, body))
            else:
                sock.send(body)
            if not sock.poll(int(self.timeout * 1000), zmq.POLLIN):
                failures.append(f"{endpoint} (no answer in {self.timeout:g}s)")
                unanswered = True
                self._rotate()
                continue
            try:
                reply = decode_reply(sock.recv())
            except Exception as exc:  # a reply we cannot read: treat the endpoint as broken
                failures.append(f"{endpoint} (bad reply: {exc})")
                unanswered = True
                self._rotate()
                continue
            if reply.ok:
                try:
                    return typed_result(request, reply.result)
                except msgspec.ValidationError as exc:
                    raise OrionError(
                        ErrorCode.INTERNAL, f"{endpoint} sent a malformed result: {exc}"
                    ) from None
            error = reply.error
            code, message = (
                (error.code, error.message) if error else (ErrorCode.INTERNAL, "error without details")
            )
            if code == ErrorCode.NO_QUORUM and unanswered and isinstance(request, WRITE_REQUESTS):
                # This refusal speaks only for this attempt; the silent one may commit later.
                raise Timeout(
                    ErrorCode.TIMEOUT,
                    f"outcome unknown: {'; '.join(_dedupe(failures))}, then {endpoint}: {message}",
                )
            if code != ErrorCode.UNAVAILABLE:
                raise error_for(code, message)
            # This node cannot serve now (starting, no leader known yet): another one may.
            # After a whole round of such answers, back off briefly so an election can finish.
            failures.append(f"{endpoint} ({message})")
            self._rotate()
            round_number, position = divmod(attempt + 1, len(self.endpoints))
            if position == 0 and attempt + 1 < attempts:
                time.sleep(min(1.0, 0.1 * 2 ** (round_number - 1)))
        raise Unavailable(ErrorCode.UNAVAILABLE, "no endpoint answered: " + "; ".join(_dedupe(failures)))


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------- module level

_local = threading.local()


def _default() -> Client:
    client = getattr(_local, "client", None)
    if client is None:
        client = Client()
        _local.client = client
    return client


def submit(image: str, **kwargs: Any) -> Task:
    """Submit a task through the default client (endpoints from ORION_ENDPOINTS)."""
    return _default().submit(image, **kwargs)


def tasks() -> list[Task]:
    return _default().tasks()


def task(id: str) -> Task:
    return _default().task(id)


def stop(id: str) -> Task:
    return _default().stop(id)


def remove(id: str, force: bool = False) -> Task:
    return _default().remove(id, force)


def nodes() -> list[NodeInfo]:
    return _default().nodes()


def raft() -> RaftInfo:
    return _default().raft()


def wait(id: str, state: str, timeout: float = 60.0) -> Task:
    return _default().wait(id, state, timeout)
