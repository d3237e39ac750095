"""SwimCore at its edges: accessors, join retries and their backoff, leaving (twice, and what a
left node still does), meta updates, and when the first timers fire. (Written against mutants
tools/mutation found alive.)"""

from __future__ import annotations

import random

import msgspec
import pytest

from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.messages import Gossip, Ping, PingReq, PushPull, Suspect
from tests.gossip.test_core import Link, make, meta

CONFIG = GossipConfig()


def _outgoing(core: SwimCore, kind: type) -> list[tuple[str, object]]:
    return [(dst, m) for dst, m in core.drain_outbox() if isinstance(m, kind)]


def test_accessors() -> None:
    cores, link = make(2)
    core = cores[1]
    assert (core.node_id, core.address, core.left) == ("n1", meta(1).gossip_address, False)
    assert core.pending_broadcasts > 0  # its own Alive, still to be spread
    link.run(0.0, 5.0)
    assert core.pending_broadcasts == 0
    core.leave(5.0)
    assert core.left and core.pending_broadcasts > 0


def test_joining_only_oneself_sends_nothing_and_never_retries() -> None:
    core = SwimCore(meta(1), CONFIG, random.Random(1), 0.0)
    core.join([core.address], 0.0)
    assert core.drain_outbox() == []
    for t in range(1, 20):
        core.tick(float(t))
    assert not _outgoing(core, PushPull)


def _join_times(core: SwimCore, seed: str, until: float) -> list[float]:
    times = []
    t = 0.0
    while t < until:
        t = round(t + 0.05, 6)
        core.tick(t)
        if any(dst == seed and isinstance(m, PushPull) and m.join for dst, m in core.drain_outbox()):
            times.append(t)
    return times


def test_join_retries_back_off_doubling_up_to_eight_intervals_and_a_new_join_starts_over() -> None:
    core = SwimCore(meta(1), CONFIG, random.Random(1), 0.0)
    seed = meta(0).gossip_address
    core.join([seed], 0.0)
    assert _outgoing(core, PushPull)
    times = _join_times(core, seed, 40.0)
    gaps = [round(b - a, 2) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps[:6] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0], gaps
    core.join([seed], 40.0)
    core.drain_outbox()
    t = 40.0
    while True:
        t = round(t + 0.05, 6)
        core.tick(t)
        if _outgoing(core, PushPull):
            break
    assert round(t - 40.0, 2) == CONFIG.join_retry_interval


def test_leaving_twice_announces_once_and_a_left_node_neither_probes_nor_suspects() -> None:
    cores, link = make(3)
    link.run(0.0, 3.0)
    leaver = cores[2]
    link.blackholed.add(cores[0].address)  # a probe of n0 by n2 would fail: n2 must not care
    leaver.leave(3.0)
    first = _outgoing(leaver, Gossip)
    leaver.leave(3.0)
    assert first and leaver.drain_outbox() == []
    for t in range(4, 40):
        leaver.tick(float(t))
    sent = leaver.drain_outbox()
    assert not [m for _d, m in sent if isinstance(m, Ping | PingReq | PushPull)]
    assert not [e for e in leaver.drain_events() if e.kind in ("suspect", "dead")]
    leaver.receive(Ping(9, cores[0].address, "n2", [Suspect("n2", 0, "n0")]), 40.0)
    assert leaver.drain_outbox() == [] and leaver.incarnation == 0


def test_meta_of_another_node_is_refused_and_a_new_address_is_adopted() -> None:
    cores, _link = make(2)
    core = cores[1]
    with pytest.raises(ValueError, match="meta is for 'n0', this core is 'n1'"):
        core.update_meta(meta(0), 1.0)
    moved = msgspec.structs.replace(meta(1), gossip_port=7999)
    core.update_meta(moved, 1.0)
    assert core.address == moved.gossip_address and core.meta.gossip_port == 7999


def _first(kind: type, seed: int, step: float = 0.01, **config: object) -> float:
    """When a fresh member of a two-member cluster first sends ``kind``."""
    cfg = GossipConfig(**config)  # type: ignore[arg-type]
    a = SwimCore(meta(0), cfg, random.Random(seed), 0.0)
    b = SwimCore(meta(1), cfg, random.Random(seed + 1000), 0.0)
    link = Link([a, b])
    b.join([a.address], 0.0)
    link.flush(0.0)
    a.drain_outbox()
    t = 0.0
    while t < 100.0:
        t = round(t + step, 6)
        a.tick(t)
        if any(
            isinstance(m, kind) and not (isinstance(m, PushPull) and m.join) for _d, m in a.drain_outbox()
        ):
            return t
        for core in (a, b):
            core.drain_outbox()
    raise AssertionError(f"no {kind.__name__} in 100 s")


def test_first_timers_are_jittered_within_their_interval() -> None:
    probes = [_first(Ping, seed) for seed in range(30)]
    assert 0.0 < min(probes) < 0.2 and 0.8 < max(probes) <= CONFIG.probe_interval, probes
    pulls = [_first(PushPull, seed, step=0.5) for seed in range(12)]
    lo, hi = 0.5 * CONFIG.push_pull_interval, CONFIG.push_pull_interval
    assert all(lo <= t <= hi + 0.5 for t in pulls) and max(pulls) - min(pulls) > 2.0, pulls
