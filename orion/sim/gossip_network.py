"""A seeded datagram network for gossip simulations: loss, delay, partitions and slow members.

Every decision comes from one ``random.Random``, so a seed replays a run exactly. A "slow member"
models a CPU-starved process (the Lifeguard paper's impairment): datagrams reach it on time but
it processes each of them late, by a delay drawn from its range.
"""

from __future__ import annotations

import random


class GossipNetwork:
    def __init__(
        self, rng: random.Random, loss: float = 0.0, delay: tuple[float, float] = (0.001, 0.005)
    ) -> None:
        self._rng = rng
        self.loss = loss
        self.delay = delay
        self._group: dict[str, int] = {}  # address -> partition group; absent = reachable by all
        self._slow: dict[str, tuple[float, float]] = {}
        self.sent = 0
        self.dropped = 0

    def partition(self, groups: list[list[str]]) -> None:
        """Only members of the same group can talk; addresses not listed talk to nobody listed."""
        self._group = {address: index for index, group in enumerate(groups) for address in group}

    def heal(self) -> None:
        self._group = {}

    def set_slow(self, address: str, processing_delay: tuple[float, float] | None) -> None:
        if processing_delay is None:
            self._slow.pop(address, None)
        else:
            self._slow[address] = processing_delay

    def is_slow(self, address: str) -> bool:
        return address in self._slow

    def fate(self, source: str, destination: str) -> float | None:
        """Delay until ``destination`` processes a datagram sent now, or None when it is lost."""
        self.sent += 1
        if self._group:
            group = self._group.get(source, -1)
            if group != self._group.get(destination, -2):
                self.dropped += 1
                return None
        rng = self._rng
        if self.loss and rng.random() < self.loss:
            self.dropped += 1
            return None
        low, high = self.delay
        latency = low + (high - low) * rng.random()
        slow = self._slow.get(destination)
        if slow is not None:
            latency += slow[0] + (slow[1] - slow[0]) * rng.random()
        return latency
