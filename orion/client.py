"""The Python client of an Orion cluster (DESIGN.md "Client surface").

    from orion import client
    task = client.submit("nginx", memory="256MiB", ports={"80/tcp": "8080"})
    client.Client(["127.0.0.1:7301", "127.0.0.1:7302"]).wait(task.id, "Running", timeout=30)

Endpoints are "host:port" of the nodes' API ports ([ports] api); without ``endpoints`` and
ORION_ENDPOINTS, the three of the shipped configs (127.0.0.1:7301-7303). A malformed one, or
one where a REST (HTTP) server answers, raises InvalidEndpoint naming it.

Requests use the Lazy Pirate pattern (ZeroMQ guide, chapter 4): a REQ socket, a poll with a
timeout, and on silence the socket is closed, reopened on the next endpoint, and the request
sent again. Before a socket is opened, one TCP probe (orion/api/endpoints.py) checks that a
ZeroMQ peer listens there, so a closed port is skipped at once. A Client keeps using the
endpoint that answered last. A submit carries an id chosen here once, so a retried submit
never creates a second task; the same id with a different spec is a ``Conflict``.

``command`` is a list of arguments (``["sleep", "100"]``), never a string: a string is
refused with InvalidRequest naming the field, as the REST mirror refuses it (400). Orion does
no shell parsing, so what runs is exactly what was given.

Credentials: a secured cluster (the default) wants a client token with every request. The
token is taken from ``Client(token=...)``, else ``ORION_TOKEN``, else the file named by
``ORION_TOKEN_FILE`` (first line). It travels as its own frame before the request. The API
is encrypted (CURVE): the client expects the cluster's public key, from ``Client(server_key=)``,
``ORION_SERVER_KEY``, ``ORION_SERVER_KEY_FILE``, a client bundle or ``cluster.key`` beside the
token file (orion/security/client_credentials.py has the order; the CLI uses the same).

Thread safety: a Client owns a ZeroMQ socket, which must not be shared between threads.
Use one Client per thread. The module-level helpers use one default Client per thread.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import msgspec
import zmq

from orion import client_streams
from orion.api.endpoints import InvalidEndpointText, parse_endpoints, probe, zmq_address
from orion.api.mechanism_probe import server_mechanism
from orion.api.protocol import (
    MAX_REPLY,
    RETRYABLE,
    WRITE_REQUESTS,
    BlockPeers,
    ErrorCode,
    ListNodes,
    ListServices,
    ListVolumes,
    NodeInfo,
    RaftInfo,
    RaftStatus,
    Request,
    RequestError,
    VolumeInfo,
    decode_reply,
    encode_request,
    normalize_port_bindings,
    typed_result,
    validate_request,
)
from orion.api.requests import (
    build_create_service,
    build_create_volume,
    build_list_tasks,
    build_submit,
    build_update_service,
    service_fields,
    service_spec,
    task_of,
)
from orion.fsm.events import Event
from orion.fsm.tombstones import is_removed_task_message
from orion.model import Desired, RestartSpec, Task, TaskState
from orion.security import client_credentials
from orion.security.client_credentials import read_token_file
from orion.services.spec import Service, ServiceSpec, UpdateState
from orion.units import parse_duration
from orion.volumes.spec import Volume

T = TypeVar("T")

# The API ports of config/node1.toml .. node3.toml.
DEFAULT_ENDPOINTS = ("127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303")
TERMINAL_STATES = frozenset({TaskState.FAILED, TaskState.STOPPED})
STOPPING = "Stopping"  # shown, never stored: see shown_state
_STATE_NAMES = {state.value.lower(): state.value for state in TaskState}

__all__ = [
    "Client",
    "Conflict",
    "Gone",
    "InvalidEndpoint",
    "InvalidRequest",
    "NoQuorum",
    "NotFound",
    "OrionError",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "default_endpoints",
    "default_token",
    "drain_node",
    "nodes",
    "raft",
    "remove",
    "set_node_eligibility",
    "shown_state",
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
        # An earlier attempt of the same call went unanswered: it may have been applied.
        self.after_silence = False


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


class Conflict(OrionError):
    """The task id is taken by a task with another spec (a retry with the same spec is not), or
    was of a task removed lately; a service name or published port is taken; a version moved on."""


class Gone(OrionError):
    """Events after the asked Raft index are no longer kept (``Client.events``): start again
    from a fresh listing, like Kubernetes' "resource version too old"."""


class InvalidEndpoint(OrionError, ValueError):
    """An endpoint that is not "host:port", or where something else than an Orion API
    answers (e.g. the REST port); raised at once, without retries: retrying cannot help."""


INVALID_ENDPOINT = "invalid_endpoint"  # client side only: no node sends it

_ERRORS: dict[str, type[OrionError]] = {
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.INVALID: InvalidRequest,
    ErrorCode.NO_QUORUM: NoQuorum,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.TIMEOUT: Timeout,
    ErrorCode.UNAUTHORIZED: Unauthorized,
    ErrorCode.CONFLICT: Conflict,
    ErrorCode.GONE: Gone,
}


def error_for(code: str, message: str) -> OrionError:
    return _ERRORS.get(code, OrionError)(code, message)


def checked_endpoints(endpoints: list[str] | str, source: str = "endpoints") -> list[str]:
    """The endpoints as given, checked to be "host:port"; InvalidEndpoint names the bad one."""
    try:
        return parse_endpoints(endpoints)
    except InvalidEndpointText as exc:
        raise InvalidEndpoint(INVALID_ENDPOINT, f"{source}: {exc}") from None


def default_endpoints() -> list[str]:
    """ORION_ENDPOINTS (comma separated), else the API ports of the shipped configs."""
    endpoints = checked_endpoints(os.environ.get("ORION_ENDPOINTS", ""), "ORION_ENDPOINTS")
    return endpoints or list(DEFAULT_ENDPOINTS)


def default_token() -> str | None:
    """ORION_TOKEN, else the first token in the file ORION_TOKEN_FILE names, else None."""
    token = os.environ.get("ORION_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("ORION_TOKEN_FILE", "").strip()
    return read_token_file(path, "ORION_TOKEN_FILE") if path else None


def shown_state(task: Task) -> str:
    """The task's state as people read it: the stored one, except ``Stopping`` for a
    stopped task whose container the cluster still counts as up on its node.

    The FSM marks a task Stopped as soon as the stop commits; its node stops the container
    afterwards. Until that node reports the container gone, the task's published host ports
    stay held there (``port_holds`` of kind "held" on its node), and that is what marks it
    Stopping. A task without published ports carries no such mark in the record, and shows
    Stopped at once.
    """
    if (
        task.state == TaskState.STOPPED
        and task.desired == Desired.STOP
        and task.node_id
        and any(hold.kind == "held" and hold.node_id == task.node_id for hold in task.port_holds)
    ):
        return STOPPING
    return task.state


def state_name(state: str) -> str:
    """The TaskState value for ``state``, matched without regard to case ("running" is
    Running: states differ in more than case, and Python code tends to write them lower
    case); InvalidRequest naming the field ``state`` for anything else."""
    canonical = _STATE_NAMES.get(str(state).lower())
    if canonical is None:
        raise InvalidRequest(
            ErrorCode.INVALID,
            f"state: unknown state {state!r}; expected one of {', '.join(s.value for s in TaskState)}",
        )
    return canonical


def normalize_ports(ports: dict[str, str | int | None] | None) -> dict[str, str]:
    """{"80/tcp": "8080"}; a container port without protocol means tcp; host ports may be ints.
    A host port of 0, "" or None asks the cluster to pick a free one (the task's
    ``host_ports`` then says which). The protocol's rule, as REST and the CLI apply it."""
    return normalize_port_bindings(ports)


class Client:
    def __init__(
        self,
        endpoints: list[str] | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        token: str | None = None,
        server_key: str | bytes | os.PathLike[str] | None = None,
        bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        """``timeout`` bounds each attempt; ``retries`` is how many rounds over all endpoints.

        ``server_key``: the API's CURVE public key (Z85) or a file holding it; ``bundle``: a
        client bundle file (``orion keygen --client-bundle``). Both default as in
        orion/security/client_credentials.py.

        ``endpoints``: "host:port" of API ports (default: ``default_endpoints()``);
        InvalidEndpoint for a malformed one. ``token``: the client token of a secured cluster
        (default: ``default_token()``; KeyFileError if ORION_TOKEN_FILE names no token file).
        """
        if endpoints is not None and not isinstance(endpoints, str | list | tuple):
            raise InvalidEndpoint(
                INVALID_ENDPOINT, f"endpoints: expected a list of host:port, got {endpoints!r}"
            )
        checked = checked_endpoints(endpoints) if endpoints else []
        if not timeout > 0 or retries < 1:
            raise ValueError(f"timeout must be > 0 (got {timeout!r}) and retries >= 1 (got {retries!r})")
        credentials = client_credentials.resolve(token=token, server_key=server_key, bundle=bundle)
        from_bundle = list(credentials.endpoints) if not os.environ.get("ORION_ENDPOINTS", "").strip() else []
        self.endpoints = checked or checked_endpoints(from_bundle, "bundle") or default_endpoints()
        self._token = credentials.token.encode() if credentials.token else b""
        self._server_key = credentials.server_key
        # Clients have no identity of their own (the token is the credential): a fresh key
        # pair per Client only serves CURVE's encryption.
        self._client_keys = zmq.curve_keypair() if self._server_key else None
        self.timeout = timeout
        self.retries = retries
        self._context = zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._receive_ms = 0  # the open socket's RCVTIMEO: self.timeout when it was last set
        self._current = 0  # index of the endpoint to try first: the one that answered last
        self.last_answered: str | None = None  # the endpoint whose node answered last

    def prefer(self, endpoint: str) -> None:
        """Try ``endpoint`` first from now on (e.g. the one that answered a previous process)."""
        if endpoint in self.endpoints and self.endpoints.index(endpoint) != self._current:
            self.close()
            self._current = self.endpoints.index(endpoint)

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
        volumes: dict[str, str] | list[str] | None = None,
    ) -> Task:
        """Submit a task (``volumes={"data": "/var/lib/app"}`` mounts cluster volumes);
        ``command`` is a list of arguments, a string is an InvalidRequest
        (field ``command``, as REST answers it). Conflict when ``id`` is taken by a task with
        another spec; the same spec again returns the existing task (a safe retry).

        When an attempt went unanswered and the retry finds the id belongs to a task removed
        since, that attempt did create it: the task is returned as it was submitted, Stopped,
        with the cluster's answer as its reason (it is gone: ``task(id)`` is NotFound). Without
        a lost answer, such an id is a Conflict ("choose a new id")."""
        try:
            # The id is chosen here once: every retry of this call carries the same one.
            request = build_submit(
                image,
                id=id,
                name=name,
                memory=memory,
                cpu=cpu,
                disk=disk,
                ports=ports,
                node_selectors=node_selectors,
                command=command,
                env=env,
                restart=restart,
                volumes=volumes,
            )
        except RequestError as exc:
            raise InvalidRequest(ErrorCode.INVALID, str(exc)) from None
        sent_at = time.time()
        try:
            return self._call(request)
        except Conflict as exc:
            if not (exc.after_silence and is_removed_task_message(exc.message, request.id)):
                raise
            removed = task_of(request, sent_at)
            return msgspec.structs.replace(
                removed, state=TaskState.STOPPED.value, desired=Desired.STOP, reason=exc.message
            )

    def tasks(
        self,
        *,
        state: str | list[str] | None = None,
        node: str | None = None,
        service: str | None = None,
        stale: bool = False,
    ) -> list[Task]:
        """Every task, or those in ``state`` (one TaskState or several, any case), on ``node``,
        of ``service``; the node filters them."""
        return self._call(_checked_spec(build_list_tasks, state, node=node, service=service, stale=stale))

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

    def drain_node(self, node: str, deadline: float | str | None = None) -> NodeInfo:
        """Take ``node`` out for maintenance: no new placements; one-off tasks are placed
        elsewhere at once, service tasks replaced elsewhere first and then drained (their
        update policy's pace). ``deadline`` (seconds or "10m"; None: none): then whatever is
        left there is stopped. Returns the node (``drain.remaining`` counts down to 0)."""
        seconds = None
        if deadline is not None:
            try:
                seconds = parse_duration(deadline, "deadline")
            except ValueError as exc:
                raise InvalidRequest(ErrorCode.INVALID, str(exc)) from None
        return self._call(self._checked({"op": "DrainNode", "node": node, "deadline": seconds}))

    def set_node_eligibility(self, node: str, eligible: bool) -> NodeInfo:
        """Stop (False) or resume (True) new placements on ``node``; True also ends a drain."""
        return self._call(self._checked({"op": "SetNodeEligibility", "node": node, "eligible": eligible}))

    def raft(self, *, stale: bool = True) -> RaftInfo:
        """Raft status of the node that answers (stale by default: it is that node's view)."""
        return self._call(RaftStatus(stale=stale))

    def logs(
        self, id: str, follow: bool = False, tail: int | None = None, since: float | str | None = None
    ) -> Iterator[str]:
        """The task's container output as text chunks (whole lines), read on the node that runs
        it: the last ``tail`` lines, or from ``since`` (Unix seconds, or a duration like "10m"
        before now); with ``follow``, goes on while the container runs (orion/client_streams.py)."""
        return client_streams.logs(self, id, follow=follow, tail=tail, since=since)

    def events(
        self, since: int | None = None, types: Iterable[str] | None = None, *, follow: bool = True
    ) -> Iterator[Event]:
        """Committed changes (task, node, service) after Raft index ``since`` (None: all the node
        keeps), resuming on another node after a failure with no gap and no duplicate; ``Gone``
        when they are no longer kept (orion/client_streams.py)."""
        return client_streams.events(self, since, types, follow=follow)

    def block_peers(self, addresses: list[str]) -> list[str]:
        """Fault injection for tests: the answering node drops traffic with these peers."""
        return self._call(BlockPeers(addresses=list(addresses)))

    # ------------------------------------------------------------------ services

    def create_service(
        self,
        name: str,
        image: str | None = None,
        *,
        spec: ServiceSpec | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Service:
        """Create a service from ``name``, ``image`` and friendly fields (``replicas=3,
        ports=["8080:80"], memory="64MiB", health={"kind": "http", "port": 80}``, see
        ``service_fields``), or from a whole ``spec``. Conflict when the name or a published
        port is taken; InvalidRequest naming the field for a bad spec."""
        if spec is None:
            if image is None:
                raise InvalidRequest(ErrorCode.INVALID, "image: is required")
            spec = _checked_spec(service_fields, None, name=name, image=image, **fields)
        elif fields or image is not None:
            raise InvalidRequest(ErrorCode.INVALID, "give either a spec or fields, not both")
        # One id for this create and all its retries: a retry arriving after the service it
        # made was removed is refused instead of making it again.
        return self._call(_checked_spec(build_create_service, spec, uuid.uuid4().hex))

    def update_service(
        self,
        name: str,
        *,
        spec: ServiceSpec | Mapping[str, Any] | None = None,
        change: Callable[[ServiceSpec], ServiceSpec] | None = None,
        attempts: int = 5,
        **fields: Any,
    ) -> Service:
        """Change a service: read it, apply ``fields`` (as ``create_service`` takes them; None
        leaves one unchanged), or ``change``, or replace it with ``spec``; then send it with the
        version read, so a change made meanwhile by someone else is never overwritten: on such
        a conflict it reads again and retries (``attempts`` times). An unchanged spec sends
        nothing and returns the service as it is."""
        for attempt in range(attempts):
            current = self.service(name)
            if spec is not None:
                wanted = self._spec_of(spec)
            else:
                wanted = _checked_spec(service_fields, current.spec, **fields)
            if change is not None:
                wanted = change(wanted)
            if wanted == current.spec:
                return current
            request = _checked_spec(build_update_service, wanted, current.version)
            try:
                return self._call(request)
            except Conflict:
                if self.service(name).version == current.version or attempt + 1 == attempts:
                    raise  # not a version race: a port or name taken
        raise AssertionError("unreachable")

    def scale_service(self, name: str, replicas: int, *, attempts: int = 5) -> Service:
        """Set the replica count, conditional on the version read: a retried request that
        arrives late (its first attempt was parked on a node) never undoes a later change. On
        a conflict it reads again and retries; finding the count already set ends it."""
        for attempt in range(attempts):
            current = self.service(name)
            if current.spec.replicas == replicas:
                return current
            fields = {"op": "ScaleService", "name": name, "replicas": replicas}
            fields["expected_version"] = current.version
            try:
                return self._call(self._checked(fields))
            except Conflict:
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")

    def rollback_service(self, name: str) -> Service:
        """Back to the template before the current one (InvalidRequest if there is none)."""
        current = self.service(name)
        fields = {"op": "RollbackService", "name": name, "expected_version": current.version}
        try:
            return self._call(self._checked(fields))
        except Conflict:
            # A retry after an unanswered attempt that was applied: that rollback is ours.
            after = self.service(name)
            if after.version == current.version + 1 and after.update.state == UpdateState.ROLLING_BACK:
                return after
            raise

    def pause_service(self, name: str) -> Service:
        return self._call(self._checked({"op": "PauseService", "name": name}))

    def resume_service(self, name: str) -> Service:
        return self._call(self._checked({"op": "ResumeService", "name": name}))

    def remove_service(self, name: str, *, attempts: int = 5) -> Service:
        """Remove the service and stop its tasks; returns the service as it was. Conditional
        on the version read, so a late retry never removes a service created again since."""
        for attempt in range(attempts):
            current = self.service(name)
            fields = {"op": "RemoveService", "name": name, "expected_version": current.version}
            try:
                return self._call(self._checked(fields))
            except NotFound:
                return current  # an earlier attempt of this call removed it
            except Conflict:
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")

    def services(self, *, stale: bool = False) -> list[Service]:
        return self._call(ListServices(stale=stale))

    def service(self, name: str, *, stale: bool = False) -> Service:
        return self._call(self._checked({"op": "GetService", "name": name, "stale": stale}))

    def service_tasks(self, name: str, *, stale: bool = False) -> list[Task]:
        """The service's tasks in any state, oldest first (``shown_state`` for display)."""
        return self._call(self._checked({"op": "ServiceTasks", "name": name, "stale": stale}))

    def create_volume(
        self,
        name: str,
        *,
        driver: str = "local",
        options: dict[str, str] | None = None,
        node: str = "",
        access: str = "single-writer",
    ) -> Volume:
        """Create a cluster volume (``access``: single-writer or multi); Conflict if the name is taken."""
        try:
            request = build_create_volume(name, driver=driver, options=options, node=node, access=access)
        except RequestError as exc:
            raise InvalidRequest(ErrorCode.INVALID, str(exc)) from None
        return self._call(request)

    def volumes(self, *, stale: bool = False) -> list[VolumeInfo]:
        """Every volume with the tasks that mount it."""
        return self._call(ListVolumes(stale=stale))

    def volume(self, name: str, *, stale: bool = False) -> VolumeInfo:
        return self._call(self._checked({"op": "GetVolume", "name": name, "stale": stale}))

    def remove_volume(self, name: str) -> Volume:
        """Remove a volume and its data; Conflict while a task mounts it."""
        return self._call(self._checked({"op": "RemoveVolume", "name": name}))

    @staticmethod
    def _spec_of(spec: ServiceSpec | Mapping[str, Any]) -> ServiceSpec:
        return spec if isinstance(spec, ServiceSpec) else _checked_spec(service_spec, spec)

    def wait(self, id: str, state: str, timeout: float = 60.0, interval: float = 0.2) -> Task:
        """Poll until the task reaches ``state``; Timeout after ``timeout`` seconds.

        ``state`` is a TaskState value, in any case ("Running", "running"); anything else is
        an InvalidRequest at once. Raises OrionError("unexpected_state") when the task ends
        in another terminal state (e.g. Failed while waiting for Running), with its reason.
        """
        state = state_name(state)
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

    def _open(self) -> zmq.Socket | str:
        """The socket to the current endpoint, or why that endpoint cannot be used now.

        A new socket is opened only after a probe found a ZeroMQ peer there: a closed port
        answers the probe at once, where a REQ socket would wait out its whole timeout.
        InvalidEndpoint when something else (a REST port) answers: no retry can help.
        """
        if self._socket is None:
            endpoint = self.endpoints[self._current]
            found = probe(endpoint, self.timeout)
            if found.wrong:
                raise InvalidEndpoint(INVALID_ENDPOINT, found.reason)
            # A CURVE listener may hang up on the probe's HTTP bytes before it shows its ZMTP
            # signature: ask it in ZMTP whether it is one.
            hung_up = "reset" in found.reason or "without a word" in found.reason
            mechanism = server_mechanism(endpoint, self.timeout) if found.usable or hung_up else None
            if not found.usable and mechanism is None:
                return found.reason
            self._check_mechanism(endpoint, mechanism)
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY)
            if self._server_key is not None and self._client_keys is not None:
                sock.setsockopt(zmq.CURVE_SERVERKEY, self._server_key)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, self._client_keys[0])
                sock.setsockopt(zmq.CURVE_SECRETKEY, self._client_keys[1])
            if endpoint.startswith("["):
                sock.setsockopt(zmq.IPV6, 1)
            sock.connect(zmq_address(endpoint))
            self._socket = sock
            self._receive_ms = 0
        return self._socket

    def _check_mechanism(self, endpoint: str, mechanism: str | None) -> None:
        """Unauthorized at once when client and server disagree on encryption: a REQ socket
        would only time out. Never sends a token to a server that does not encrypt when we
        expect it to (without a token there is nothing to protect: plain TCP then)."""
        if mechanism == "CURVE" and self._server_key is None:
            raise Unauthorized(ErrorCode.UNAUTHORIZED, f"{endpoint}: {client_credentials.NO_SERVER_KEY}")
        if mechanism == "NULL" and self._server_key is not None and not self._token:
            self._server_key = None  # nothing secret to send: an insecure cluster, talk plainly
        elif mechanism == "NULL" and self._server_key is not None:
            raise Unauthorized(
                ErrorCode.UNAUTHORIZED,
                f"{endpoint} does not encrypt its API (an insecure cluster, or not Orion's?): the "
                "client has a server key and will not talk to it in the clear (unset "
                "ORION_SERVER_KEY, ORION_SERVER_KEY_FILE and ORION_CLIENT_BUNDLE for an insecure cluster)",
            )

    def _rotate(self) -> None:
        """Drop the socket (a REQ socket cannot resend after silence) and try the next endpoint."""
        self.close()
        self._current = (self._current + 1) % len(self.endpoints)

    def _call(self, request: Request) -> Any:
        body = encode_request(request)
        failures: list[str] = []
        unanswered = False  # an earlier attempt went silent: it may still be applied
        timed_out = False  # an endpoint answered "outcome unknown"
        attempts = self.retries * len(self.endpoints)
        # not_leader answers (a leader handing over on shutdown) are asked again past the
        # attempts, a round at a time, until ``timeout`` after the call began: nothing was done,
        # and the hand-over is over within an election timeout.
        patient_until = time.monotonic() + self.timeout
        attempt = -1
        while attempt + 1 < attempts:
            attempt += 1
            endpoint = self.endpoints[self._current]
            sock = self._open()
            if isinstance(sock, str):  # nothing was sent: this attempt cannot have had an effect
                failures.append(sock)
                self._rotate()
                self._back_off_after_round(attempt, attempts)
                continue
            if self._token:
                sock.send_multipart((self._token, body))
            else:
                sock.send(body)
            # A receive that waits up to the timeout itself, not a poll and then a receive: one
            # wait less per call, each a turn of the interpreter lock among the caller's threads.
            receive_ms = max(1, int(self.timeout * 1000))
            if receive_ms != self._receive_ms:
                sock.setsockopt(zmq.RCVTIMEO, receive_ms)
                self._receive_ms = receive_ms
            try:
                answer = sock.recv()
            except zmq.Again:
                failures.append(f"{endpoint} (no answer in {self.timeout:g}s)")
                unanswered = True
                self._rotate()
                continue
            try:
                reply = decode_reply(answer)
            except Exception as exc:  # a reply we cannot read: treat the endpoint as broken
                failures.append(f"{endpoint} (bad reply: {exc})")
                unanswered = True
                self._rotate()
                continue
            if not reply.ok and reply.error is not None and reply.error.code in RETRYABLE:
                pass  # answered, but cannot serve: not an endpoint to start from next time
            else:
                self.last_answered = endpoint
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
            if code == ErrorCode.TIMEOUT:
                # "Outcome unknown" (the leader changed or lost quorum before answering) is
                # silence with a reason: ask the next endpoint, as after silence.
                failures.append(f"{endpoint} ({message})")
                unanswered = timed_out = True
                self._rotate()
                continue
            if code == ErrorCode.NO_QUORUM and unanswered and isinstance(request, WRITE_REQUESTS):
                # This refusal speaks only for this attempt; the silent one may commit later.
                raise Timeout(
                    ErrorCode.TIMEOUT,
                    f"outcome unknown: {'; '.join(_dedupe(failures))}, then {endpoint}: {message}",
                )
            if code not in RETRYABLE:
                refusal = error_for(code, message)
                refusal.after_silence = unanswered
                raise refusal
            # This node cannot serve now (starting, no leader known yet, handing leadership
            # over): nothing was done, so another node (or this one, a round later) may serve it.
            failures.append(f"{endpoint} ({message})")
            self._rotate()
            if code == ErrorCode.NOT_LEADER and attempt + 1 == attempts and time.monotonic() < patient_until:
                attempts += len(self.endpoints)
            self._back_off_after_round(attempt, attempts)
        if timed_out:
            raise Timeout(ErrorCode.TIMEOUT, "outcome unknown: " + "; ".join(_dedupe(failures)))
        raise Unavailable(ErrorCode.UNAVAILABLE, "no endpoint answered: " + "; ".join(_dedupe(failures)))

    def _back_off_after_round(self, attempt: int, attempts: int) -> None:
        """After a whole round of quick refusals (a node starting, no leader known yet, a
        closed port), wait briefly so an election or a restart can finish."""
        round_number, position = divmod(attempt + 1, len(self.endpoints))
        if position == 0 and attempt + 1 < attempts:
            time.sleep(min(1.0, 0.1 * 2 ** (round_number - 1)))


def _checked_spec(build: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``build(...)`` of a spec or a service request, a RequestError raised as InvalidRequest."""
    try:
        return build(*args, **kwargs)
    except RequestError as exc:
        raise InvalidRequest(ErrorCode.INVALID, str(exc)) from None


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


def tasks(**filters: Any) -> list[Task]:
    """``state=``, ``node=``, ``service=`` as ``Client.tasks`` takes them."""
    return _default().tasks(**filters)


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


def drain_node(node: str, deadline: float | str | None = None) -> NodeInfo:
    return _default().drain_node(node, deadline)


def set_node_eligibility(node: str, eligible: bool) -> NodeInfo:
    return _default().set_node_eligibility(node, eligible)


def wait(id: str, state: str, timeout: float = 60.0) -> Task:
    return _default().wait(id, state, timeout)


def create_service(name: str, image: str | None = None, **kwargs: Any) -> Service:
    return _default().create_service(name, image, **kwargs)


def update_service(name: str, **kwargs: Any) -> Service:
    return _default().update_service(name, **kwargs)


def scale_service(name: str, replicas: int) -> Service:
    return _default().scale_service(name, replicas)


def rollback_service(name: str) -> Service:
    return _default().rollback_service(name)


def pause_service(name: str) -> Service:
    return _default().pause_service(name)


def resume_service(name: str) -> Service:
    return _default().resume_service(name)


def remove_service(name: str) -> Service:
    return _default().remove_service(name)


def services() -> list[Service]:
    return _default().services()


def service(name: str) -> Service:
    return _default().service(name)


def service_tasks(name: str) -> list[Task]:
    return _default().service_tasks(name)


def create_volume(name: str, **kwargs: Any) -> Volume:
    return _default().create_volume(name, **kwargs)


def volumes() -> list[VolumeInfo]:
    return _default().volumes()


def volume(name: str) -> VolumeInfo:
    return _default().volume(name)


def remove_volume(name: str) -> Volume:
    return _default().remove_volume(name)
