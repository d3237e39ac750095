"""Linearizable reads by ReadIndex: a read runs once a quorum confirmed this node still leads at
some commit index (the read index) and the FSM has applied up to it.

On the leader each read gets a context passed to ``RaftCore.read_index``; the core answers
with the read index (or fails the read when leadership is lost). A follower's forwarded
request is answered with the read index itself; the follower then waits here for its own FSM
to catch up (``wait_for_apply``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orion.api.protocol import ErrorCode
from orion.cluster.deadlines import pop_expired
from orion.cluster.forwarding import ForwardAnswer
from orion.cluster.outcome import Callback, Outcome

Query = Callable[[Any], Any]


@dataclass(slots=True)
class PendingRead:
    query: Query
    callback: Callback
    deadline: float
    index: int = -1  # -1 until the read index is known
    forward_to: tuple[str, int] | None = None  # answer a follower's read-index request instead


class LinearizableReads:
    """``reply(origin, answer)`` sends a follower its read index (or why there is none)."""

    def __init__(self, reply: Callable[[str, ForwardAnswer], None]) -> None:
        self._reply = reply
        self._confirming: dict[bytes, PendingRead] = {}  # by context, waiting for a read index
        self._applying: list[PendingRead] = []  # read index known, waiting for the FSM
        self._ids = itertools.count(1)

    @property
    def waiting(self) -> bool:
        """Reads wait for a read index or for the FSM to reach theirs."""
        return bool(self._confirming or self._applying)

    def start(self, query: Query, callback: Callback, deadline: float) -> bytes:
        """A read on this leader; returns the context to pass to ``RaftCore.read_index``."""
        context = f"l:{next(self._ids)}".encode()
        self._confirming[context] = PendingRead(query, callback, deadline)
        return context

    def start_forwarded(self, origin: str, req_id: int, deadline: float) -> bytes:
        """A follower's read-index request; returns the context for ``RaftCore.read_index``."""
        context = f"f:{origin}:{req_id}".encode()
        self._confirming[context] = PendingRead(_no_query, _ignore, deadline, forward_to=(origin, req_id))
        return context

    def on_read_state(self, context: bytes, index: int) -> None:
        pending = self._confirming.pop(context, None)
        if pending is None:
            return
        if pending.forward_to is not None:
            origin, req_id = pending.forward_to
            self._reply(origin, ForwardAnswer(req_id, index=index))
            return
        pending.index = index
        self._applying.append(pending)

    def fail(self, context: bytes, reason: str) -> None:
        """The read with ``context`` cannot be confirmed here (leadership lost): a follower is
        told to look for the new leader, a local caller that the cluster is unavailable."""
        pending = self._confirming.pop(context, None)
        if pending is None:
            return
        if pending.forward_to is not None:
            origin, req_id = pending.forward_to
            self._reply(origin, ForwardAnswer(req_id, ErrorCode.NOT_LEADER, reason))
        else:
            pending.callback(Outcome.failure(ErrorCode.UNAVAILABLE, reason))

    def wait_for_apply(self, query: Query, callback: Callback, deadline: float, index: int) -> None:
        """A read whose index the leader confirmed: run it once this node applied ``index``."""
        self._applying.append(PendingRead(query, callback, deadline, index=index))

    def serve_ready(self, applied_index: int, run: Callable[[Query], Outcome]) -> None:
        """Answer every read whose index the FSM has reached, with ``run(query)``."""
        if not self._applying:
            return
        still: list[PendingRead] = []
        for pending in self._applying:
            if pending.index <= applied_index:
                pending.callback(run(pending.query))
            else:
                still.append(pending)
        self._applying = still

    def expire(self, now: float, no_quorum_message: Callable[[], str]) -> None:
        """Fail reads past their deadline: unconfirmed ones for want of a quorum (a follower's
        request is left to its own deadline), confirmed ones for want of catching up."""
        for pending in pop_expired(self._confirming, now):
            if pending.forward_to is None:
                pending.callback(Outcome.failure(ErrorCode.NO_QUORUM, no_quorum_message()))
        if self._applying:
            for pending in [p for p in self._applying if p.deadline <= now]:
                self._applying.remove(pending)
                pending.callback(Outcome.failure(ErrorCode.TIMEOUT, "read timed out waiting to catch up"))


def _no_query(_fsm: Any) -> None:
    return None


def _ignore(_outcome: Outcome) -> None:
    return None
