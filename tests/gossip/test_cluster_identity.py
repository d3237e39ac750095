"""Gossip carries the cluster id: a node that knows its cluster drops gossip from another one."""

from __future__ import annotations

import msgspec
import pytest

from orion.gossip.config import GossipConfig
from orion.gossip.events import ForeignGossip
from orion.gossip.messages import Ack, Alive, Gossip, Nack, Ping, PushPull, decode_message, encode_message
from orion.sim.gossip_cluster import GossipCluster

RED = "aa" * 16
BLUE = "bb" * 16
RED_IDS = ["n000", "n001", "n002", "n003"]
BLUE_IDS = ["n004", "n005", "n006", "n007"]


def two_clusters(seed: int, encode: bool = True) -> GossipCluster:
    """Eight members on one network: red n000-n003 and blue n004-n007, each configured and converged."""
    cluster = GossipCluster(9, GossipConfig.local(), seed, encode=encode)
    cluster.crash("n008")  # kept in reserve: a brand-new node for the tests that need one
    for ids, cluster_id in ((RED_IDS, RED), (BLUE_IDS, BLUE)):
        for node_id in ids:
            cluster.set_identity(node_id, cluster_id, f"inc-{node_id}")
        for node_id in ids[1:]:
            cluster.join(node_id, [ids[0]])
    both = lambda: cluster.converged(RED_IDS) and cluster.converged(BLUE_IDS)  # noqa: E731
    assert cluster.run_until_true(both, timeout=60)
    return cluster


def known(cluster: GossipCluster, observer: str) -> set[str]:
    return {m.id for m in cluster.cores[observer].members() if m.status in ("alive", "suspect")}


def test_join_through_a_member_of_another_cluster_is_dropped_and_reported_once() -> None:
    cluster = two_clusters(seed=41)
    cluster.join("n004", ["n000"])  # a blue node given a red seed by mistake
    cluster.run_for(60)
    assert all(known(cluster, n) == set(RED_IDS) for n in RED_IDS)
    assert all(known(cluster, n) == set(BLUE_IDS) for n in BLUE_IDS)
    reports = [report for observer, report in cluster.foreign if observer == "n000"]
    assert reports == [ForeignGossip(cluster.address("n004"), BLUE, RED)]  # once, though retried
    assert cluster.cores["n000"].foreign_dropped > 1


def test_new_node_without_cluster_id_joins_and_is_heard_by_everyone() -> None:
    cluster = two_clusters(seed=42)
    newcomer = cluster.restart("n008", ["n001"])
    assert newcomer.cluster_id == ""
    members = [*RED_IDS, "n008"]
    assert cluster.run_until_true(lambda: cluster.converged(members), timeout=60)
    assert cluster.foreign == []
    # It took the id of the cluster it joined from the seed's answer, and announced itself with it.
    assert newcomer.cluster_id == RED and newcomer.incarnation == 1
    assert all(
        next(m for m in cluster.cores[n].members() if m.id == "n008").meta.cluster_id == RED for n in RED_IDS
    )
    cluster.set_identity("n008", RED, newcomer.meta.raft_incarnation)  # Raft names the same cluster
    cluster.run_for(30)
    assert cluster.converged(members) and cluster.foreign == []
    assert newcomer.incarnation == 1  # nothing new to announce: no second alive went round


def test_joining_node_announces_itself_only_after_the_seed_named_the_cluster() -> None:
    cluster = two_clusters(seed=46, encode=False)
    newcomer = cluster.restart("n008", [])
    newcomer.join([cluster.address("n001")], cluster.now)
    [(address, ask)] = newcomer.drain_outbox()
    assert address == cluster.address("n001") and isinstance(ask, PushPull) and ask.join
    assert ask.states == [] and ask.cluster == ""  # nothing of its own to spread yet
    seed = cluster.cores["n001"]
    seed.receive(ask, cluster.now)
    assert "n008" not in {m.id for m in seed.members()}
    [(back, answer)] = seed.drain_outbox()
    assert back == cluster.address("n008") and isinstance(answer, PushPull) and answer.reply
    newcomer.receive(answer, cluster.now)
    assert newcomer.cluster_id == RED
    assert {m.id for m in newcomer.members()} == {*RED_IDS, "n008"}
    [(to_seed, announce)] = newcomer.drain_outbox()
    assert to_seed == cluster.address("n001") and isinstance(announce, Gossip)
    assert announce.cluster == RED
    assert [(u.node_id, u.meta.cluster_id) for u in announce.updates] == [("n008", RED)]  # type: ignore[union-attr]
    seed.receive(announce, cluster.now)
    assert next(m for m in seed.members() if m.id == "n008").meta.cluster_id == RED


def test_joined_node_is_not_carried_into_another_cluster() -> None:
    # A new node joins blue, so it is blue's (the id came with blue's answer); a later join
    # through red by mistake is dropped by red, and red never learns blue's members from it.
    cluster = two_clusters(seed=43)
    newcomer = cluster.restart("n008", ["n004"])
    assert cluster.run_until_true(lambda: known(cluster, "n008") == {*BLUE_IDS, "n008"}, timeout=60)
    assert newcomer.cluster_id == BLUE
    cluster.join("n008", ["n000"])
    cluster.run_for(30)
    assert all(known(cluster, n) == set(RED_IDS) for n in RED_IDS)
    assert ("n000", ForeignGossip(cluster.address("n008"), BLUE, RED)) in cluster.foreign
    assert known(cluster, "n008") == {*BLUE_IDS, "n008"}


def test_unconfigured_node_does_not_carry_another_clusters_members_in() -> None:
    # A new node first hears blue through a blue member's push-pull (it accepts any cluster while
    # it has none), then joins red: red must not learn blue's members from it, and once configured
    # it lets blue's go.
    cluster = two_clusters(seed=43)
    newcomer = cluster.restart("n008", [])
    blue = cluster.cores["n004"]
    newcomer.receive(blue._push_pull(), cluster.now)  # as after a ping from a stranger
    cluster._pump("n008")
    assert cluster.run_until_true(lambda: known(cluster, "n008") == {*BLUE_IDS, "n008"}, timeout=60)
    assert newcomer.cluster_id == ""  # only a join's answer names the cluster
    cluster.join("n008", ["n000"])
    assert cluster.run_until_true(lambda: known(cluster, "n008") >= set(RED_IDS), timeout=60)
    cluster.run_for(10)
    assert all(known(cluster, n) <= {*RED_IDS, "n008"} for n in RED_IDS)
    assert newcomer.cluster_id == RED
    # Blue drops its pings now, so blue's members die out of its view.
    assert cluster.run_until_true(lambda: known(cluster, "n008") == {*RED_IDS, "n008"}, timeout=120)
    assert cluster.run_until_true(lambda: all(known(cluster, n) == set(BLUE_IDS) for n in BLUE_IDS), 120)


def test_cluster_id_rule_at_the_core() -> None:
    cluster = two_clusters(seed=44, encode=False)
    red = cluster.cores["n000"]
    sender = cluster.address("n005")
    blue_meta = cluster.cores["n005"].meta
    before = [(m.id, m.status, m.incarnation) for m in red.members()]
    # Another cluster's message, and another cluster's member relayed by an unconfigured sender.
    red.receive(Gossip(sender, [Alive("n005", 7, blue_meta)], BLUE), cluster.now)
    red.receive(Gossip(sender, [Alive("n005", 7, blue_meta)], ""), cluster.now)
    red.receive(Ping(1, sender, "n000", [], BLUE), cluster.now)
    assert red.drain_outbox() == []
    assert [(m.id, m.status, m.incarnation) for m in red.members()] == before
    assert red.drain_foreign() == [ForeignGossip(sender, BLUE, RED)]
    assert red.foreign_dropped == 2
    # A message without a cluster id (a joining node, or one older than the field) is answered.
    red.receive(Ping(2, sender, "n000", [], ""), cluster.now)
    replies = red.drain_outbox()
    assert replies and all(msg.cluster == RED for _address, msg in replies)


def test_every_message_carries_the_senders_cluster_id() -> None:
    cluster = two_clusters(seed=45, encode=False)
    seen: list[str] = []
    for node_id in RED_IDS:
        core = cluster.cores[node_id]
        core.tick(cluster.now + 30)  # probes, gossip, push-pull and reconnects are all due
        seen.extend(msg.cluster for _address, msg in core.drain_outbox())
    assert seen and set(seen) == {RED}


def test_cluster_field_round_trips_and_is_validated() -> None:
    ping = Ping(1, "127.0.0.1:7200", "n2", [], RED)
    assert decode_message(encode_message(ping)) == ping
    # The encoding before the field existed: decodes with cluster "".
    assert decode_message(msgspec.msgpack.encode(["nack", 3, "127.0.0.1:7202"])) == Nack(3, "127.0.0.1:7202")
    legacy_ack = msgspec.msgpack.encode(["ack", 3, "127.0.0.1:7202", []])
    assert decode_message(legacy_ack) == Ack(3, "127.0.0.1:7202", [], "")
    push_pull = PushPull("127.0.0.1:7200", "n1", [], cluster=BLUE)
    assert decode_message(encode_message(push_pull)).cluster == BLUE  # type: ignore[union-attr]
    for bad in ("x" * 65, "has space", "ünïcode"):
        with pytest.raises(msgspec.ValidationError, match=r"\$\[3\]"):  # the cluster field
            decode_message(msgspec.msgpack.encode(["nack", 3, "127.0.0.1:7202", bad]))
