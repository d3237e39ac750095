"""Expiring requests that wait in an insertion-ordered map."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar


class HasDeadline(Protocol):
    deadline: float  # monotonic seconds


K = TypeVar("K")
V = TypeVar("V", bound=HasDeadline)


def pop_expired(pending: dict[K, V], now: float) -> list[V]:
    """Remove and return the items whose deadline has passed (``deadline <= now``).

    Requests are inserted with near-equal timeouts, so the scan stops at the first live one
    instead of walking thousands of outstanding writes on every tick."""
    expired: list[Any] = []
    for key, item in pending.items():
        if item.deadline > now:
            break
        expired.append(key)
    return [pending.pop(key) for key in expired]
