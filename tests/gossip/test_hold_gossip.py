"""``SwimCore.hold_gossip``: a hollow pool that holds gossip it could not handle yet skips its
nodes' gossip rounds (orion/hollow/pool.py); probes and their piggyback go on as before."""

from __future__ import annotations

import random

from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.messages import Gossip, Ping
from orion.sim.gossip_cluster import sim_meta


def joined_pair() -> tuple[SwimCore, SwimCore]:
    config = GossipConfig()
    a = SwimCore(sim_meta(0), config, random.Random(1), 0.0)
    b = SwimCore(sim_meta(1), config, random.Random(2), 0.0)
    a.join([b.address], 0.0)
    for _ in range(3):  # the join, its answer and what follows, delivered at once
        for sender, receiver in ((a, b), (b, a)):
            for address, message in sender.drain_outbox():
                assert address == receiver.address
                receiver.receive(message, 0.0)
    assert {m.id for m in a.members()} == {m.id for m in b.members()} == {a.node_id, b.node_id}
    return a, b


def kinds(core: SwimCore) -> list[type]:
    return [type(message) for _, message in core.drain_outbox()]


def test_held_gossip_rounds_wait_while_probes_go_on() -> None:
    a, _ = joined_pair()
    a.update_meta(sim_meta(0, version=2), 0.0)  # something to gossip
    assert a.pending_broadcasts > 0
    a.hold_gossip(5.0)
    a.tick(3.0)
    sent = kinds(a)
    assert Gossip not in sent and Ping in sent  # the probe went, carrying the update
    deadline = a.next_deadline()
    assert deadline is not None
    a.update_meta(sim_meta(0, version=3), 3.0)
    a.tick(4.9)
    assert Gossip not in kinds(a)
    a.tick(5.0)
    assert Gossip in kinds(a)


def test_a_hold_never_brings_a_round_forward() -> None:
    a, _ = joined_pair()
    a.update_meta(sim_meta(0, version=2), 0.0)
    a.hold_gossip(10.0)
    a.hold_gossip(1.0)  # earlier than the hold in force: no effect
    a.tick(5.0)
    assert Gossip not in kinds(a)
    a.tick(10.0)
    assert Gossip in kinds(a)
