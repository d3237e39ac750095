"""memberlist's scaling arithmetic (util.go, state.go), as pure functions.

Durations are seconds (floats); where memberlist truncates to milliseconds we do too, so the
table tests can use its figures.
"""

from __future__ import annotations

import math


def suspicion_timeout(suspicion_mult: int, n: int, probe_interval: float) -> float:
    """Minimum suspicion timeout: mult * max(1, log10(n)) * interval (log10 scale truncated to 1/1000)."""
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    return suspicion_mult * math.floor(node_scale * 1000) * probe_interval / 1000


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """How many times one update is piggybacked before it is dropped from the queue."""
    node_scale = math.ceil(math.log10(n + 1))
    return retransmit_mult * node_scale


def push_pull_scale(interval: float, n: int) -> float:
    """Anti-entropy slows down past 32 members so the total state exchanged stays bounded."""
    threshold = 32
    if n <= threshold:
        return interval
    multiplier = math.ceil(math.log2(n) - math.log2(threshold)) + 1.0
    return interval * multiplier
