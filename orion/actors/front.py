"""What every client request passes on its way in, on both front ends (ZeroMQ and REST).

Streams go to the actors that serve them (events: the events actor; a task's logs: the logs
actor, which finds the node running the task); everything else to the API actor. Each
answer is counted for the node's metrics by request and code, with its latency.
"""

from __future__ import annotations

import time

import pykka

from orion.actors.events_actor import EventsCall
from orion.actors.logs_actor import LogsCall
from orion.api import protocol as api
from orion.api.server import Handler, ReplyFn
from orion.metrics import NodeMetrics


def front_handler(
    handler: Handler,
    *,
    events: pykka.ActorRef | None = None,
    logs: pykka.ActorRef | None = None,
    metrics: NodeMetrics | None = None,
) -> Handler:
    def handle(request: api.Request, reply: ReplyFn) -> None:
        if metrics is not None:
            reply = _counted(metrics, type(request).__name__, reply)
        try:
            if isinstance(request, api.Events) and events is not None:
                events.tell(EventsCall(request, reply))
            elif isinstance(request, api.TaskLogs) and logs is not None:
                logs.tell(LogsCall(request, reply))
            else:
                handler(request, reply)
        except pykka.ActorDeadError:
            reply(api.Reply.failure(api.ErrorCode.UNAVAILABLE, "node is shutting down"))

    return handle


def _counted(metrics: NodeMetrics, name: str, reply: ReplyFn) -> ReplyFn:
    started = time.monotonic()

    def counted(answer: api.Reply) -> None:
        code = "ok" if answer.ok else (answer.error.code if answer.error else api.ErrorCode.INTERNAL)
        metrics.api_answered(name, str(code), time.monotonic() - started)
        reply(answer)

    return counted
