"""Lifeguard Local Health Aware Probe: the local health multiplier (memberlist awareness.go)."""

from __future__ import annotations


class Awareness:
    """A score in [0, max - 1]: 0 is healthy; timeouts are scaled by (score + 1).

    It rises when our probes fail without the nacks we expected (so we, not the target, may be
    slow) and when we must refute a suspicion of ourselves; it falls on every successful probe.
    """

    def __init__(self, max_multiplier: int) -> None:
        self._max = max_multiplier
        self._score = 0

    @property
    def score(self) -> int:
        return self._score

    def apply_delta(self, delta: int) -> None:
        self._score = min(max(self._score + delta, 0), self._max - 1)

    def scale(self, timeout: float) -> float:
        return timeout * (self._score + 1)
