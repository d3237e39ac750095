"""Writes this leader appended, each answered once its entry is applied, or when its fate is lost.

A write arrives from a local caller (answered through its callback) or forwarded by a
follower (answered with a ``ForwardAnswer`` to the follower's address).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orion.api.protocol import ErrorCode
from orion.cluster.deadlines import pop_expired
from orion.cluster.forwarding import ForwardAnswer, encode_result
from orion.cluster.outcome import Callback, Outcome, outcome_of
from orion.raft.types import Entry


@dataclass(slots=True)
class Waiter:
    """A proposal appended by this leader in ``term``, answered when its index is applied."""

    term: int
    callback: Callback | None
    deadline: float
    forward_to: tuple[str, int] | None = None  # (origin address, req_id) for a forwarded write


class WriteWaiters:
    """``reply(origin, answer)`` sends a forwarded write's answer to the follower it came from."""

    def __init__(self, reply: Callable[[str, ForwardAnswer], None]) -> None:
        self._reply = reply
        self._by_index: dict[int, Waiter] = {}  # in log order

    def __len__(self) -> int:
        return len(self._by_index)

    def add(self, index: int, waiter: Waiter) -> None:
        self._by_index[index] = waiter

    def finish(self, waiter: Waiter, outcome: Outcome, index: int = 0) -> None:
        """Answer ``waiter`` with ``outcome`` (``index``: where the write was applied)."""
        if waiter.forward_to is not None:
            origin, req_id = waiter.forward_to
            kind, result = encode_result(outcome.value)
            answer = ForwardAnswer(req_id, outcome.code, outcome.message, index, result, kind)
            self._reply(origin, answer)
        elif waiter.callback is not None:
            waiter.callback(outcome)

    def on_applied(self, entry: Entry, result: Any) -> None:
        """``entry`` was applied with the FSM's ``result``: answer whoever waits for it. An
        entry of another term at that index replaced the one this leader appended."""
        waiter = self._by_index.pop(entry.index, None)
        if waiter is None:
            return
        if waiter.term != entry.term:
            self.finish(waiter, Outcome.failure(ErrorCode.UNAVAILABLE, "leadership changed; not committed"))
        else:
            self.finish(waiter, outcome_of(result), entry.index)

    def on_leadership_lost(self, commit_index: int) -> None:
        """Entries past ``commit_index`` may still commit under the next leader: their fate is
        unknown to this node, so their writers hear that now rather than at their deadline."""
        for index, waiter in list(self._by_index.items()):
            if index > commit_index:
                del self._by_index[index]
                self.finish(waiter, Outcome.failure(ErrorCode.TIMEOUT, "leadership lost; outcome unknown"))

    def expire(self, now: float, message: Callable[[], str]) -> None:
        """Answer the writes past their deadline with a timeout; ``message()`` says why."""
        for waiter in pop_expired(self._by_index, now):
            self.finish(waiter, Outcome.failure(ErrorCode.TIMEOUT, message()))

    def fail_callers(self, outcome: Outcome) -> None:
        """Answer every local caller with ``outcome`` and forget every waiter (the node stops;
        followers whose writes were forwarded here time out on their own)."""
        for waiter in self._by_index.values():
            if waiter.callback:
                waiter.callback(outcome)
        self._by_index.clear()
