"""When to restart a task whose container exited non-zero: capped exponential backoff.

Pure arithmetic, so the reconciler can keep the attempt count in the FSM (the task's
``restarts``) and ask here how long to wait before the next try, or whether to give up.
"""

from __future__ import annotations

import msgspec


class RestartPolicy(msgspec.Struct, frozen=True):
    max_attempts: int = 3  # restarts after the first run; 0 never restarts
    base: float = 1.0  # seconds before the first restart
    cap: float = 30.0  # no wait is ever longer than this

    def __post_init__(self) -> None:
        if self.max_attempts < 0 or self.base < 0 or self.cap < 0:
            raise ValueError(f"restart policy values must be >= 0: {self}")

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait before restart number ``attempt`` (1 is the first), or None when
        the attempts are used up and the task should be marked Failed for good."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        if attempt > self.max_attempts:
            return None
        return min(self.cap, self.base * 2 ** (attempt - 1))


def backoff_delay(attempt: int, policy: RestartPolicy | None = None) -> float | None:
    """``RestartPolicy().delay(attempt)``: 1 s, 2 s, 4 s, then None by default."""
    return (policy or RestartPolicy()).delay(attempt)
