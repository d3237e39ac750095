"""REST mirror of the client API (PRD section 5) on the standard library's HTTP server.

Routes: POST /tasks, GET /tasks, GET /tasks/{id}, DELETE /tasks/{id} (stop),
DELETE /tasks/{id}?remove=true[&force=true] (``orion task rm``), GET /nodes, GET /raft,
GET /health, the services' routes (orion/api/rest_services.py), task filters and references
and POST /nodes/{id}/drain|eligibility (orion/api/rest_ops.py), /volumes and /volumes/{name}
(orion/api/rest_volumes.py). Bodies and responses
are JSON with the PRD's camelCase keys (``portBindings``, ``nodeId``). Requests go to the
same ``handler(request, reply)`` as the ZeroMQ server; the HTTP thread waits for the reply
with a deadline.

With ``tokens`` set (secure clusters) every request needs ``Authorization: Bearer TOKEN``
(the same token as the ZeroMQ API); without it the answer is 401 and nothing runs. The
header is never logged.

A request refused because nothing can be done just now (codes ``unavailable``: no leader
known yet; ``not_leader``: the leader is handing leadership over) is a 503 with
``Retry-After: 1``: nothing was done, so sending it again is safe.

``GET /health`` needs no token, for load balancers: 200 ``{"status": "ok", "node": "node1",
"role": "leader", "apiPort": 7301}`` while the node knows a leader (so it can serve or
forward requests), else 503 with status ``no_leader`` or ``unavailable``. It carries no task
or member data. The role is shown so a balancer can prefer the leader (one forwarding hop
less); it tells an outsider which node to attack first, which the REST default bind
(127.0.0.1) and a firewall keep from outsiders, and losing a leader costs one election.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import msgspec
from loguru import logger

from orion.api import auth
from orion.api.http_server import BoundedHTTPServer, tls_context
from orion.api.openapi import OPENAPI_PATH, document_bytes
from orion.api.protocol import (
    MAX_REQUEST,
    RETRYABLE,
    ErrorCode,
    ListNodes,
    RaftInfo,
    RaftStatus,
    Reply,
    Request,
    RequestError,
    checked_reply,
    request_error,
    typed_result,
    validate_request,
)
from orion.api.requests import build_submit
from orion.api.rest_bodies import RestSubmit
from orion.api.rest_ops import is_node_action, list_tasks_request, node_action_request, task_ref
from orion.api.rest_services import NoRoute, camel_field, is_service_path, service_request
from orion.api.rest_streams import serve_events, serve_logs, serve_metrics
from orion.api.rest_volumes import is_volume_path, serve_volume_route
from orion.api.server import Handler, Prepare
from orion.console import SECURITY_HEADERS, console_file, is_console_path
from orion.metrics import NodeMetrics
from orion.security.connections import ConnectionTable
from orion.security.keys import TokenSet

_STATUS = {
    ErrorCode.INVALID: HTTPStatus.BAD_REQUEST,
    ErrorCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    ErrorCode.NO_QUORUM: HTTPStatus.SERVICE_UNAVAILABLE,
    ErrorCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    ErrorCode.TIMEOUT: HTTPStatus.GATEWAY_TIMEOUT,
    ErrorCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    ErrorCode.UNAUTHORIZED: HTTPStatus.UNAUTHORIZED,
    ErrorCode.CONFLICT: HTTPStatus.CONFLICT,
    ErrorCode.NOT_LEADER: HTTPStatus.SERVICE_UNAVAILABLE,
}
RETRY_AFTER_S = 1  # told with a 503 whose cause passes by itself (a leader hand-over, a start)
HEALTH_TIMEOUT_S = 2.0  # balancers check often, with short timeouts of their own
_TASK_PATH = re.compile(r"^/tasks/(?P<id>[^/]+)$")
_LOGS_PATH = re.compile(r"^/tasks/(?P<id>[^/]+)/logs$")


_submit_decoder = msgspec.json.Decoder(RestSubmit)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_camel(value: Any) -> Any:
    """JSON-ready builtins with camelCase field names; keys of user maps (env, selectors) stay."""
    if isinstance(value, msgspec.Struct):
        return {camel(f): to_camel(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, list | tuple):
        return [to_camel(v) for v in value]
    if isinstance(value, dict):
        return {k: to_camel(v) for k, v in value.items()}
    return msgspec.to_builtins(value)


def submit_request(body: bytes) -> Request:
    """Parse a POST /tasks body into a validated SubmitTask; RequestError names camelCase fields."""
    try:
        rest = _submit_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise request_error(exc) from None
    except msgspec.DecodeError as exc:
        raise RequestError("", f"malformed JSON: {exc}") from None
    fields = msgspec.structs.asdict(rest)  # RestSubmit's fields are build_submit's arguments
    try:
        return build_submit(ports=fields.pop("port_bindings"), **fields)
    except RequestError as exc:
        raise RequestError(camel(exc.field), exc.reason) from None


class HttpApi:
    def __init__(
        self,
        bind_host: str,
        port: int,
        handler: Handler,
        timeout: float = 10.0,
        *,
        max_body: int = MAX_REQUEST,
        tokens: TokenSet | None = None,
        api_port: int = 0,
        workers: int = 16,
        max_connections: int = 1024,
        max_connections_per_address: int = 64,
        socket_timeout: float = 10.0,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        prepare: Prepare | None = None,
        metrics: NodeMetrics | None = None,
        metrics_public: bool = False,
    ) -> None:
        """``port=0`` binds a random free port (read ``port`` after ``start``).

        ``tokens`` (None: no authentication) are the bearer tokens this server accepts.
        ``api_port``: the node's ZeroMQ API port, named by /health (0: not named), so a
        client pointed at this port by mistake can say which one it wanted.
        ``workers`` serve at once; connections are capped (per address at most a quarter of
        the workers, so one address cannot take them all); every read must progress within
        ``socket_timeout``; ``tls_cert`` and ``tls_key`` switch to HTTPS (orion/api/http_server.py).
        """
        self.tokens = tokens
        self.api_port = api_port
        self.bind_host = bind_host
        self.port = port
        self.handler = handler
        self.timeout = timeout
        self.max_body = max_body
        self.workers = workers
        self.prepare = prepare  # the node's task policy, as on the ZeroMQ API
        self.metrics = metrics  # GET /metrics (None: 404); without a token when metrics_public
        self.metrics_public = metrics_public
        self.socket_timeout = socket_timeout
        self.tls = tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
        self.connections = ConnectionTable(
            f"REST {bind_host}:{port}",
            max_connections,
            min(max_connections_per_address, max(1, workers // 4)),
            socket_timeout,
        )
        self._server: BoundedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        api = self

        class RequestHandler(_RestHandler):
            pass

        RequestHandler.api = api
        server = BoundedHTTPServer(
            (self.bind_host, self.port),
            RequestHandler,
            workers=self.workers,
            connections=self.connections,
            socket_timeout=self.socket_timeout,
            tls=self.tls,
        )
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_until_stopped, name=f"http-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop_serving()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None

    def call(self, request: Request, timeout: float | None = None) -> Reply:
        """Run one request through the handler and wait for its reply (with a deadline)."""
        timeout = self.timeout if timeout is None else timeout
        if self.prepare is not None:
            try:
                request = self.prepare(request)
            except ValueError as exc:  # the policy's refusal names the rule
                return Reply.failure(ErrorCode.INVALID, str(exc))
        done = threading.Event()
        box: list[Reply] = []

        def reply(answer: Reply) -> None:
            if not done.is_set():
                box.append(answer)
                done.set()

        try:
            self.handler(request, reply)
        except Exception as exc:
            logger.exception("HTTP API: handler failed on {}", type(request).__name__)
            return Reply.failure(ErrorCode.INTERNAL, f"internal error: {exc}")
        if not done.wait(timeout):
            return Reply.failure(ErrorCode.TIMEOUT, f"no answer within {timeout:g}s")
        return checked_reply(request, box[0])

    def health(self) -> tuple[HTTPStatus, dict[str, Any]]:
        """Status only, from this node's own Raft view (no leader round trip, no task data)."""
        reply = self.call(RaftStatus(stale=True), timeout=min(self.timeout, HEALTH_TIMEOUT_S))
        body: dict[str, Any] = {"status": "unavailable"}
        status = _raft_info(reply)
        if status is not None:
            body = {
                "status": "ok" if status.leader_id else "no_leader",
                "node": status.node_id,
                "role": status.role,
            }
        if self.api_port:
            body["apiPort"] = self.api_port
        return (HTTPStatus.OK if body["status"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE), body


class _RestHandler(BaseHTTPRequestHandler):
    api: HttpApi
    server_version = "orion"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("HTTP {} {}", self.address_string(), format % args)

    # ------------------------------------------------------------------ routes

    def _authorized(self) -> bool:
        """True when no token is required or the request carries a valid one; else answers 401."""
        why = auth.refusal(self.api.tokens, auth.bearer_token(self.headers.get("Authorization")))
        if why is None:
            return True
        # The body is not read: close the connection instead of parsing what follows it.
        self._error(
            HTTPStatus.UNAUTHORIZED,
            auth.refusal_message(auth.Front.REST, why),
            code=ErrorCode.UNAUTHORIZED,
            close=True,
        )
        return False

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/health":  # no token: status only, for load balancers
            self._json(*self.api.health())
            return
        if path == OPENAPI_PATH:  # public like /health: it describes the API, not the cluster
            self._send(HTTPStatus.OK, "application/json", document_bytes())
            return
        if is_console_path(path):  # the page holds no data; the API calls it makes carry the token
            found = console_file(path)
            if found is None:
                self._error(HTTPStatus.NOT_FOUND, f"no console file {path}")
            else:
                self._send(HTTPStatus.OK, found.content_type, found.body, SECURITY_HEADERS)
            return
        if path == "/metrics" and self.api.metrics_public:  # [security] metrics_public
            serve_metrics(self)
            return
        if not self._authorized():
            return
        query_text = self.path.partition("?")[2]
        if path == "/metrics":
            serve_metrics(self)
            return
        if path == "/events":
            serve_events(self, query_text)
            return
        if (logs := _LOGS_PATH.match(path)) is not None:
            serve_logs(self, task_ref(logs.group("id")), query_text, time.time())
            return
        stale = "stale=true" in self.path.partition("?")[2].lower()
        if is_volume_path(path):  # orion/api/rest_volumes.py
            serve_volume_route(self, "GET", path, b"")
        elif is_service_path(path):
            self._service_route("GET", path, b"")
        elif path == "/tasks":
            try:
                listing = list_tasks_request(self.path.partition("?")[2])
            except RequestError as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)
                return
            self._run(listing)
        elif path == "/nodes":
            self._run(ListNodes(stale=stale))
        elif path == "/raft":
            self._run(RaftStatus(stale=True))
        elif (match := _TASK_PATH.match(path)) is not None:
            self._run_fields({"op": "GetTask", "id": task_ref(match.group("id")), "stale": stale})
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no route GET {path}")

    def do_POST(self) -> None:
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if is_volume_path(path):
            volume_body = self._read_body()
            if volume_body is not None:
                serve_volume_route(self, "POST", path, volume_body)
            return
        if is_service_path(path):
            body = self._read_body()
            if body is not None:
                self._service_route("POST", path, body)
            return
        if is_node_action(path):
            node_body = self._read_body()
            if node_body is None:
                return
            try:
                node_request = node_action_request(path, node_body)
            except RequestError as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)
                return
            self._run(node_request)
            return
        if path != "/tasks":
            if self._drain_body():
                self._error(HTTPStatus.NOT_FOUND, f"no route POST {path}")
            return
        body = self._read_body()
        if body is None:
            return
        try:
            request = submit_request(body)
        except RequestError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)
            return
        self._run(request, created=True)

    def do_DELETE(self) -> None:
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if is_volume_path(path):
            serve_volume_route(self, "DELETE", path, b"")
            return
        if is_service_path(path):
            self._service_route("DELETE", path, b"")
            return
        match = _TASK_PATH.match(path)
        if match is None:
            self._error(HTTPStatus.NOT_FOUND, f"no route DELETE {path}")
            return
        try:
            flags = delete_flags(self.path.partition("?")[2])
        except RequestError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)
            return
        if flags["remove"]:
            self._run_fields({"op": "RemoveTask", "id": task_ref(match.group("id")), "force": flags["force"]})
        else:
            self._run_fields({"op": "StopTask", "id": task_ref(match.group("id"))})

    def do_PUT(self) -> None:
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if not is_service_path(path):
            if self._drain_body():
                self._error(HTTPStatus.NOT_FOUND, f"no route PUT {path}")
            return
        body = self._read_body()
        if body is not None:
            self._service_route("PUT", path, body)

    # ------------------------------------------------------------------ helpers

    def _service_route(self, method: str, path: str, body: bytes) -> None:
        """/services and /services/{name}[/action] (orion/api/rest_services.py)."""
        query = {k: v[-1] for k, v in parse_qs(self.path.partition("?")[2]).items()}
        try:
            request = service_request(method, path, query, body)
        except NoRoute as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
            return
        except RequestError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), camel_field(exc.field))
            return
        self._run(request, created=method == "POST" and path == "/services")

    def _run_fields(self, fields: dict[str, Any]) -> None:
        try:
            request = validate_request(fields)
        except RequestError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), camel(exc.field))
            return
        self._run(request)

    def _run(self, request: Request, created: bool = False) -> None:
        reply = self.api.call(request)
        if not reply.ok:
            error = reply.error
            code, message = (
                (error.code, error.message) if error else (ErrorCode.INTERNAL, "error without details")
            )
            status = _STATUS.get(code, HTTPStatus.INTERNAL_SERVER_ERROR)
            self._error(status, message, code=code, retry=code in RETRYABLE)
            return
        try:
            result = typed_result(request, reply.result)
        except msgspec.ValidationError as exc:
            logger.error("HTTP API: malformed {} result: {}", type(request).__name__, exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"malformed result: {exc}", code=ErrorCode.INTERNAL)
            return
        self._json(HTTPStatus.CREATED if created else HTTPStatus.OK, to_camel(result))

    def _content_length(self) -> int | None:
        """The body's length; None after answering 400 to a malformed or negative one (a
        negative length once slipped past max_body)."""
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit() or not text.isascii():
            self._error(HTTPStatus.BAD_REQUEST, f"bad Content-Length {text[:32]!r}", close=True)
            return None
        return int(text)

    def _read_body(self) -> bytes | None:
        length = self._content_length()
        if length is None:
            return None
        if length > self.api.max_body:
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes exceeds {self.api.max_body}",
                close=True,
            )
            return None
        return self.rfile.read(length)

    def _drain_body(self) -> bool:
        """Skip the body of a request refused anyway, so the connection can serve the next one;
        False when a bad Content-Length was answered (400) instead."""
        length = self._content_length()
        if length is None:
            return False
        if 0 < length <= self.api.max_body:
            self.rfile.read(length)
        elif length:
            self.close_connection = True
        return True

    @staticmethod
    def status_of(code: str) -> HTTPStatus:
        return _STATUS.get(code, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _error(
        self,
        status: HTTPStatus,
        message: str,
        field: str = "",
        *,
        code: str = "",
        close: bool = False,
        retry: bool = False,
    ) -> None:
        """``retry``: nothing was done and asking again soon may succeed (Retry-After)."""
        body: dict[str, str] = {"error": message, "code": code or _code_for(status)}
        if field:
            body["field"] = field
        if close:
            self.close_connection = True
        self._json(status, body, retry_after=RETRY_AFTER_S if retry else None)

    def _json(self, status: HTTPStatus, payload: Any, retry_after: int | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="orion"')
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send(
        self, status: HTTPStatus, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def delete_flags(query: str) -> dict[str, bool]:
    """``remove`` and ``force`` of a DELETE /tasks/{id} query string (both default false).
    Without ``remove=true`` the task is only stopped, so ``force`` alone is refused rather
    than silently ignored."""
    flags = {"remove": False, "force": False}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in flags:
            continue  # like GET's query, unknown parameters are ignored
        value = values[-1].lower()
        if value not in _BOOLEANS:
            raise RequestError(name, f"expected true or false, got {values[-1]!r}")
        flags[name] = _BOOLEANS[value]
    if flags["force"] and not flags["remove"]:
        raise RequestError("force", "applies only with remove=true (DELETE without remove stops the task)")
    return flags


def _raft_info(reply: Reply) -> RaftInfo | None:
    if not reply.ok:
        return None
    try:
        return typed_result(RaftStatus(stale=True), reply.result)
    except msgspec.ValidationError:
        return None


def _code_for(status: HTTPStatus) -> str:
    for code, mapped in _STATUS.items():
        if mapped == status:
            return str(code)
    return "too_large" if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE else "invalid"
