"""SwimCore behaviours pinned after the mutation run (see RELIABILITY.md, "20,000 seeds and the
mutation score"): each test states a rule a surviving mutant broke without any test noticing."""

from __future__ import annotations

import copy
import random

from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.messages import Alive, Gossip, Ping
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


def test_nothing_happens_before_next_deadline() -> None:
    """A shell sleeps until next_deadline(): no timer may fire earlier than it says, in a
    cluster with probes, indirect probes, suspicions, join retries and anti-entropy under way."""
    config = GossipConfig.local(push_pull_interval=2.0, reconnect_interval=1.5)
    cores, link = make(4, config)
    link.run(0.0, 1.0)
    link.blackholed.add(cores[3].address)  # probes fail: ping-reqs, relays, suspicion, death
    cores[2].join([cores[3].address], 1.0)  # a join that is never answered: retries
    link.flush(1.0)
    now, checked = 1.0, 0
    while now < 12.0:
        for core in cores[:3]:
            deadline = core.next_deadline()
            assert deadline is not None
            if deadline - now > 0.02:
                twin = copy.deepcopy(core)
                twin.drain_outbox()
                twin.drain_events()  # what happened up to now is not the question
                t = now
                while t + 0.01 < deadline - 1e-9:
                    t = round(t + 0.01, 6)
                    twin.tick(t)
                assert twin.drain_outbox() == [] and twin.drain_events() == [], (now, deadline, t)
                checked += 1
        now = link.run(now, now + 0.25, step=0.05)
    assert checked > 50
    assert statuses(cores[0])["n3"] in ("suspect", "dead")


def test_consecutive_probes_carry_distinct_sequence_numbers() -> None:
    """An ack names the probe it answers by sequence number: two probes with one number would
    let a late ack for the first one pass for the second."""
    cores, link = make(3)
    link.run(0.0, 6.0)
    seqs = [m.seq for src, _dst, m in link.sent if isinstance(m, Ping) and src == cores[0].address]
    assert len(seqs) >= 5
    assert len(set(seqs)) == len(seqs), seqs
