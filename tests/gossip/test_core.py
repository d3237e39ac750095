"""SwimCore behaviour driven directly, message by message (no simulator)."""

from __future__ import annotations

import random

from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.messages import (
    Ack,
    Alive,
    Dead,
    Gossip,
    GossipMessage,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
)
from orion.model import NodeMeta


def meta(index: int, **fields: object) -> NodeMeta:
    return NodeMeta(id=f"n{index}", gossip_port=7200 + index, **fields)  # type: ignore[arg-type]


class Link:
    """Instant delivery between cores, with blackholed destinations; records every datagram sent."""

    def __init__(self, cores: list[SwimCore]) -> None:
        self.cores = {core.address: core for core in cores}
        self.blackholed: set[str] = set()
        self.sent: list[tuple[str, str, GossipMessage]] = []

    def flush(self, now: float) -> None:
        for _ in range(1000):
            batch = [
                (core.address, dst, msg) for core in self.cores.values() for dst, msg in core.drain_outbox()
            ]
            if not batch:
                return
            self.sent.extend(batch)
            for _src, dst, msg in batch:
                if dst in self.cores and dst not in self.blackholed:
                    self.cores[dst].receive(msg, now)
        raise AssertionError("message storm: the cores never went quiet")

    def run(self, start: float, end: float, step: float = 0.01) -> float:
        now = start
        while now < end:
            now = round(now + step, 6)
            for core in self.cores.values():
                core.tick(now)
            self.flush(now)
        return now


def make(count: int, config: GossipConfig | None = None) -> tuple[list[SwimCore], Link]:
    config = config or GossipConfig()
    cores = [SwimCore(meta(i), config, random.Random(i), 0.0) for i in range(count)]
    link = Link(cores)
    for core in cores[1:]:
        core.join([cores[0].address], 0.0)
    link.flush(0.0)
    return cores, link


def statuses(core: SwimCore) -> dict[str, str]:
    return {m.id: m.status for m in core.members()}


def test_join_exchanges_full_state_and_emits_joined() -> None:
    cores, link = make(3)
    link.run(0.0, 2.0)
    for core in cores:
        assert statuses(core) == {"n0": "alive", "n1": "alive", "n2": "alive"}
    kinds = {(e.kind, e.node_id) for e in cores[1].drain_events()}
    assert ("joined", "n0") in kinds and ("joined", "n2") in kinds


def test_join_is_retried_until_a_seed_answers() -> None:
    cores, link = make(1)
    late = SwimCore(meta(5), GossipConfig(), random.Random(5), 0.0)
    link.cores[late.address] = late
    link.blackholed.add(cores[0].address)
    late.join([cores[0].address], 0.0)
    link.run(0.0, 4.0)
    joins = [m for src, _dst, m in link.sent if src == late.address and isinstance(m, PushPull) and m.join]
    assert len(joins) >= 3
    link.blackholed.clear()
    link.run(4.0, 12.0)
    assert statuses(late)["n0"] == "alive"
    sent_before = len([1 for src, _d, m in link.sent if src == late.address and isinstance(m, PushPull)])
    link.run(12.0, 20.0)
    sent_after = len(
        [1 for src, _d, m in link.sent if src == late.address and isinstance(m, PushPull) and m.join]
    )
    assert sent_after <= sent_before  # no more join retries once answered


def test_ping_for_another_id_is_not_acked() -> None:
    cores, _link = make(2)
    cores[1].receive(Ping(99, cores[0].address, "someone-else", []), 0.0)
    assert not [m for _dst, m in cores[1].drain_outbox() if isinstance(m, Ack)]
    cores[1].receive(Ping(100, cores[0].address, "n1", []), 0.0)
    acks = [m for _dst, m in cores[1].drain_outbox() if isinstance(m, Ack)]
    assert [a.seq for a in acks] == [100]


def test_refutes_suspicion_of_itself_and_loses_local_health() -> None:
    cores, link = make(2)
    core = cores[1]
    assert core.incarnation == 0 and core.local_health == 0
    core.receive(Ping(1, cores[0].address, "n1", [Suspect("n1", 0, "n0")]), 1.0)
    assert core.incarnation == 1
    assert core.local_health == 1
    link.run(1.0, 2.0)
    assert [m.incarnation for m in cores[0].members() if m.id == "n1"] == [1]
    assert statuses(cores[0])["n1"] == "alive"


def test_stale_suspicion_is_ignored() -> None:
    cores, _link = make(2)
    core = cores[1]
    core.receive(Ping(1, cores[0].address, "n1", [Suspect("n1", 0, "n0")]), 1.0)
    core.receive(Ping(2, cores[0].address, "n1", [Suspect("n1", 0, "n0")]), 1.0)
    assert core.incarnation == 1


def test_missed_nacks_raise_local_health_only_with_lifeguard() -> None:
    for lifeguard, expected in [(True, 1), (False, 0)]:
        config = GossipConfig() if lifeguard else GossipConfig().without_lifeguard()
        cores, link = make(3, config)
        link.run(0.0, 3.0)
        a = cores[0]
        assert a.local_health == 0
        # a cannot hear anything: its probe gets neither the ack nor the helper's nack.
        link.blackholed.add(a.address)
        link.run(3.0, 3.0 + 2 * config.probe_interval + 0.05)
        assert a.local_health >= expected
        if not lifeguard:
            assert a.local_health == 0


def test_helper_sends_nack_when_target_is_silent() -> None:
    cores, link = make(3)
    link.run(0.0, 3.0)
    a, b, c = cores
    a.receive(Ack(0, b.address), 3.0)  # nothing pending: ignored
    c.receive(PingReq(77, a.address, b.node_id, b.address, True, []), 3.0)
    pings = [(dst, m) for dst, m in c.drain_outbox() if isinstance(m, Ping)]
    assert [dst for dst, _ in pings] == [b.address]
    c.tick(3.0 + GossipConfig().probe_timeout)
    nacks = [(dst, m) for dst, m in c.drain_outbox() if isinstance(m, Nack)]
    assert nacks == [(a.address, Nack(77, c.address))]


def test_helper_forwards_ack_to_requester() -> None:
    cores, link = make(3)
    link.run(0.0, 3.0)
    a, b, c = cores
    c.receive(PingReq(55, a.address, b.node_id, b.address, True, []), 3.0)
    (_dst, ping), *_ = [(d, m) for d, m in c.drain_outbox() if isinstance(m, Ping)]
    c.receive(Ack(ping.seq, b.address), 3.01)
    forwarded = [(d, m.seq) for d, m in c.drain_outbox() if isinstance(m, Ack)]
    assert forwarded == [(a.address, 55)]
    c.tick(10.0)
    assert not [m for _d, m in c.drain_outbox() if isinstance(m, Nack)]


def test_buddy_system_puts_the_suspicion_on_the_probe() -> None:
    for buddy in (True, False):
        config = GossipConfig(lifeguard_buddy=buddy)
        cores, link = make(2, config)
        link.run(0.0, 3.0)
        a, b = cores
        link.blackholed.add(b.address)
        a.receive(Ping(5, b.address, "n0", [Suspect("n1", b.incarnation, "n9")]), 3.0)
        assert statuses(a)["n1"] == "suspect"
        # Let the suspect broadcast run out, then watch a's next probe of n1.
        for _ in range(30):
            a.drain_outbox()
            a._piggyback()
        link.sent.clear()
        link.run(3.0, 6.0)
        probes = [
            m for src, dst, m in link.sent if src == a.address and dst == b.address and isinstance(m, Ping)
        ]
        assert probes
        carried = [u for u in probes[0].updates if isinstance(u, Suspect) and u.node_id == "n1"]
        assert bool(carried) == buddy


def test_update_meta_bumps_version_and_incarnation_and_propagates() -> None:
    cores, link = make(3)
    link.run(0.0, 3.0)
    for core in cores:
        core.drain_events()
    new_meta = meta(1, memory_used=5, tags={"zone": "b"})
    cores[1].update_meta(new_meta, 3.0)
    assert cores[1].meta.version == 1 and cores[1].incarnation == 1
    cores[1].update_meta(new_meta, 3.0)  # same content: nothing to do
    assert cores[1].meta.version == 1 and cores[1].incarnation == 1
    link.run(3.0, 5.0)
    for observer in (cores[0], cores[2]):
        seen = next(m for m in observer.members() if m.id == "n1")
        assert seen.meta.tags == {"zone": "b"} and seen.meta.version == 1
        assert [(e.kind, e.meta.version) for e in observer.drain_events()] == [("updated", 1)]


def test_leave_is_announced_and_not_refuted() -> None:
    cores, link = make(3)
    link.run(0.0, 3.0)
    cores[2].leave(3.0)
    announced = [m for _dst, m in cores[2].drain_outbox() if isinstance(m, Gossip)]
    assert announced and all(Dead("n2", 0, "n2", left=True) in m.updates for m in announced)
    for msg in announced:
        for observer in cores[:2]:
            observer.receive(msg, 3.0)
    link.run(3.0, 5.0)
    for observer in cores[:2]:
        assert statuses(observer)["n2"] == "left"
        assert ("left", "n2") in {(e.kind, e.node_id) for e in observer.drain_events()}
    assert statuses(cores[2])["n2"] == "left"
    cores[2].receive(Ping(1, cores[0].address, "n2", [Dead("n2", 0, "n0")]), 5.0)
    assert cores[2].drain_outbox() == []


def test_restarted_member_overtakes_its_old_incarnation() -> None:
    cores, link = make(3)
    link.run(0.0, 3.0)
    cores[2].update_meta(meta(2, memory_used=1), 3.0)
    cores[2].update_meta(meta(2, memory_used=2), 3.0)
    link.run(3.0, 4.0)
    old_incarnation = cores[2].incarnation
    assert old_incarnation == 2
    reborn = SwimCore(meta(2), GossipConfig(), random.Random(99), 4.0)
    link.cores[reborn.address] = reborn
    reborn.join([cores[0].address], 4.0)
    link.flush(4.0)
    assert reborn.incarnation > old_incarnation
    link.run(4.0, 6.0)
    for observer in cores[:2]:
        seen = next(m for m in observer.members() if m.id == "n2")
        assert seen.incarnation == reborn.incarnation and seen.meta == meta(2)


def test_dead_member_comes_back_with_a_higher_incarnation() -> None:
    cores, link = make(3)
    link.run(0.0, 3.0)
    cores[0].receive(Ping(1, cores[1].address, "n0", [Dead("n2", 0, "n1")]), 3.0)
    assert statuses(cores[0])["n2"] == "dead"
    cores[0].receive(Ping(2, cores[1].address, "n0", [Alive("n2", 0, meta(2))]), 3.0)
    assert statuses(cores[0])["n2"] == "dead"  # same incarnation cannot revive
    cores[0].receive(Ping(3, cores[1].address, "n0", [Alive("n2", 1, meta(2))]), 3.0)
    assert statuses(cores[0])["n2"] == "alive"
    kinds = [e.kind for e in cores[0].drain_events() if e.node_id == "n2"]
    assert kinds[-2:] == ["dead", "joined"]


def test_next_deadline_moves_forward() -> None:
    cores, link = make(4)
    now = 0.0
    for _ in range(2000):
        deadlines = [c.next_deadline() for c in cores]
        now = min(d for d in deadlines if d is not None)
        for core in cores:
            core.tick(now)
        link.flush(now)
        assert all((d is None or d > now) for d in (c.next_deadline() for c in cores))
    assert now > 50.0
