"""Lifeguard Local Health Aware Suspicion (memberlist suspicion.go), as data plus a pure formula."""

from __future__ import annotations

import math


def remaining_suspicion_time(n: int, k: int, elapsed: float, min_timeout: float, max_timeout: float) -> float:
    """Time left before a suspect is declared dead, after n of k wanted independent confirmations.

    The timeout starts at max and falls logarithmically towards min as confirmations arrive:
    ``max - log(n + 1) / log(k + 1) * (max - min)``, floored at min, truncated to milliseconds.
    """
    if k < 1:
        return min_timeout - elapsed
    fraction = math.log(n + 1.0) / math.log(k + 1.0)
    raw = max_timeout - fraction * (max_timeout - min_timeout)
    timeout = math.floor(raw * 1000) / 1000
    timeout = max(timeout, min_timeout)
    return timeout - elapsed


class Suspicion:
    """One open suspicion of a member at a given incarnation.

    ``deadline`` is stored as data; the core fires it from ``tick``. Confirmations count distinct
    members other than the first accuser, up to k.
    """

    __slots__ = ("_confirmers", "deadline", "incarnation", "k", "max_timeout", "min_timeout", "n", "started")

    def __init__(
        self, accuser: str, incarnation: int, k: int, min_timeout: float, max_timeout: float, now: float
    ) -> None:
        self.incarnation = incarnation
        self.k = k
        self.n = 0
        self.min_timeout = min_timeout
        # Without wanted confirmations the maximum is meaningless: start (and stay) at min.
        self.max_timeout = max_timeout if k >= 1 else min_timeout
        self.started = now
        self._confirmers = {accuser}
        self.deadline = now + remaining_suspicion_time(0, k, 0.0, self.min_timeout, self.max_timeout)

    def confirm(self, from_id: str) -> bool:
        """Count an independent confirmation; True when it was new (worth re-broadcasting)."""
        if self.n >= self.k or from_id in self._confirmers:
            return False
        self._confirmers.add(from_id)
        self.n += 1
        self.deadline = self.started + remaining_suspicion_time(
            self.n, self.k, 0.0, self.min_timeout, self.max_timeout
        )
        return True
