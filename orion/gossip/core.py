"""The sans-I/O SWIM core with Lifeguard: no sockets, threads or clock inside.

Time comes in as ``now`` (seconds, any monotonic origin), messages come in through ``receive``,
and what must happen comes out of ``drain_outbox`` (messages to send) and ``drain_events``
(membership changes). Timeouts are deadlines stored as data and fired by ``tick``; a deadline
that belongs to an older probe or incarnation is simply ignored.

Incarnation across restarts: a fresh core starts at incarnation 0 and relies on refutation. Any
update about itself that it did not make (alive with a higher incarnation or other meta from a
previous life, suspect or dead at its own incarnation or above) makes it jump to one above what it
heard and broadcast that. A restarted member always hears its old record in the push-pull reply
to its join, so it overtakes its old incarnation within one round trip, whether the cluster still
thinks it alive, suspect or dead. No wall clock is needed, and a clock stepping back is harmless.
A restarted member that joins through nobody (a wiped bootstrap node with an empty join list) is
found by the others instead: a ping from a member it does not hold alive makes it push-pull that
member (at most once per probe interval), and suspects and dead members are reached by buddy
probes and reconnects. Meta versions only break ties within one incarnation, so a restarted
member's meta, whose version counter started again, wins through the incarnation it refutes with.

Cluster identity: every message carries the sender's cluster id (the one in its own meta, "" until
it has received the Raft configuration or joined a member that has one). A node with a cluster id
drops messages, and alive records, from another non-empty cluster id and reports each sender once
through ``drain_foreign``; "" on either side is accepted, so a new node can join and a joining node
is heard by everyone.

Joining without a cluster id: the node asks before it announces itself. Its join push-pull carries
no state of its own; the first seed that answers names its cluster (the answer's ``cluster``), the
node takes that id into its meta, merges the answer and only then announces itself (an alive to
that seed, and in its piggyback queue). The cluster learns one alive from it, with the id it will
keep, instead of one without the id and another when Raft names the cluster: every alive is
re-gossiped by every member (``4 x ceil(log10(N + 1))`` times each), so the second one cost a
join of N nodes another ~16 N^2 update sends at 1,000. The id it takes is the cluster it joined,
the one whose leader adds it; Raft's id replaces it through ``set_identity`` if they ever differ.
A node whose seed has no id yet (a cluster bootstrapping) announces itself as before, with "".
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from orion.gossip.awareness import Awareness
from orion.gossip.broadcasts import BroadcastQueue
from orion.gossip.config import GossipConfig
from orion.gossip.events import EventKind, ForeignGossip, MemberEvent, MemberView
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
    shared_alives,
)
from orion.gossip.suspicion import Suspicion
from orion.gossip.timing import push_pull_scale, retransmit_limit, suspicion_timeout
from orion.model import NodeMeta, NodeStatus

ALIVE = NodeStatus.ALIVE
SUSPECT = NodeStatus.SUSPECT
DEAD = NodeStatus.DEAD
LEFT = NodeStatus.LEFT
_LIVE = (ALIVE, SUSPECT)
MAX_FOREIGN_REPORTS = 1024  # distinct foreign senders reported; past it drops are only counted


class _Member:
    __slots__ = ("address", "changed_at", "id", "incarnation", "meta", "status")

    def __init__(self, meta: NodeMeta, incarnation: int, now: float) -> None:
        self.id = meta.id
        # One copy of each address however many cores of a process hold the member (a hollow
        # pool holds N members in each of its N cores).
        self.address = sys.intern(meta.gossip_address)
        self.meta = meta
        self.incarnation = incarnation
        self.status: NodeStatus = ALIVE
        self.changed_at = now


class _Probe:
    """The one probe in flight: direct ping, then indirect ping-reqs, then failure at ``end``."""

    __slots__ = ("direct_deadline", "end", "expected_nacks", "indirect_sent", "nacks", "seq", "target_id")

    def __init__(self, seq: int, target_id: str, direct_deadline: float, end: float) -> None:
        self.seq = seq
        self.target_id = target_id
        self.direct_deadline = direct_deadline
        self.end = end
        self.indirect_sent = False
        self.expected_nacks = 0
        self.nacks = 0


class _Relay:
    """A ping we sent on behalf of a ping-req: forward the ack, or nack at ``deadline``."""

    __slots__ = ("deadline", "requester", "requester_seq", "want_nack")

    def __init__(self, requester: str, requester_seq: int, deadline: float, want_nack: bool) -> None:
        self.requester = requester
        self.requester_seq = requester_seq
        self.deadline = deadline
        self.want_nack = want_nack


class SwimCore:
    def __init__(self, meta: NodeMeta, config: GossipConfig, rng: random.Random, now: float) -> None:
        self._config = config
        self._rng = rng
        self._meta = meta
        self._id = meta.id
        self._address = meta.gossip_address
        self._cluster_id = meta.cluster_id
        self._incarnation = 0
        self._left = False

        self._members: dict[str, _Member] = {}
        self._by_address: dict[str, str] = {}  # gossip address -> id of the member last seen there
        # Members alive or suspect, in a list for O(1) random picks and a position map for O(1) removal.
        self._live: list[str] = []
        self._live_pos: dict[str, int] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._earliest_suspicion: float | None = None  # cache for next_deadline; None = recompute
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._broadcasts = BroadcastQueue()
        self._limit_size = 0  # the cluster size _limit (the retransmit limit) was computed for
        self._limit = 0
        self._outbox: list[tuple[str, GossipMessage]] = []
        self._events: list[MemberEvent] = []
        self._foreign: list[ForeignGossip] = []
        self._foreign_reported: set[tuple[str, str, str]] = set()
        self._foreign_dropped = 0

        self._seq = rng.getrandbits(32)
        self._probe: _Probe | None = None
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._relays: dict[int, _Relay] = {}
        # Jitter the first timers so members started together do not probe in lockstep.
        self._next_probe = now + rng.uniform(0, config.probe_interval)
        self._next_gossip = now + rng.uniform(0, config.gossip_interval)
        self._next_push_pull = now + rng.uniform(0.5, 1.0) * config.push_pull_interval
        self._next_reconnect = now + rng.uniform(0.5, 1.0) * config.reconnect_interval
        self._join_seeds: list[str] = []
        self._next_join_retry: float | None = None
        self._unannounced = False  # joined without a cluster id: the first seed's answer names it
        self._join_backoff = config.join_retry_interval
        self._next_stranger_sync = now

        self._handlers: dict[type, Callable[[Any, float], None]] = {
            Ping: self._on_ping,
            Ack: self._on_ack,
            Nack: self._on_nack,
            PingReq: self._on_ping_req,
            Gossip: self._on_gossip,
            PushPull: self._on_push_pull,
        }
        self._broadcasts.queue(Alive(self._id, 0, meta))

    # ----- public API -------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._id

    @property
    def address(self) -> str:
        return self._address

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def meta(self) -> NodeMeta:
        return self._meta

    @property
    def cluster_id(self) -> str:
        """The cluster this node belongs to ("" = not known yet: gossip from any cluster is accepted)."""
        return self._cluster_id

    @property
    def foreign_dropped(self) -> int:
        """Messages dropped because they came from another cluster."""
        return self._foreign_dropped

    @property
    def local_health(self) -> int:
        """Lifeguard's local health score: 0 healthy .. awareness_max_multiplier - 1."""
        return self._awareness.score

    @property
    def pending_broadcasts(self) -> int:
        """Updates still waiting to be piggybacked (0 once the cluster is quiet)."""
        return len(self._broadcasts)

    @property
    def left(self) -> bool:
        return self._left

    def join(self, seeds: list[str], now: float) -> None:
        """Ask seeds for a full state exchange; resent (with backoff) until one answers."""
        self._join_seeds = [seed for seed in seeds if seed != self._address]
        if not self._join_seeds:
            self._next_join_retry = None
            return
        self._join_backoff = self._config.join_retry_interval
        self._send_joins(now)

    def leave(self, now: float) -> None:
        """Announce a graceful leave (datagrams in the outbox at once); then only gossip it."""
        if self._left:
            return
        self._left = True
        self._probe = None
        self._relays.clear()
        self._suspicions.clear()
        self._earliest_suspicion = None
        self._next_join_retry = None
        self._broadcasts.queue(Dead(self._id, self._incarnation, self._id, left=True))
        # Send the first round now: a shell may stop ticking right after leave(). Ticking on until
        # next_deadline() is None retransmits it a few more times.
        self._next_gossip = now
        self._gossip_tick(now)

    def update_meta(self, meta: NodeMeta, now: float) -> None:
        """Adopt new meta (same id), bumping its version and our incarnation so it wins everywhere."""
        if meta.id != self._id:
            raise ValueError(f"meta is for {meta.id!r}, this core is {self._id!r}")
        if msgspec.structs.replace(meta, version=self._meta.version) == self._meta:
            return
        version = max(meta.version, self._meta.version + 1)
        self._meta = msgspec.structs.replace(meta, version=version)
        self._address = self._meta.gossip_address
        self._cluster_id = self._meta.cluster_id
        self._incarnation += 1
        self._broadcasts.queue(Alive(self._id, self._incarnation, self._meta))

    def set_identity(self, cluster_id: str, raft_incarnation: str, now: float) -> None:
        """Adopt the cluster id learnt from Raft (and this data dir's incarnation) into our meta.

        From then on gossip from other clusters is dropped, and the new meta spreads as any update.
        """
        self.update_meta(
            msgspec.structs.replace(self._meta, cluster_id=cluster_id, raft_incarnation=raft_incarnation),
            now,
        )

    def hold_gossip(self, until: float) -> None:
        """No gossip round before ``until`` (probes, their piggyback, push-pulls and every timeout
        go on as before). Only a hollow pool calls it, for its nodes while it holds gossip frames
        it could not handle yet (orion/hollow/pool.py): the rig's lack of CPU then slows the
        epidemic instead of delaying probes. A real node never calls it."""
        if self._next_gossip < until:
            self._next_gossip = until

    def tick(self, now: float) -> None:
        if self._left:
            self._gossip_tick(now)
            return
        if self._next_join_retry is not None and now >= self._next_join_retry:
            self._join_backoff = min(self._join_backoff * 2, 8 * self._config.join_retry_interval)
            self._send_joins(now)
        earliest = self._earliest_suspicion
        if self._suspicions and (earliest is None or now >= earliest):
            for node_id, suspicion in list(self._suspicions.items()):
                if now >= suspicion.deadline:
                    self._suspicion_expired(node_id, suspicion, now)
        if self._relays:
            self._relay_tick(now)
        if self._probe is not None:
            self._probe_tick(now)
        if self._probe is None and now >= self._next_probe:
            self._start_probe(now)
        self._gossip_tick(now)
        if now >= self._next_push_pull:
            self._push_pull_tick(now)
        if now >= self._next_reconnect:
            self._reconnect_tick(now)

    def receive(self, msg: GossipMessage, now: float) -> None:
        if self._left:
            return
        if msg.cluster != self._cluster_id and msg.cluster and self._cluster_id:
            self._drop_foreign(msg.sender, msg.cluster)
            return
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(msg, now)

    def drain_outbox(self) -> list[tuple[str, GossipMessage]]:
        out, self._outbox = self._outbox, []
        return out

    def drain_events(self) -> list[MemberEvent]:
        events, self._events = self._events, []
        return events

    def drain_foreign(self) -> list[ForeignGossip]:
        """Senders from another cluster seen since the last call (each reported once, for a log line)."""
        foreign, self._foreign = self._foreign, []
        return foreign

    def members(self) -> list[MemberView]:
        own_status = LEFT if self._left else ALIVE
        views = [MemberView(self._id, self._address, own_status, self._incarnation, self._meta)]
        views.extend(
            MemberView(m.id, m.address, m.status, m.incarnation, m.meta) for m in self._members.values()
        )
        return views

    def next_deadline(self) -> float | None:
        """The earliest time at which ``tick`` has work (None: nothing until a message arrives)."""
        gossip_due = bool(self._broadcasts) and (bool(self._live) or self._left)
        if self._left:
            return self._next_gossip if gossip_due else None
        probe = self._probe
        if probe is None:
            at = self._next_probe
        else:
            at = probe.end if probe.indirect_sent else probe.direct_deadline
        if gossip_due and self._next_gossip < at:
            at = self._next_gossip
        if self._live and self._next_push_pull < at:
            at = self._next_push_pull
        if len(self._members) > len(self._live) and self._next_reconnect < at:
            at = self._next_reconnect
        if self._next_join_retry is not None and self._next_join_retry < at:
            at = self._next_join_retry
        if self._suspicions:
            earliest = self._earliest_suspicion
            if earliest is None:
                earliest = self._earliest_suspicion = min(s.deadline for s in self._suspicions.values())
            if earliest < at:
                at = earliest
        if self._relays:
            at = min(at, min(r.deadline for r in self._relays.values()))
        return at

    # ----- sending ----------------------------------------------------------------------------

    def _send(self, address: str, msg: GossipMessage) -> None:
        self._outbox.append((address, msg))

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFF_FFFF_FFFF_FFFF
        return self._seq

    def _cluster_size(self) -> int:
        return len(self._live) + 1

    def _piggyback(self, budget: int | None = None) -> list[Update]:
        if not self._broadcasts:
            return []
        size = len(self._live) + 1
        if size != self._limit_size:
            self._limit_size = size
            self._limit = retransmit_limit(self._config.retransmit_mult, size)
        limit = self._limit
        return self._broadcasts.take(self._config.packet_budget if budget is None else budget, limit)

    def _broadcast(self, update: Update) -> None:
        self._broadcasts.queue(update)

    def _states(self) -> list[MemberState]:
        states = [MemberState(self._id, self._incarnation, LEFT if self._left else ALIVE, self._meta)]
        states.extend(MemberState(m.id, m.incarnation, m.status, m.meta) for m in self._members.values())
        return states

    def _send_joins(self, now: float) -> None:
        # Without a cluster id, ask first: the seed's answer names the cluster (module doc).
        self._unannounced = not self._cluster_id
        msg = self._push_pull(join=True, own=not self._unannounced)
        for seed in self._join_seeds:
            self._send(seed, msg)
        self._next_join_retry = now + self._join_backoff

    # ----- probing ----------------------------------------------------------------------------

    def _scaled(self, timeout: float) -> float:
        return self._awareness.scale(timeout) if self._config.lifeguard_probe else timeout

    def _next_probe_target(self, now: float) -> _Member | None:
        for _ in range(2):
            while self._probe_index < len(self._probe_order):
                member = self._members.get(self._probe_order[self._probe_index])
                self._probe_index += 1
                if member is not None and member.status in _LIVE:
                    return member
            self._reap(now)
            self._probe_order = list(self._live)
            self._rng.shuffle(self._probe_order)
            self._probe_index = 0
            if not self._probe_order:
                return None
        return None

    def _start_probe(self, now: float) -> None:
        interval = self._scaled(self._config.probe_interval)
        self._next_probe = now + interval
        target = self._next_probe_target(now)
        if target is None:
            return
        seq = self._next_seq()
        updates: list[Update]
        if self._config.lifeguard_buddy and target.status == SUSPECT:
            # Buddy system: tell a suspect it is suspected, so it can refute at once.
            buddy = Suspect(target.id, target.incarnation, self._id)
            updates = [buddy, *self._piggyback(self._config.packet_budget - 64)]
        else:
            updates = self._piggyback()
        self._send(target.address, Ping(seq, self._address, target.id, updates, cluster=self._cluster_id))
        self._probe = _Probe(seq, target.id, now + self._scaled(self._config.probe_timeout), now + interval)

    def _probe_tick(self, now: float) -> None:
        probe = self._probe
        assert probe is not None
        target = self._members.get(probe.target_id)
        if target is None or target.status not in _LIVE:
            self._probe = None
            return
        if not probe.indirect_sent and now >= probe.direct_deadline:
            probe.indirect_sent = True
            helpers = self._pick_live(self._config.indirect_checks, exclude=target.id, alive_only=True)
            want_nack = self._config.lifeguard_probe
            for helper in helpers:
                updates = self._piggyback()
                req = PingReq(
                    probe.seq,
                    self._address,
                    target.id,
                    target.address,
                    want_nack,
                    updates,
                    cluster=self._cluster_id,
                )
                self._send(helper.address, req)
            probe.expected_nacks = len(helpers) if want_nack else 0
        if now >= probe.end:
            self._probe = None
            if self._config.lifeguard_probe:
                # Missing nacks mean our helpers could not reach us in time either: we may be the slow one.
                if probe.expected_nacks > 0:
                    self._awareness.apply_delta(max(0, probe.expected_nacks - probe.nacks))
                else:
                    self._awareness.apply_delta(1)
            self._on_suspect(Suspect(target.id, target.incarnation, self._id), now)

    def _relay_tick(self, now: float) -> None:
        for seq, relay in list(self._relays.items()):
            if now >= relay.deadline:
                del self._relays[seq]
                if relay.want_nack:
                    self._send(relay.requester, Nack(relay.requester_seq, self._address, self._cluster_id))

    def _pick_live(self, k: int, exclude: str, alive_only: bool = False) -> list[_Member]:
        live = self._live
        if not live or k <= 0:
            return []
        picked = self._rng.sample(live, min(len(live), k + 1))
        chosen: list[_Member] = []
        for node_id in picked:
            member = self._members[node_id]
            if node_id == exclude or (alive_only and member.status != ALIVE):
                continue
            chosen.append(member)
            if len(chosen) == k:
                break
        return chosen

    # ----- gossip and anti-entropy --------------------------------------------------------------

    def _gossip_tick(self, now: float) -> None:
        if now < self._next_gossip:
            return
        self._next_gossip = now + self._config.gossip_interval
        if not self._broadcasts:
            return
        for member in self._pick_live(self._config.gossip_nodes, exclude=self._id):
            updates = self._piggyback()
            if not updates:
                break
            self._send(member.address, Gossip(self._address, updates, self._cluster_id))

    def _push_pull_tick(self, now: float) -> None:
        self._next_push_pull = now + push_pull_scale(self._config.push_pull_interval, self._cluster_size())
        peers = self._pick_live(1, exclude=self._id, alive_only=True)
        if peers:
            self._send(peers[0].address, self._push_pull())

    def _reconnect_tick(self, now: float) -> None:
        """Push-pull with one random dead member (serf's reconnect), so partitions heal.

        Probes and gossip only go to members we think alive; without this, two sides of a healed
        partition that declared each other dead would never speak again.
        """
        self._next_reconnect = now + self._config.reconnect_interval
        dead = [m for m in self._members.values() if m.status == DEAD]
        if dead:
            peer = self._rng.choice(dead)
            self._send(peer.address, self._push_pull())

    def _push_pull(self, *, join: bool = False, reply: bool = False, own: bool = True) -> PushPull:
        states = self._states() if own else self._states()[1:]
        return PushPull(self._address, self._id, states, join, reply, self._cluster_id)

    # ----- message handlers -------------------------------------------------------------------

    def _apply_updates(self, updates: list[Update], now: float) -> None:
        members = self._members
        for update in updates:
            if type(update) is Alive:
                # _on_alive's echo test, inline: N - 1 of every N alives a member hears are
                # echoes (16 N^2 in a join of N), not worth a call each.
                member = members.get(update.node_id)
                if member is not None and (
                    update.incarnation < member.incarnation
                    or (
                        update.incarnation == member.incarnation
                        and not (member.status is ALIVE and update.meta.version > member.meta.version)
                    )
                ):
                    continue
                self._on_alive(update, now)
            elif type(update) is Suspect:
                self._on_suspect(update, now)
            else:
                self._on_dead(update, now)  # type: ignore[arg-type]

    def _on_ping(self, msg: Ping, now: float) -> None:
        if msg.updates:
            self._apply_updates(msg.updates, now)
        if msg.target_id != self._id:
            return  # meant for a member that used to live at our address
        self._send(msg.sender, Ack(msg.seq, self._address, self._piggyback(), self._cluster_id))
        if now >= self._next_stranger_sync and not self._holds_alive(msg.sender):
            # It knows us, we do not hold it alive: we restarted with an empty view (and joined
            # through nobody), or it came back from dead. A push-pull shows it our old record, so
            # we refute it at once, and gives us its view.
            self._next_stranger_sync = now + self._config.probe_interval
            self._send(msg.sender, self._push_pull())

    def _on_ack(self, msg: Ack, now: float) -> None:
        if msg.updates:
            self._apply_updates(msg.updates, now)
        probe = self._probe
        if probe is not None and probe.seq == msg.seq:
            self._probe = None
            if self._config.lifeguard_probe:
                self._awareness.apply_delta(-1)
            return
        relay = self._relays.pop(msg.seq, None)
        if relay is not None:
            ack = Ack(relay.requester_seq, self._address, self._piggyback(), self._cluster_id)
            self._send(relay.requester, ack)

    def _on_nack(self, msg: Nack, now: float) -> None:
        probe = self._probe
        if probe is not None and probe.seq == msg.seq:
            probe.nacks += 1

    def _on_ping_req(self, msg: PingReq, now: float) -> None:
        if msg.updates:
            self._apply_updates(msg.updates, now)
        seq = self._next_seq()
        ping = Ping(seq, self._address, msg.target_id, self._piggyback(), self._cluster_id)
        self._send(msg.target_address, ping)
        # memberlist answers with a nack after one (unscaled) probe timeout without an ack.
        deadline = now + self._config.probe_timeout
        self._relays[seq] = _Relay(msg.sender, msg.seq, deadline, msg.want_nack)

    def _on_gossip(self, msg: Gossip, now: float) -> None:
        self._apply_updates(msg.updates, now)

    def _on_push_pull(self, msg: PushPull, now: float) -> None:
        announce = False
        if msg.reply and msg.join:
            self._next_join_retry = None  # a seed answered: we are in
            if self._unannounced:
                self._unannounced, announce = False, True
                if msg.cluster and not self._cluster_id:
                    # The cluster we joined: announced with it, our alive goes round once.
                    self.update_meta(msgspec.structs.replace(self._meta, cluster_id=msg.cluster), now)
        incarnation = self._incarnation
        self._merge_states(msg, now)
        if not msg.reply:
            # Merge first, so the answer already carries any refutation the merge caused.
            self._send(msg.sender, self._push_pull(join=msg.join, reply=True))
        elif announce or self._incarnation != incarnation:
            # Our announcement after a join that asked first (the rest hear it from the seed and
            # our piggyback); or the peer holds us dead or suspect (after a partition or a
            # restart): it may be the only bridge to its side, and our gossip goes to members we
            # think alive. Either way, tell it now.
            alive = Alive(self._id, self._incarnation, self._meta)
            self._send(msg.sender, Gossip(self._address, [alive], self._cluster_id))

    def _merge_states(self, msg: PushPull, now: float) -> None:
        for state in msg.states:
            status = state.status
            if status == ALIVE:
                self._on_alive(shared_alives(state), now)  # in a pool, one alive per shared state
            elif status == LEFT:
                self._on_dead(Dead(state.node_id, state.incarnation, state.node_id, left=True), now)
            else:
                # Like memberlist: a remote "dead" only makes us suspect, so our own timer (and the
                # member's chance to refute) decides; one stale peer cannot kill a member here.
                self._on_suspect(Suspect(state.node_id, state.incarnation, msg.sender_id), now)

    # ----- cluster identity ---------------------------------------------------------------------

    def _foreign_cluster(self, cluster_id: str) -> bool:
        return cluster_id != self._cluster_id and bool(cluster_id) and bool(self._cluster_id)

    def _drop_foreign(self, sender: str, cluster_id: str) -> None:
        self._foreign_dropped += 1
        key = (sender, cluster_id, self._cluster_id)
        if key in self._foreign_reported or len(self._foreign_reported) >= MAX_FOREIGN_REPORTS:
            return
        self._foreign_reported.add(key)
        self._foreign.append(ForeignGossip(sender, cluster_id, self._cluster_id))

    def _holds_alive(self, address: str) -> bool:
        member = self._members.get(self._by_address.get(address, ""))
        return member is not None and member.status in _LIVE and member.address == address

    # ----- state transitions ------------------------------------------------------------------

    def _refute(self, heard_incarnation: int) -> None:
        self._incarnation = max(self._incarnation, heard_incarnation) + 1
        if self._config.lifeguard_probe:
            self._awareness.apply_delta(1)  # being suspected hints that we are the slow one
        self._broadcast(Alive(self._id, self._incarnation, self._meta))

    def _emit(self, kind: EventKind, member: _Member) -> None:
        self._events.append(MemberEvent(kind, member.id, member.address, member.meta, member.incarnation))

    def _set_live(self, member: _Member, live: bool) -> None:
        pos = self._live_pos.get(member.id)
        if live and pos is None:
            self._live_pos[member.id] = len(self._live)
            self._live.append(member.id)
        elif not live and pos is not None:
            last = self._live.pop()
            del self._live_pos[member.id]
            if last != member.id:
                self._live[pos] = last
                self._live_pos[last] = pos

    def _on_alive(self, msg: Alive, now: float) -> None:
        node_id = msg.node_id
        member = self._members.get(node_id)
        if member is not None:
            # The common case first, before any other check: an echo of something we already
            # know (N-1 of every N copies of an update that reach a member) changes nothing.
            incarnation = member.incarnation
            if msg.incarnation < incarnation or (
                msg.incarnation == incarnation
                and not (member.status == ALIVE and msg.meta.version > member.meta.version)
            ):
                return
        if self._foreign_cluster(msg.meta.cluster_id):
            return  # a member of another cluster, relayed by a node that has no cluster id yet
        if node_id == self._id:
            if msg.incarnation > self._incarnation or (
                msg.incarnation == self._incarnation and msg.meta != self._meta
            ):
                self._refute(msg.incarnation)  # an echo of a previous life of ours
            return
        if member is None:
            member = _Member(msg.meta, msg.incarnation, now)
            self._members[node_id] = member
            self._by_address[member.address] = node_id
            self._set_live(member, True)
            # Probe newcomers this round: insert at a random place in what is left of it.
            position = self._rng.randint(self._probe_index, len(self._probe_order))
            self._probe_order.insert(position, node_id)
            self._broadcast(msg)
            self._emit("joined", member)
            return
        previous = member.status
        meta_changed = msg.meta != member.meta
        member.incarnation = msg.incarnation
        old_meta, member.meta = member.meta, msg.meta
        # The address is formatted only when its parts changed (a refutation or a new cluster id
        # reaches every member: N^2 times in a join).
        moved = msg.meta.address != old_meta.address or msg.meta.gossip_port != old_meta.gossip_port
        if moved and member.address != msg.meta.gossip_address:
            if self._by_address.get(member.address) == node_id:
                del self._by_address[member.address]
            member.address = sys.intern(msg.meta.gossip_address)
        self._by_address[member.address] = node_id
        member.status = ALIVE
        if self._suspicions.pop(node_id, None) is not None:
            self._earliest_suspicion = None
        self._broadcast(msg)
        if previous in (DEAD, LEFT):
            member.changed_at = now
            self._set_live(member, True)
            self._emit("joined", member)
        elif previous == SUSPECT:
            member.changed_at = now
            self._emit("alive", member)
            if meta_changed:
                self._emit("updated", member)
        elif meta_changed:
            self._emit("updated", member)

    def _on_suspect(self, msg: Suspect, now: float) -> None:
        node_id = msg.node_id
        if node_id == self._id:
            if msg.incarnation >= self._incarnation:
                self._refute(msg.incarnation)
            return
        member = self._members.get(node_id)
        if member is None or msg.incarnation < member.incarnation or member.status not in _LIVE:
            return
        if member.status == SUSPECT:
            # Like memberlist, a suspect at a newer incarnation only confirms the open suspicion:
            # the timer keeps the incarnation it was started for.
            suspicion = self._suspicions.get(node_id)
            if suspicion is not None and self._config.lifeguard_suspicion and suspicion.confirm(msg.accuser):
                self._earliest_suspicion = None
                self._broadcast(msg)  # spread the independent confirmation
            return
        member.status = SUSPECT
        member.incarnation = msg.incarnation
        member.changed_at = now
        self._suspicions[node_id] = self._new_suspicion(msg.accuser, msg.incarnation, now)
        self._earliest_suspicion = None
        self._broadcast(msg)
        self._emit("suspect", member)

    def _new_suspicion(self, accuser: str, incarnation: int, now: float) -> Suspicion:
        config = self._config
        n = self._cluster_size()
        k = config.suspicion_mult - 2 if config.lifeguard_suspicion else 0
        if n - 2 < k:
            k = 0  # too few members to ever collect k confirmations
        min_timeout = suspicion_timeout(config.suspicion_mult, n, config.probe_interval)
        max_timeout = config.suspicion_max_timeout_mult * min_timeout
        return Suspicion(accuser, incarnation, k, min_timeout, max_timeout, now)

    def _suspicion_expired(self, node_id: str, suspicion: Suspicion, now: float) -> None:
        del self._suspicions[node_id]
        self._earliest_suspicion = None
        member = self._members.get(node_id)
        if member is None or member.status != SUSPECT or member.incarnation != suspicion.incarnation:
            return  # refuted or superseded meanwhile
        self._on_dead(Dead(node_id, member.incarnation, self._id), now)

    def _on_dead(self, msg: Dead, now: float) -> None:
        node_id = msg.node_id
        if node_id == self._id:
            if msg.incarnation >= self._incarnation:
                self._refute(msg.incarnation)
            return
        member = self._members.get(node_id)
        if member is None or msg.incarnation < member.incarnation or member.status not in _LIVE:
            return
        left = msg.left and msg.accuser == node_id
        member.status = LEFT if left else DEAD
        member.incarnation = msg.incarnation
        member.changed_at = now
        if self._suspicions.pop(node_id, None) is not None:
            self._earliest_suspicion = None
        self._set_live(member, False)
        self._broadcast(msg)
        self._emit("left" if left else "dead", member)

    def _reap(self, now: float) -> None:
        """Forget members dead or left for longer than dead_reap_time (once per probe round)."""
        horizon = now - self._config.dead_reap_time
        stale = [m.id for m in self._members.values() if m.status not in _LIVE and m.changed_at <= horizon]
        for node_id in stale:
            member = self._members.pop(node_id)
            if self._by_address.get(member.address) == node_id:
                del self._by_address[member.address]
