"""Serves ``orion events``: this node's window of recent events and the readers waiting on it.

The Raft actor tells it what each burst of applied entries changed (``AppliedEvents``) and
when its state was replaced by a snapshot (``EventsReset``); readers ask with a cursor
(``api.Events``). A reader with nothing new and ``wait`` > 0 is held (a long poll) until an
event it wants arrives or its wait ends, then answered with the cursor to ask with next, so
a follower costs one request per burst of events, not one per poll interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import Tick
from orion.actors.ticker import TickPlan
from orion.api import protocol as api
from orion.api.server import ReplyFn
from orion.cluster.event_ring import DEFAULT_CAPACITY, EventGap, EventRing
from orion.fsm.events import Event

MAX_WAITING = 1024  # readers held at once; more are answered at once with what there is
IDLE_TICK_S = 5.0  # between ticks while no reader waits (a new reader asks for a tick by its deadline)


@dataclass(frozen=True, slots=True)
class AppliedEvents:
    events: list[Event]
    applied: int


@dataclass(frozen=True, slots=True)
class EventsReset:
    index: int


@dataclass(frozen=True, slots=True)
class EventsCall:
    request: api.Events
    reply: ReplyFn


@dataclass(slots=True)
class _Waiter:
    request: api.Events
    reply: ReplyFn
    deadline: float


class EventsActor(NodeActor):
    def __init__(
        self,
        on_fatal: FatalHandler,
        capacity: int = DEFAULT_CAPACITY,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        """``on_events`` sees every batch as it arrives (the node's metrics count placements)."""
        super().__init__(on_fatal)
        self.ring = EventRing(capacity)
        self.on_events = on_events
        self._waiting: list[_Waiter] = []
        self._tick_plan = TickPlan()

    def on_receive(self, message: Any) -> Any:
        match message:
            case AppliedEvents(events, applied):
                self.ring.add(events, applied)
                if self.on_events is not None and events:
                    self.on_events(events)
                self._serve_waiting(time.monotonic())
            case EventsReset(index):
                self.ring.reset(index)
                self._serve_waiting(time.monotonic())
            case EventsCall(request, reply):
                self._serve(request, reply, time.monotonic())
            case Tick(now, gate):
                if gate is not None:
                    gate.release()
                self._tick_plan.ticked(gate)
                self._serve_waiting(now)
            case _:
                logger.warning("events actor: unexpected message {!r}", type(message).__name__)
        # Ticks only end long polls: with none waiting the actor sleeps; otherwise it is ticked
        # when the first of them is due.
        if self._waiting:
            self._tick_plan.ask(min(w.deadline for w in self._waiting))
        elif isinstance(message, Tick):
            self._tick_plan.ask(message.now + IDLE_TICK_S)
        return None

    def _answer(self, request: api.Events, reply: ReplyFn, final: bool) -> bool:
        """Answer when there is something to say (or ``final``); False: keep waiting."""
        try:
            page = self.ring.page(request.since, request.types, request.limit)
        except EventGap as exc:
            reply(api.Reply.failure(api.ErrorCode.GONE, str(exc)))
            return True
        if page.events or final:
            reply(api.Reply.success(page))
            return True
        return False

    def _serve(self, request: api.Events, reply: ReplyFn, now: float) -> None:
        final = request.wait <= 0 or len(self._waiting) >= MAX_WAITING
        if not self._answer(request, reply, final):
            self._waiting.append(_Waiter(request, reply, now + request.wait))

    def _serve_waiting(self, now: float) -> None:
        if self._waiting:
            self._waiting = [
                w for w in self._waiting if not self._answer(w.request, w.reply, w.deadline <= now)
            ]
