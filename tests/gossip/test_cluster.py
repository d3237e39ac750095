"""Whole-cluster behaviour in the deterministic simulator (virtual time; seeds replay failures)."""

from __future__ import annotations

import pytest

from orion.gossip.config import GossipConfig
from orion.gossip.timing import suspicion_timeout
from orion.model import NodeMeta
from orion.sim.gossip_cluster import GossipCluster, sim_meta

CONFIGS = {"lifeguard": GossipConfig(), "swim": GossipConfig().without_lifeguard()}


def started(size: int, config: GossipConfig, seed: int, **kwargs: object) -> GossipCluster:
    cluster = GossipCluster(size, config, seed, **kwargs)  # type: ignore[arg-type]
    cluster.join_all()
    assert cluster.run_until_true(cluster.converged, timeout=60), f"no convergence (seed {seed})"
    return cluster


def test_fifty_members_converge_after_join() -> None:
    cluster = GossipCluster(50, GossipConfig(), seed=11)
    cluster.join_all()
    assert cluster.run_until_true(cluster.converged, timeout=30)
    # Every member saw every other one join exactly once.
    for observer in cluster.ids:
        joined = [
            e.event.node_id for e in cluster.events if e.observer == observer and e.event.kind == "joined"
        ]
        assert sorted(joined) == sorted(set(cluster.ids) - {observer})


def test_join_through_the_wire_format() -> None:
    cluster = GossipCluster(12, GossipConfig.local(), seed=5, encode=True)
    cluster.join_all()
    assert cluster.run_until_true(cluster.converged, timeout=30)
    assert cluster.rejected == 0 and cluster.delivered > 0


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_crashed_member_is_declared_dead_by_all_in_expected_time(name: str) -> None:
    config = CONFIGS[name]
    size = 30
    cluster = started(size, config, seed=21)
    cluster.crash("n013")
    crashed_at = cluster.now
    # Expected: a prober reaches it within a few probe rounds, then the suspicion runs out; with
    # Lifeguard the suspicion may take up to its maximum when no one else confirms.
    min_timeout = suspicion_timeout(config.suspicion_mult, size, config.probe_interval)
    bound = (config.suspicion_max_timeout_mult if config.lifeguard_suspicion else 1) * min_timeout + 10.0
    assert cluster.run_until_true(lambda: cluster.all_see("n013", "dead"), timeout=bound, step=0.1)
    deaths = [e for e in cluster.events if e.event.kind == "dead" and e.event.node_id == "n013"]
    assert len({e.observer for e in deaths}) == size - 1
    assert min(e.at for e in deaths) - crashed_at >= min_timeout  # not before the suspicion could end
    others_dead = [e for e in cluster.events if e.event.kind == "dead" and e.event.node_id != "n013"]
    assert others_dead == []


def test_no_false_dead_over_an_hour_with_five_percent_loss() -> None:
    cluster = started(24, GossipConfig(), seed=7, loss=0.05)
    cluster.run_for(3600.0)
    dead = [e for e in cluster.events if e.event.kind == "dead"]
    assert dead == []
    assert cluster.network.dropped > 0.04 * cluster.network.sent
    assert cluster.converged()


def test_partition_then_heal_converges() -> None:
    config = GossipConfig.local()
    cluster = started(16, config, seed=3)
    left, right = cluster.ids[:8], cluster.ids[8:]
    cluster.partition([left, right])
    # Each side declares the other dead (not necessarily in the same round).
    assert cluster.run_until_true(
        lambda: (
            all(cluster.all_see(node, "dead", observers=right) for node in left)
            and all(cluster.all_see(node, "dead", observers=left) for node in right)
        ),
        timeout=120,
    )
    cluster.heal()
    assert cluster.run_until_true(cluster.converged, timeout=300)
    # Back together, every member came back with a higher incarnation than the one declared dead.
    revived = [e for e in cluster.events if e.event.kind == "joined" and e.at > 0 and e.event.incarnation > 0]
    assert revived


def test_refutation_clears_a_false_suspicion() -> None:
    cluster = started(10, GossipConfig(), seed=4)
    accused = cluster.cores["n005"]
    # n001 wrongly suspects n005 (as if its probe had been lost) and gossips it.
    from orion.gossip.messages import Gossip, Suspect

    cluster.cores["n001"].receive(
        Gossip(cluster.address("n002"), [Suspect("n005", accused.incarnation, "n002")]), cluster.now
    )
    cluster._pump("n001")
    assert cluster.view("n001")["n005"] == "suspect"
    assert cluster.run_until_true(lambda: accused.incarnation == 1 and cluster.all_see("n005", "alive"), 10)
    assert not [e for e in cluster.events if e.event.kind == "dead"]
    assert [e.observer for e in cluster.events if e.event.kind == "alive" and e.event.node_id == "n005"]


def test_meta_propagates_to_everyone() -> None:
    cluster = started(20, GossipConfig(), seed=8)
    new_meta = sim_meta(4, memory_total=2**34, memory_used=2**30, tags={"zone": "b"})
    cluster.update_meta(new_meta)

    def everyone_sees_it() -> bool:
        for observer in cluster.ids:
            seen = {m.id: m.meta for m in cluster.cores[observer].members()}["n004"]
            if seen.tags != {"zone": "b"} or seen.version != 1:
                return False
        return True

    assert cluster.run_until_true(everyone_sees_it, timeout=10)
    updates = [e for e in cluster.events if e.event.kind == "updated" and e.event.node_id == "n004"]
    assert len({e.observer for e in updates}) == 19
    assert all(isinstance(e.event.meta, NodeMeta) and e.event.meta.memory_used == 2**30 for e in updates)


def test_graceful_leave_reaches_everyone_as_left() -> None:
    cluster = started(20, GossipConfig(), seed=9)
    cluster.leave("n006")
    assert cluster.run_until_true(lambda: cluster.all_see("n006", "left"), timeout=10)
    assert not [
        e for e in cluster.events if e.event.node_id == "n006" and e.event.kind in ("suspect", "dead")
    ]


def test_crashed_member_restarts_and_rejoins_with_higher_incarnation() -> None:
    config = GossipConfig.local()
    cluster = started(12, config, seed=12)
    cluster.crash("n007")
    assert cluster.run_until_true(lambda: cluster.all_see("n007", "dead"), timeout=120)
    dead_incarnation = next(m.incarnation for m in cluster.cores["n000"].members() if m.id == "n007")
    reborn = cluster.restart("n007", ["n003"])
    assert cluster.run_until_true(cluster.converged, timeout=60)
    assert reborn.incarnation > dead_incarnation
    rejoined = {e.observer for e in cluster.events if e.event.node_id == "n007" and e.event.kind == "joined"}
    assert rejoined >= set(cluster.ids) - {"n007"}


def test_same_seed_replays_the_same_run() -> None:
    def trace(seed: int) -> list[tuple[float, str, str, str]]:
        cluster = started(8, GossipConfig.local(), seed=seed, loss=0.1)
        cluster.crash("n002")
        cluster.run_for(60)
        return [(e.at, e.observer, e.event.kind, e.event.node_id) for e in cluster.events]

    assert trace(42) == trace(42)


def _false_deaths_with_slow_members(config: GossipConfig) -> tuple[int, GossipCluster]:
    cluster = started(24, config, seed=17)
    slow = ["n005", "n011", "n017"]
    for node in slow:
        cluster.set_slow(node, (1.0, 12.0))
    cluster.run_for(300.0)
    deaths = [e for e in cluster.events if e.event.kind == "dead" and e.event.node_id not in slow]
    return len(deaths), cluster


def test_slow_members_notice_themselves_and_lifeguard_cuts_false_deaths() -> None:
    swim_deaths, _ = _false_deaths_with_slow_members(CONFIGS["swim"])
    lifeguard_deaths, cluster = _false_deaths_with_slow_members(CONFIGS["lifeguard"])
    assert swim_deaths > 10 * max(1, lifeguard_deaths)
    slow_health = [cluster.cores[node].local_health for node in ("n005", "n011", "n017")]
    healthy_health = [
        core.local_health for node, core in cluster.cores.items() if node not in ("n005", "n011", "n017")
    ]
    assert min(slow_health) > max(healthy_health)
