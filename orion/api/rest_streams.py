"""The REST mirror's streams: ``GET /events`` (server-sent events), ``GET /tasks/{id}/logs``
(chunked transfer encoding) and ``GET /metrics`` (Prometheus text).

Both streams are the ZeroMQ API's cursor requests in a loop on the HTTP worker thread: each
answer is written as it comes, and an idle follow costs one long poll every ``WAIT_S``. A
stream holds one of the REST workers while it lasts ([security] http_workers).

Server-sent events carry ``id: INDEX`` on the last event of each Raft index only, so a
browser's automatic reconnection (``Last-Event-ID``) resumes after a whole entry: no gap, no
duplicate. ``?since=INDEX`` does the same by hand; ``?type=task&type=node`` filters;
``?follow=0`` ends the stream once it has caught up. Events no longer kept answer 410 Gone.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import msgspec

from orion.api.protocol import ErrorCode, Events, LogChunk, Reply, RequestError, TaskLogs, validate_request
from orion.fsm.events import EventPage
from orion.metrics_text import CONTENT_TYPE as METRICS_CONTENT_TYPE
from orion.units import parse_duration

WAIT_S = 2.0  # one long poll of a following stream
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def _flag(query: dict[str, list[str]], name: str, default: bool) -> bool:
    values = query.get(name)
    if not values:
        return default
    value = values[-1].lower()
    if value in _TRUE or value == "":
        return True
    if value in _FALSE:
        return False
    raise RequestError(name, f"expected 1 or 0 (true or false), got {values[-1]!r}")


def _int(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    if not values[-1].isdigit():
        raise RequestError(name, f"expected a whole number >= 0, got {values[-1]!r}")
    return int(values[-1])


def events_request(query_text: str, last_event_id: str | None) -> tuple[Events, bool]:
    """(the first Events request, follow) of a GET /events; RequestError names the parameter."""
    query = parse_qs(query_text, keep_blank_values=True)
    since = _int(query, "since")
    if last_event_id:
        if not last_event_id.strip().isdigit():
            raise RequestError("Last-Event-ID", f"expected a Raft index, got {last_event_id[:32]!r}")
        since = int(last_event_id.strip())
    types = [t for value in query.get("type", []) for t in value.split(",") if t]
    request = validate_request({"op": "Events", "since": since, "types": types, "stale": True})
    assert isinstance(request, Events)
    return request, _flag(query, "follow", True)


def logs_request(task_ref: str, query_text: str, now: float) -> tuple[TaskLogs, bool]:
    """(the first TaskLogs request, follow) of a GET /tasks/{id}/logs."""
    query = parse_qs(query_text, keep_blank_values=True)
    fields: dict[str, Any] = {"op": "TaskLogs", "id": task_ref}
    tail = _int(query, "tail")
    if tail is not None:
        fields["tail"] = tail
    if query.get("since"):
        fields["since"] = since_time(query["since"][-1], now)
    request = validate_request(fields)
    assert isinstance(request, TaskLogs)
    return request, _flag(query, "follow", False)


def since_time(text: str, now: float) -> float:
    """``--since``: a duration before now ("10m", "90s") or Unix seconds ("1700000000")."""
    try:
        value = float(text)
    except ValueError:
        try:
            return max(0.0, now - parse_duration(text, "since"))
        except ValueError as exc:
            raise RequestError(
                "since", f"expected a duration like 10m or Unix seconds, got {text!r}"
            ) from exc
    if value < 0:
        raise RequestError("since", f"must be >= 0, got {text!r}")
    return value


def reply_error(reply: Reply) -> tuple[str, str]:
    error = reply.error
    return (error.code, error.message) if error else (ErrorCode.INTERNAL, "error without details")


def sse_page(page: EventPage) -> bytes:
    """The events of a page as SSE messages; ``id:`` on the last event of each index."""
    out: list[str] = []
    events = page.events
    for i, event in enumerate(events):
        data = json.dumps(msgspec.to_builtins(event), separators=(",", ":"))
        last_of_index = i + 1 == len(events) or events[i + 1].index != event.index
        head = f"id: {event.index}\n" if last_of_index else ""
        out.append(f"{head}event: {event.type}\ndata: {data}\n\n")
    return "".join(out).encode()


def typed_page(reply: Reply) -> EventPage:
    result = reply.result
    return result if isinstance(result, EventPage) else msgspec.convert(result, EventPage)


def typed_chunk(reply: Reply) -> LogChunk:
    result = reply.result
    return result if isinstance(result, LogChunk) else msgspec.convert(result, LogChunk)


GONE_STATUS = HTTPStatus.GONE


# ---------------------------------------------------------------------------- the loops
# ``rest`` is the REST request handler (orion/api/http.py): its ``api`` (call), ``wfile``,
# ``send_response``/``send_header``/``end_headers`` and ``_error``.


def serve_metrics(rest: Any) -> None:
    metrics = rest.api.metrics
    if metrics is None:
        rest._error(HTTPStatus.NOT_FOUND, "metrics are off on this node")
        return
    body = metrics.text()
    rest.send_response(HTTPStatus.OK)
    rest.send_header("Content-Type", METRICS_CONTENT_TYPE)
    rest.send_header("Content-Length", str(len(body)))
    rest.end_headers()
    rest.wfile.write(body)


def _refuse(rest: Any, reply: Reply, status_of: Any) -> None:
    code, message = reply_error(reply)
    status = GONE_STATUS if code == ErrorCode.GONE else status_of(code)
    rest._error(status, message, code=code)


def serve_events(rest: Any, query_text: str) -> None:
    try:
        request, follow = events_request(query_text, rest.headers.get("Last-Event-ID"))
    except RequestError as exc:
        rest._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)
        return
    api = rest.api
    reply = api.call(request)
    if not reply.ok:
        _refuse(rest, reply, rest.status_of)
        return
    rest.send_response(HTTPStatus.OK)
    rest.send_header("Content-Type", "text/event-stream")
    rest.send_header("Cache-Control", "no-cache")
    rest.send_header("Connection", "close")  # the stream ends with the connection
    rest.end_headers()
    rest.close_connection = True
    try:
        while True:
            page = typed_page(reply)
            rest.wfile.write(sse_page(page) if page.events else b": waiting\n\n")
            rest.wfile.flush()
            if not follow and not page.events:
                return
            request = msgspec.structs.replace(request, since=page.cursor, wait=WAIT_S if follow else 0.0)
            reply = api.call(request, timeout=api.timeout + request.wait)
            if not reply.ok:
                code, message = reply_error(reply)
                data = json.dumps({"code": code, "error": message})
                rest.wfile.write(f"event: error\ndata: {data}\n\n".encode())
                return
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        return  # the reader went away


def serve_logs(rest: Any, task_ref: str, query_text: str, now: float) -> None:
    try:
        request, follow = logs_request(task_ref, query_text, now)
    except RequestError as exc:
        rest._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)
        return
    api = rest.api
    reply = api.call(request, timeout=api.timeout)
    if not reply.ok:
        _refuse(rest, reply, rest.status_of)
        return
    rest.send_response(HTTPStatus.OK)
    rest.send_header("Content-Type", "text/plain; charset=utf-8")
    rest.send_header("Transfer-Encoding", "chunked")
    rest.send_header("X-Orion-Node", typed_chunk(reply).node)
    rest.end_headers()
    try:
        while True:
            chunk = typed_chunk(reply)
            if chunk.text:
                data = chunk.text.encode()
                rest.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                rest.wfile.flush()
            elif not follow or not chunk.running:
                break
            request = msgspec.structs.replace(request, cursor=chunk.cursor, wait=WAIT_S if follow else 0.0)
            reply = api.call(request, timeout=api.timeout + request.wait)
            if not reply.ok:
                code, message = reply_error(reply)
                data = f"\n[orion: logs ended: {code}: {message}]\n".encode()
                rest.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                break
        rest.wfile.write(b"0\r\n\r\n")
        rest.wfile.flush()
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        rest.close_connection = True
