"""The client's streams, ``Client.logs`` and ``Client.events``: cursor requests in a loop.

The ZeroMQ API is request/reply, so a stream is a series of requests, each carrying the cursor
the previous answer gave (a log position, a Raft index). A node with nothing new holds a
following request for a while (a long poll) instead of answering empty at once. A cursor is a
plain value, so when a node goes away mid-stream the client's ordinary retry sends the same
request to another node, which resumes exactly there: for events any node will do (each
applies the same log), for logs any node forwards to the one running the task.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from orion.api.protocol import Events, TaskLogs
from orion.api.rest_streams import since_time
from orion.fsm.events import Event


class Client(Protocol):
    """What a stream needs of ``orion.client.Client`` (which calls in here): named here so the
    two modules do not import each other."""

    timeout: float

    def _checked(self, fields: dict[str, Any]) -> Any: ...

    def _call(self, request: Any) -> Any: ...


LONG_POLL_S = 2.0  # at most; and at most half the client's timeout, so an answer is never late


def _wait(client: Client) -> float:
    return max(0.0, min(LONG_POLL_S, client.timeout / 2))


def logs(
    client: Client,
    task: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    since: float | str | None = None,
    max_bytes: int = 64 * 1024,
) -> Iterator[str]:
    """Text chunks (whole lines) of the task's container output, as they come."""
    since_at = since_time(str(since), time.time()) if since is not None else None
    request = client._checked(
        {"op": "TaskLogs", "id": task, "tail": tail, "since": since_at, "max_bytes": max_bytes}
    )
    assert isinstance(request, TaskLogs)
    while True:
        chunk = client._call(request)
        if chunk.text:
            yield chunk.text
        elif not follow or not chunk.running:
            return
        request = TaskLogs(
            id=request.id,
            cursor=chunk.cursor,
            max_bytes=max_bytes,
            wait=_wait(client) if follow else 0.0,
        )


def events(
    client: Client,
    since: int | None = None,
    types: Iterable[str] | None = None,
    *,
    follow: bool = True,
    limit: int = 1000,
) -> Iterator[Event]:
    """Events after Raft index ``since`` (None: all the answering node keeps), oldest first;
    with ``follow`` it never ends, else it ends once caught up. ``Gone`` when the answering node
    no longer keeps the events after ``since`` (list the state afresh, then follow from there)."""
    wanted = sorted(set(types or ()))
    fields = {"op": "Events", "since": since, "types": wanted, "limit": limit, "stale": True}
    request = client._checked(fields)
    assert isinstance(request, Events)
    while True:
        page = client._call(request)
        yield from page.events
        if not follow and not page.events:
            return
        request = Events(
            since=page.cursor, types=wanted, limit=limit, wait=_wait(client) if follow else 0.0, stale=True
        )
