"""SwimCore behaviours pinned after the mutation run (see RELIABILITY.md, "20,000 seeds and the
mutation score"): each test states a rule a surviving mutant broke without any test noticing."""

from __future__ import annotations

import random

from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.messages import Alive, Gossip
from tests.gossip.test_core import make, meta, statuses


def test_a_probe_timeout_as_long_as_the_interval_still_ends_in_suspicion() -> None:
    """With probe_timeout >= probe_interval a probe ends before its indirect phase: a silent
    target must still be suspected (and our own health score rise), not crash the prober."""
    config = GossipConfig(probe_timeout=2.0, probe_interval=1.0)
    cores, link = make(2, config)
    link.run(0.0, 1.0)
    assert statuses(cores[0])["n1"] == "alive"
    link.blackholed.add(cores[1].address)
    now = link.run(1.0, 4.0)
    assert statuses(cores[0])["n1"] in ("suspect", "dead"), statuses(cores[0])
    assert cores[0].local_health >= 1
    link.run(now, now + 1.0)


def test_the_first_gossip_round_comes_within_one_gossip_interval() -> None:
    """A member that has news (its own Alive, the member it just met) spreads it in its first
    gossip round, jittered within [0, gossip_interval) of its start like the probe timer."""
    firsts = []
    for seed in range(20):
        config = GossipConfig()
        a = SwimCore(meta(0), config, random.Random(seed), 0.0)
        a.receive(Gossip(meta(1).gossip_address, [Alive("n1", 0, meta(1))]), 0.0)
        a.drain_outbox()
        t = 0.0
        while not any(isinstance(m, Gossip) for _dst, m in a.drain_outbox()):
            t = round(t + 0.01, 6)
            assert t < 5.0, "no gossip round in 5 s"
            a.tick(t)
        firsts.append(t)
    assert max(firsts) <= config.gossip_interval + 0.01, firsts
    assert min(firsts) < config.gossip_interval / 2, firsts
