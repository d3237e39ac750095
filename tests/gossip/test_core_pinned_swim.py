"""SWIM and Lifeguard rules of SwimCore, each checked on one core among scripted peers (written
against the gossip mutants that survived the mutation run; see RELIABILITY.md).

The peers are scripted, not simulated: a peer acks a ping meant for it unless it is silent, and
everything else it would say is injected by the test, so each rule is seen in isolation.
"""

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
    MemberState,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    Update,
    encoded_size,
)
from orion.model import NodeMeta
from tests.gossip.test_core import meta

CONFIG = GossipConfig()
ADDRESS_OF = {f"n{i}": meta(i).gossip_address for i in range(40)}
ID_AT = {address: node_id for node_id, address in ADDRESS_OF.items()}


class Peers:
    """Scripted members around one core: they ack its pings unless silent; all it sends is kept."""

    def __init__(self, core: SwimCore) -> None:
        self.core = core
        self.silent: set[str] = set()
        self.sent: list[tuple[float, str, GossipMessage]] = []
        self.now = 0.0

    def hear(self, *updates: Update, at: float | None = None) -> None:
        """Updates reaching the core in a gossip message from a member outside the view."""
        self.core.receive(Gossip("127.0.0.99:1", list(updates)), self.now if at is None else at)
        self.deliver()

    def deliver(self) -> None:
        out = self.core.drain_outbox()
        self.sent.extend((self.now, dst, msg) for dst, msg in out)
        for dst, msg in out:
            target = ID_AT.get(dst)
            if isinstance(msg, Ping) and target == msg.target_id and target not in self.silent:
                self.core.receive(Ack(msg.seq, dst), self.now)
        self.sent.extend((self.now, dst, msg) for dst, msg in self.core.drain_outbox())

    def run_to(self, end: float, step: float = 0.01) -> None:
        while self.now < end - 1e-9:
            self.now = round(self.now + step, 6)
            self.core.tick(self.now)
            self.deliver()

    def messages(self, kind: type, since: float = 0.0) -> list[tuple[float, str, GossipMessage]]:
        return [(t, dst, m) for t, dst, m in self.sent if isinstance(m, kind) and t >= since]

    def pinged(self, since: float = 0.0) -> list[str]:
        return [m.target_id for _t, _dst, m in self.messages(Ping, since)]  # type: ignore[attr-defined]


def core_with(members: int, config: GossipConfig = CONFIG, seed: int = 0) -> tuple[SwimCore, Peers]:
    """Core n0 that knows n1..n<members> alive at incarnation 0, all acking."""
    core = SwimCore(meta(0), config, random.Random(seed), 0.0)
    peers = Peers(core)
    peers.hear(*[Alive(f"n{i}", 0, meta(i)) for i in range(1, members + 1)])
    core.drain_events()
    return core, peers


def status(core: SwimCore, node_id: str) -> str | None:
    return next((str(m.status) for m in core.members() if m.id == node_id), None)


def view(core: SwimCore, node_id: str) -> tuple[str, int, str]:
    member = next(m for m in core.members() if m.id == node_id)
    return str(member.status), member.incarnation, member.address


def kinds(core: SwimCore, node_id: str) -> list[str]:
    return [e.kind for e in core.drain_events() if e.node_id == node_id]


# ----- suspicion timeouts (Lifeguard LHA-Suspicion) -------------------------------------------


def test_an_unconfirmed_suspicion_among_four_members_lasts_the_maximum_timeout() -> None:
    """n = 4, k = suspicion_mult - 2 = 2 wanted confirmations: the timer starts at the maximum,
    6 x (4 x max(1, log10 4) x 1 s) = 24 s, and nothing shortens it."""
    core, peers = core_with(3)
    peers.run_to(1.0)
    peers.hear(Suspect("n1", 0, "n2"))
    assert kinds(core, "n1") == ["suspect"]
    peers.run_to(24.98)
    assert status(core, "n1") == "suspect"
    peers.run_to(25.02)
    assert status(core, "n1") == "dead"
    assert kinds(core, "n1") == ["dead"]


def test_each_independent_confirmation_shortens_the_suspicion_and_is_gossiped_on() -> None:
    """One confirmation of two wanted: 24 - log(2)/log(3) x (24 - 4) = 11.381 s from the start.
    A repeat by the first accuser or by the same confirmer counts for nothing."""
    core, peers = core_with(3)
    peers.run_to(1.0)
    peers.hear(Suspect("n1", 0, "n2"))
    peers.run_to(2.0)
    peers.hear(Suspect("n1", 0, "n2"), Suspect("n1", 0, "n3"), Suspect("n1", 0, "n3"))
    peers.run_to(2.5)
    spread = {
        u.accuser
        for _t, _dst, m in peers.messages(Gossip, since=2.0)
        for u in m.updates  # type: ignore[attr-defined]
        if isinstance(u, Suspect) and u.node_id == "n1"
    }
    assert spread == {"n3"}, spread
    peers.run_to(12.37)
    assert status(core, "n1") == "suspect"
    peers.run_to(12.40)
    assert status(core, "n1") == "dead"


def test_a_suspicion_among_three_members_uses_the_minimum_timeout() -> None:
    """n = 3 leaves one possible confirmer for k = 2 wanted: no confirmations are awaited, and the
    timer is the minimum, 4 x max(1, log10 3) x 1 s = 4 s."""
    core, peers = core_with(2)
    peers.run_to(1.0)
    peers.hear(Suspect("n1", 0, "n2"))
    peers.run_to(4.98)
    assert status(core, "n1") == "suspect"
    peers.run_to(5.02)
    assert status(core, "n1") == "dead"


def test_a_shorter_suspicion_started_after_a_longer_one_fires_on_time() -> None:
    """n1 suspected among four members (24 s), then n3 dies and n2 is suspected among three
    (4 s): n2's timer must fire at its own deadline, whatever a shell asked next_deadline()."""
    core, peers = core_with(3)
    peers.run_to(1.0)
    peers.hear(Suspect("n1", 0, "n3"))
    assert core.next_deadline() is not None
    peers.run_to(2.0)
    peers.hear(Dead("n3", 0, "n2"))
    assert core.next_deadline() is not None
    peers.run_to(3.0)
    peers.hear(Suspect("n2", 0, "n9"))
    assert (core.next_deadline() or 0.0) <= 7.0
    peers.run_to(7.02)
    assert status(core, "n2") == "dead"
    assert status(core, "n1") == "suspect"


def test_a_suspicion_is_gossiped_on_and_reported_once() -> None:
    core, peers = core_with(2)
    peers.run_to(1.0)
    peers.hear(Suspect("n1", 0, "n2"))
    peers.hear(Suspect("n1", 0, "n2"))
    assert kinds(core, "n1") == ["suspect"]
    peers.run_to(1.5)
    carried = [u for _t, _d, m in peers.messages(Gossip, 1.0) for u in m.updates]  # type: ignore[attr-defined]
    assert Suspect("n1", 0, "n2") in carried


def test_a_suspicion_at_a_newer_incarnation_is_adopted() -> None:
    """Suspect(n1, 3) over n1 alive at 0: an Alive must beat 3 to clear it, and the timer still
    ends in death (the suspicion and the member agree on the incarnation)."""
    core, peers = core_with(2)
    peers.run_to(1.0)
    peers.hear(Suspect("n1", 3, "n2"))
    assert view(core, "n1")[:2] == ("suspect", 3)
    peers.hear(Alive("n1", 2, meta(1)))
    assert status(core, "n1") == "suspect"
    peers.run_to(5.02)
    assert view(core, "n1")[:2] == ("dead", 3)
    peers.hear(Alive("n1", 4, meta(1)))
    assert view(core, "n1")[:2] == ("alive", 4)


# ----- dead, left, and our own death -----------------------------------------------------------


def test_a_dead_verdict_from_an_older_incarnation_is_ignored() -> None:
    core, peers = core_with(2)
    peers.hear(Alive("n1", 2, meta(1)))
    peers.hear(Dead("n1", 1, "n2"))
    assert status(core, "n1") == "alive"
    peers.hear(Dead("n1", 2, "n2"))
    assert status(core, "n1") == "dead"
    peers.hear(Dead("n1", 3, "n2"))  # already dead: nothing new to report
    assert kinds(core, "n1") == ["dead"]


def test_only_the_member_itself_can_announce_a_leave() -> None:
    core, peers = core_with(2)
    peers.hear(Dead("n1", 0, "n2", left=True))
    assert status(core, "n1") == "dead"
    peers.hear(Dead("n2", 0, "n2", left=False))
    assert status(core, "n2") == "dead"
    assert kinds(core, "n1") == ["dead"]


def test_a_dead_verdict_at_a_newer_incarnation_is_adopted() -> None:
    core, peers = core_with(2)
    peers.hear(Dead("n1", 5, "n2"))
    assert view(core, "n1")[:2] == ("dead", 5)
    peers.hear(Alive("n1", 3, meta(1)))
    assert status(core, "n1") == "dead"
    peers.hear(Alive("n1", 6, meta(1)))
    assert view(core, "n1")[:2] == ("alive", 6)


def test_a_left_member_in_a_push_pull_is_left_here_too() -> None:
    core, _peers = core_with(2)
    state = MemberState("n1", 0, "left", meta(1))  # type: ignore[arg-type]
    core.receive(PushPull(ADDRESS_OF["n2"], "n2", [state], reply=True), 1.0)
    assert status(core, "n1") == "left"
    assert kinds(core, "n1") == ["left"]


def test_being_declared_dead_is_refuted_unless_the_verdict_is_older() -> None:
    core, peers = core_with(2)
    peers.hear(Dead("n0", 0, "n1"))
    assert core.incarnation == 1
    peers.hear(Dead("n0", 0, "n1"))  # about a life we already left behind
    assert core.incarnation == 1
    peers.hear(Dead("n0", 1, "n1"))
    assert core.incarnation == 2


def test_dead_members_are_forgotten_dead_reap_time_after_their_death() -> None:
    core, peers = core_with(2, GossipConfig(dead_reap_time=50.0))
    peers.run_to(100.0)
    peers.hear(Dead("n1", 0, "n2"))
    peers.run_to(145.0)
    assert status(core, "n1") == "dead"
    peers.run_to(155.0)
    assert status(core, "n1") is None
    assert status(core, "n2") == "alive"  # alive members are never reaped, however old


# ----- alive, refutation of our own records, meta and addresses --------------------------------


def test_an_echo_of_ourselves_with_other_meta_is_refuted() -> None:
    core, peers = core_with(1)
    peers.hear(Alive("n0", 0, meta(0)))
    assert core.incarnation == 0
    peers.hear(Alive("n0", 0, meta(0, tags={"from": "a previous life"})))
    assert core.incarnation == 1


def test_newer_meta_at_the_same_incarnation_updates_an_alive_member() -> None:
    core, peers = core_with(2)
    newer = meta(1, version=1, tags={"zone": "b"})
    peers.hear(Alive("n1", 0, newer))
    assert kinds(core, "n1") == ["updated"]
    peers.hear(Alive("n1", 0, meta(1)))  # older meta: ignored
    assert next(m.meta for m in core.members() if m.id == "n1") == newer
    assert kinds(core, "n1") == []


def test_an_echo_of_a_known_alive_record_is_not_gossiped_again() -> None:
    core, peers = core_with(2)
    peers.run_to(10.0)
    assert core.pending_broadcasts == 0
    peers.hear(Alive("n1", 0, meta(1)))
    assert core.pending_broadcasts == 0


def test_an_alive_at_the_suspected_incarnation_does_not_clear_a_suspicion() -> None:
    """Only a higher incarnation refutes, whatever meta version the alive carries."""
    core, peers = core_with(2)
    peers.hear(Suspect("n1", 0, "n2"))
    peers.hear(Alive("n1", 0, meta(1, version=3)))
    assert status(core, "n1") == "suspect"


def test_a_refutation_with_new_meta_reports_alive_and_updated() -> None:
    core, peers = core_with(2)
    peers.hear(Suspect("n1", 0, "n2"))
    kinds(core, "n1")
    peers.hear(Alive("n1", 1, meta(1, tags={"zone": "c"})))
    assert kinds(core, "n1") == ["alive", "updated"]


def test_a_member_that_moved_is_probed_and_recognised_at_its_new_address() -> None:
    core, peers = core_with(1)
    moved = NodeMeta(id="n1", gossip_port=7301)
    peers.hear(Alive("n1", 1, moved))
    assert view(core, "n1") == ("alive", 1, moved.gossip_address)
    core.receive(Ping(7, moved.gossip_address, "n0"), 0.5)
    sent = core.drain_outbox()
    assert [type(m) for _d, m in sent] == [Ack]  # a member we hold alive: no stranger sync
    core.tick(3.0)
    assert [dst for dst, m in core.drain_outbox() if isinstance(m, Ping)] == [moved.gossip_address]


def test_a_revived_member_is_probed_again() -> None:
    _core, peers = core_with(2)
    peers.run_to(3.0)
    peers.hear(Dead("n1", 0, "n2"))
    peers.run_to(6.0)
    assert "n1" not in peers.pinged(since=3.01)
    peers.hear(Alive("n1", 1, meta(1)))
    peers.run_to(12.0)
    assert peers.pinged(since=9.0).count("n1") >= 1


def test_a_newcomer_is_probed_within_the_current_round() -> None:
    """SWIM's round robin: a member that joins mid-round is put in what is left of the round."""
    for seed in range(6):
        _core, peers = core_with(5, seed=seed)
        while not peers.pinged():
            peers.run_to(peers.now + 0.01)
        peers.hear(Alive("n6", 0, meta(6)))
        while len(peers.pinged()) < 6:
            peers.run_to(peers.now + 0.01)
        assert "n6" in peers.pinged()[1:6], (seed, peers.pinged())


def test_every_round_probes_each_member_once_in_a_fresh_random_order() -> None:
    _core, peers = core_with(5)
    peers.run_to(31.0)
    pinged = peers.pinged()
    rounds = [tuple(pinged[i : i + 5]) for i in range(0, 25, 5)]
    assert all(sorted(r) == ["n1", "n2", "n3", "n4", "n5"] for r in rounds), rounds
    assert len(set(rounds[1:])) > 1, rounds  # the first round's order came from the joins


# ----- probes: indirect checks, nacks, local health --------------------------------------------


def _first_failed_probe(core: SwimCore, peers: Peers) -> tuple[Ping, list[tuple[str, PingReq]]]:
    """Run until the first probe's indirect phase; return its ping and its ping-reqs."""
    while not peers.messages(Ping):
        peers.run_to(peers.now + 0.01)
    ping = peers.messages(Ping)[0][2]
    start = peers.now
    peers.run_to(start + CONFIG.probe_timeout + 0.05)
    reqs = [(dst, m) for _t, dst, m in peers.messages(PingReq)]
    return ping, reqs  # type: ignore[return-value]


def test_a_missed_ack_asks_exactly_indirect_checks_alive_members_never_the_target() -> None:
    for seed in range(8):
        core, peers = core_with(4, seed=seed)
        peers.hear(Suspect("n4", 0, "n9"))  # suspects are not asked to help
        peers.silent = {"n1", "n2", "n3", "n4"}
        ping, reqs = _first_failed_probe(core, peers)
        helpers = sorted(ID_AT[dst] for dst, _ in reqs)
        expected = sorted({"n1", "n2", "n3"} - {ping.target_id})
        assert helpers == expected[:3], (seed, ping.target_id, helpers)
        assert all(req.seq == ping.seq and req.target_id == ping.target_id for _d, req in reqs)


def test_no_indirect_checks_configured_means_no_ping_reqs() -> None:
    for seed in range(6):
        core, peers = core_with(3, GossipConfig(indirect_checks=0), seed=seed)
        peers.silent = {"n1", "n2", "n3"}
        _ping, reqs = _first_failed_probe(core, peers)
        assert reqs == [], seed


def test_never_more_helpers_than_indirect_checks_in_a_bigger_cluster() -> None:
    for seed in range(6):
        core, peers = core_with(7, seed=seed)
        peers.silent = {f"n{i}" for i in range(1, 8)}
        ping, reqs = _first_failed_probe(core, peers)
        helpers = {ID_AT[dst] for dst, _ in reqs}
        assert len(reqs) == len(helpers) == CONFIG.indirect_checks, (seed, helpers)
        assert ping.target_id not in helpers


def test_a_target_that_dies_during_its_probe_is_not_checked_indirectly() -> None:
    _core, peers = core_with(3)
    peers.silent = {"n1", "n2", "n3"}
    while not peers.messages(Ping):
        peers.run_to(peers.now + 0.01)
    sent_at, _dst, ping = peers.messages(Ping)[0]
    # Heard between the last tick before the direct deadline and the first one after it.
    peers.run_to(sent_at + CONFIG.probe_timeout - 0.01)
    assert peers.messages(PingReq) == []
    peers.hear(Dead(ping.target_id, 0, "n9"))  # type: ignore[attr-defined]
    peers.run_to(sent_at + CONFIG.probe_interval + 0.05)
    assert peers.messages(PingReq) == []


def _health_after_failed_probe(members: int, nacks: int) -> int:
    core, peers = core_with(members)
    peers.silent = {f"n{i}" for i in range(1, members + 1)}
    ping, reqs = _first_failed_probe(core, peers)
    for dst, _req in reqs[:nacks]:
        core.receive(Nack(ping.seq, dst), peers.now)
    assert core.local_health == 0
    while not any(e.kind == "suspect" for e in core.drain_events()):
        peers.run_to(peers.now + 0.01)
    return core.local_health


def test_a_failed_probe_raises_local_health_by_the_nacks_that_never_came() -> None:
    """Lifeguard LHA-Probe: three helpers asked, one nack back: two missing, +2. All three back:
    our side is fine, +0. No helper to ask: +1."""
    assert _health_after_failed_probe(4, nacks=1) == 2
    assert _health_after_failed_probe(4, nacks=3) == 0
    assert _health_after_failed_probe(1, nacks=0) == 1


def test_local_health_stretches_the_probe_interval_and_an_ack_lowers_it_by_one() -> None:
    core, peers = core_with(2)
    peers.hear(Suspect("n0", 0, "n1"))
    peers.hear(Suspect("n0", 1, "n1"))
    assert core.local_health == 2
    while not peers.messages(Ping):
        peers.run_to(peers.now + 0.01)
    assert core.local_health == 1  # the first probe was acked: one step better
    while len(peers.messages(Ping)) < 2:
        peers.run_to(peers.now + 0.01)
    (first, _d1, _p1), (second, _d2, _p2) = peers.messages(Ping)[:2]
    assert second - first >= 3 * CONFIG.probe_interval - 0.02  # scaled by health + 1 = 3 at its start


def test_gossip_reaches_suspects_but_push_pull_only_alive_members() -> None:
    """memberlist gossips to members not dead (a suspect must hear of its suspicion to refute),
    and exchanges full state with alive ones only."""
    config = GossipConfig(suspicion_mult=20, push_pull_interval=1.0, reconnect_interval=1000.0)
    core, peers = core_with(2, config)
    peers.run_to(1.0)
    peers.hear(Suspect("n1", 0, "n2"))
    peers.run_to(1.5)
    assert any(ID_AT[dst] == "n1" for _t, dst, _m in peers.messages(Gossip, since=1.0))
    peers.run_to(16.0)
    assert status(core, "n1") == "suspect"
    push_pulls = [ID_AT[dst] for _t, dst, _m in peers.messages(PushPull, since=1.0)]
    assert push_pulls and set(push_pulls) == {"n2"}, push_pulls


def test_a_probe_of_a_suspect_stays_within_the_packet_budget() -> None:
    """The buddy suspicion rides on the ping besides the piggybacked updates, within the budget
    (room for exactly three 265-byte updates, with the queue kept full)."""
    padded = {i: meta(i, tags={"pad": "x" * 40}) for i in range(2, 7)}
    size = encoded_size(Alive("n2", 1, padded[2]))
    config = GossipConfig(packet_budget=3 * size + 10)
    _core, peers = core_with(6, config)
    peers.hear(Suspect("n1", 0, "n9"))
    incarnation = 0
    while "n1" not in peers.pinged(since=0.0):
        assert peers.now < 20.0, "n1 never probed"
        incarnation += 1
        peers.hear(*[Alive(f"n{i}", incarnation, padded[i]) for i in range(2, 7)])
        peers.run_to(peers.now + 0.1)
    to_suspect = [m for _t, _d, m in peers.messages(Ping) if m.target_id == "n1"]  # type: ignore[attr-defined]
    for ping in to_suspect:
        assert sum(encoded_size(u) for u in ping.updates) <= config.packet_budget  # type: ignore[attr-defined]


# ----- strangers, piggybacked updates on every message, joins ----------------------------------


def test_a_ping_from_a_stranger_gets_one_state_exchange_per_probe_interval() -> None:
    core = SwimCore(meta(0), CONFIG, random.Random(0), 0.0)
    stranger = ADDRESS_OF["n5"]
    core.receive(Ping(1, stranger, "n0"), 0.0)
    assert [type(m) for _d, m in core.drain_outbox()] == [Ack, PushPull]
    core.receive(Ping(2, stranger, "n0"), 0.5)
    assert [type(m) for _d, m in core.drain_outbox()] == [Ack]
    core.receive(Ping(3, stranger, "n0"), 1.0)
    assert [type(m) for _d, m in core.drain_outbox()] == [Ack, PushPull]


def test_a_ping_from_a_member_held_alive_gets_only_an_ack() -> None:
    core, _peers = core_with(1)
    core.receive(Ping(1, ADDRESS_OF["n1"], "n0"), 0.0)
    assert [type(m) for _d, m in core.drain_outbox()] == [Ack]


def test_updates_ride_on_acks_and_ping_reqs_too() -> None:
    core, _peers = core_with(1)
    core.receive(Ack(12345, ADDRESS_OF["n1"], [Alive("n2", 0, meta(2))]), 0.1)
    core.receive(PingReq(9, ADDRESS_OF["n1"], "n2", ADDRESS_OF["n2"], True, [Alive("n3", 0, meta(3))]), 0.1)
    assert status(core, "n2") == "alive" and status(core, "n3") == "alive"


def test_a_join_request_from_someone_else_does_not_end_our_own_join() -> None:
    core = SwimCore(meta(0), CONFIG, random.Random(0), 0.0)
    seed = ADDRESS_OF["n1"]
    core.join([seed], 0.0)
    core.drain_outbox()
    core.receive(PushPull(ADDRESS_OF["n2"], "n2", [MemberState("n2", 0, "alive", meta(2))], join=True), 0.1)  # type: ignore[arg-type]
    core.drain_outbox()
    retried = False
    t = 0.1
    while t < 3.0 and not retried:
        t = round(t + 0.05, 6)
        core.tick(t)
        retried = any(dst == seed and isinstance(m, PushPull) and m.join for dst, m in core.drain_outbox())
    assert retried


def test_a_push_pull_reply_that_holds_us_suspect_is_answered_with_our_refutation() -> None:
    """The replying peer may be the only bridge to its side of a partition: it hears at once."""
    core = SwimCore(meta(0), CONFIG, random.Random(0), 0.0)
    seed = ADDRESS_OF["n1"]
    core.join([seed], 0.0)
    core.drain_outbox()
    states = [MemberState("n1", 0, "alive", meta(1)), MemberState("n0", 0, "suspect", meta(0))]  # type: ignore[arg-type]
    core.receive(PushPull(seed, "n1", states, join=True, reply=True), 0.1)
    assert core.incarnation == 1
    sent = [(dst, m) for dst, m in core.drain_outbox() if isinstance(m, Gossip)]
    assert sent == [(seed, Gossip(meta(0).gossip_address, [Alive("n0", 1, meta(0))]))]
    states = [MemberState("n1", 0, "alive", meta(1)), MemberState("n0", 1, "alive", meta(0))]  # type: ignore[arg-type]
    core.receive(PushPull(seed, "n1", states, reply=True), 0.2)
    assert not [m for _d, m in core.drain_outbox() if isinstance(m, Gossip)]


def test_each_foreign_sender_is_reported_once_up_to_the_cap() -> None:
    from orion.gossip.core import MAX_FOREIGN_REPORTS

    core = SwimCore(meta(0, cluster_id="c1"), CONFIG, random.Random(0), 0.0)
    for i in range(MAX_FOREIGN_REPORTS + 1):
        core.receive(Ping(i, f"10.0.{i // 250}.{i % 250}:7000", "n0", cluster="c2"), 0.0)
    assert len(core.drain_foreign()) == MAX_FOREIGN_REPORTS
    assert core.foreign_dropped == MAX_FOREIGN_REPORTS + 1


def test_a_left_node_wakes_up_while_its_leave_is_still_being_announced() -> None:
    core, peers = core_with(2)
    peers.run_to(5.0)
    core.leave(5.0)
    peers.deliver()
    assert core.next_deadline() is not None
    while core.next_deadline() is not None:
        assert peers.now < 30.0, "the leave announcement never ran out"
        peers.run_to(peers.now + 0.05)
    assert core.pending_broadcasts == 0
