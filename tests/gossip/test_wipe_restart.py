"""A member whose data dir was wiped comes back as a fresh process: SWIM incarnation 0, a new
raft_incarnation, a meta version counting from the start again, the same id and address. Whatever
the others last held about it (alive, suspect or dead, at a higher incarnation and meta version),
they must reach it, it must refute, and all must see it alive with its NEW meta, within a bound,
even when it joins through nobody (a wiped bootstrap node with an empty join list)."""

from __future__ import annotations

import msgspec
import pytest

from orion.gossip.config import GossipConfig
from orion.model import NodeMeta
from orion.sim.gossip_cluster import GossipCluster

CLUSTER = "c0ffee00c0ffee00c0ffee00c0ffee00"
WIPED = "n005"
# Virtual seconds for everyone to see the new life: two reconnect intervals of the local profile
# (the slowest path, a member everyone holds dead) plus a suspicion timeout's worth of slack.
BOUND = 2 * GossipConfig.local().reconnect_interval + 10.0


def configured_cluster(seed: int, encode: bool = False) -> GossipCluster:
    cluster = GossipCluster(8, GossipConfig.local(), seed, encode=encode)
    cluster.join_all()
    assert cluster.run_until_true(cluster.converged, timeout=60), f"no convergence (seed {seed})"
    for node_id in cluster.ids:
        cluster.set_identity(node_id, CLUSTER, f"old-{node_id}")
    # An older life with a high incarnation and meta version, which a fresh process starts below.
    for memory_used in (1, 2, 3):
        meta = cluster.cores[WIPED].meta
        cluster.update_meta(msgspec.structs.replace(meta, memory_used=memory_used))
    assert cluster.run_until_true(lambda: all_see_meta(cluster, f"old-{WIPED}", CLUSTER), timeout=30)
    return cluster


def seen(cluster: GossipCluster, observer: str, node_id: str) -> tuple[str, NodeMeta]:
    view = next(m for m in cluster.cores[observer].members() if m.id == node_id)
    return view.status, view.meta


def all_see_meta(cluster: GossipCluster, raft_incarnation: str, cluster_id: str) -> bool:
    for observer in cluster.running():
        if observer == WIPED:
            continue
        status, meta = seen(cluster, observer, WIPED)
        if status != "alive" or meta.raft_incarnation != raft_incarnation or meta.cluster_id != cluster_id:
            return False
    return True


def wipe_and_restart(cluster: GossipCluster, seeds: list[str]) -> None:
    fresh = msgspec.structs.replace(cluster.metas[WIPED], raft_incarnation="new", cluster_id="", version=1)
    cluster.restart(WIPED, seeds, fresh)


@pytest.mark.parametrize("held_as", ["alive", "suspect", "dead"])
@pytest.mark.parametrize("seeds", [[], ["n002"]], ids=["no-join", "join"])
def test_wiped_member_is_seen_alive_with_its_new_meta(held_as: str, seeds: list[str]) -> None:
    cluster = configured_cluster(seed=31)
    old = seen(cluster, "n000", WIPED)[1]
    old_incarnation = cluster.cores[WIPED].incarnation
    assert old.version > 1 and old_incarnation > 0
    cluster.crash(WIPED)
    if held_as != "alive":
        reached = cluster.run_until_true(lambda: cluster.all_see(WIPED, held_as), timeout=120)
        assert reached, f"the others never all held {WIPED} {held_as}"
    wipe_and_restart(cluster, seeds)
    started = cluster.now

    # Through a seed it is back with the cluster's id at once (taken from the seed's answer);
    # through nobody, without one until Raft names the cluster.
    cluster_id = CLUSTER if seeds else ""
    assert cluster.run_until_true(lambda: all_see_meta(cluster, "new", cluster_id), timeout=BOUND), (
        f"not everyone sees {WIPED}'s new life {BOUND}s after its restart: "
        f"{ {o: seen(cluster, o, WIPED)[0] for o in cluster.running() if o != WIPED} }"
    )
    assert cluster.cores[WIPED].incarnation > old_incarnation  # it overtook its old life by refuting
    assert cluster.converged()
    # Raft hands it the configuration: its cluster id spreads like any meta change.
    cluster.set_identity(WIPED, CLUSTER, "new")
    assert cluster.run_until_true(lambda: all_see_meta(cluster, "new", CLUSTER), timeout=30)
    assert cluster.now - started < BOUND + 30


def test_wiped_member_rejoins_over_the_wire_format() -> None:
    cluster = configured_cluster(seed=32, encode=True)
    cluster.crash(WIPED)
    assert cluster.run_until_true(lambda: cluster.all_see(WIPED, "dead"), timeout=120)
    wipe_and_restart(cluster, [])
    assert cluster.run_until_true(lambda: all_see_meta(cluster, "new", ""), timeout=BOUND)
    assert cluster.rejected == 0


def test_restarted_member_without_seeds_is_found_within_a_probe_round() -> None:
    # Held alive, joining nobody: a ping from a member it does not know makes it push-pull, which
    # shows it its old record. Without that only the others' periodic push-pull (every
    # push_pull_interval, to one random member) would ever tell it.
    config = GossipConfig.local()
    cluster = configured_cluster(seed=33)
    cluster.crash(WIPED)
    wipe_and_restart(cluster, [])
    probe_round = config.probe_interval * (len(cluster.ids) - 1)
    assert cluster.run_until_true(
        lambda: all_see_meta(cluster, "new", ""), timeout=probe_round + config.push_pull_interval / 2
    )
