"""The answer to a write or a read: a value, or an error code and a message.

Requests carry a ``Callback`` that the Raft actor calls from its own thread with the outcome
(callbacks must be cheap and thread-safe: a ZeroMQ reply hand-off, or another actor's ``tell``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orion.api.protocol import ErrorCode
from orion.fsm.commands import CommandError, Refusal


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a write or a read: a value, or an error code and message."""

    ok: bool
    value: Any = None
    code: str = ""  # an ErrorCode on failure ("" on success)
    message: str = ""

    @staticmethod
    def success(value: Any = None) -> Outcome:
        return Outcome(True, value)

    @staticmethod
    def failure(code: ErrorCode, message: str) -> Outcome:
        return Outcome(False, None, code, message)


_CODE_OF_REFUSAL = {
    Refusal.INVALID: ErrorCode.INVALID,
    Refusal.NOT_FOUND: ErrorCode.NOT_FOUND,
    Refusal.CONFLICT: ErrorCode.CONFLICT,  # services (issue 14, S1)
}


def outcome_of(result: Any) -> Outcome:
    """The outcome of an applied FSM command: its result, or its refusal's code and message."""
    if isinstance(result, CommandError):
        return Outcome.failure(_CODE_OF_REFUSAL[result.code], result.message)
    return Outcome.success(result)


Callback = Callable[[Outcome], None]
