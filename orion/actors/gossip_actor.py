"""The Nerves' shell: owns the SWIM/Lifeguard core and its datagram-like transport.

Every input (a tick, a frame) is fed to the core with the current monotonic time; what the
core wants sent goes out through the gossip transport (dropped, never queued, when a peer is
unreachable), and membership events go to the Raft actor, which acts on them as leader.
The node's identity rides in its meta: ``raft_incarnation`` (its data dir's) from the start, and
the cluster id once Raft sends ``ClusterIdentity``; from then on gossip of other clusters is dropped.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pykka
from loguru import logger

from orion.actors.base import NodeActor
from orion.actors.hosted_inbox import HostedInbox
from orion.actors.messages import ClusterIdentity, LocalMeta, MemberEvents, Shutdown, Tick
from orion.actors.timed_inbox import NEVER
from orion.config import NodeConfig
from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.messages import decode_message, encode_message
from orion.model import NodeMeta
from orion.transport.peer import Channel, PeerTransport

META_REFRESH_S = 10.0
LEAVE_GOSSIP_S = 1.5  # keep gossiping a leave this long at most, so peers hear "left", not "dead"
LEAVE_TICK_S = 0.05  # while leaving, the core is ticked at this beat until the leave is gossiped
LONGEST_SLEEP_S = 1.0  # a backstop: the core always has a probe due sooner while it has members


@dataclass(frozen=True, slots=True)
class _GossipFrame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Join:
    seeds: list[str]


@dataclass(frozen=True, slots=True)
class UpdateMeta:
    meta: NodeMeta


def gossip_config_from(config: NodeConfig) -> GossipConfig:
    return msgspec.structs.replace(
        GossipConfig(),
        probe_interval=config.probe_interval,
        probe_timeout=config.probe_timeout,
        suspicion_mult=config.suspicion_mult,
        lifeguard_probe=config.lifeguard_probe,
        lifeguard_suspicion=config.lifeguard_suspicion,
        lifeguard_buddy=config.lifeguard_buddy,
        packet_budget=config.gossip_packet_budget,
        gossip_interval=config.gossip_interval,
    )


class GossipActor(NodeActor):
    actor_inbox: HostedInbox

    @staticmethod
    def _create_actor_inbox() -> HostedInbox:  # type: ignore[override]
        return HostedInbox(Tick)

    def __init__(
        self,
        config: NodeConfig,
        meta: NodeMeta,
        transport: PeerTransport,
        raft: pykka.ActorRef,
        on_fatal: Callable[[str], None],
        refresh_meta: Callable[[NodeMeta], NodeMeta] | None = None,
        raft_incarnation: str = "",
    ) -> None:
        super().__init__(on_fatal)
        self.config = config
        if raft_incarnation:
            meta = msgspec.structs.replace(meta, raft_incarnation=raft_incarnation)
        self.meta = meta
        self.transport = transport
        self.raft = raft
        self.refresh_meta = refresh_meta
        self.core = SwimCore(meta, gossip_config_from(config), random.Random(), time.monotonic())
        self._left = False
        self._leave_done: Callable[[], None] | None = None
        self._leave_deadline = 0.0
        self._next_meta_refresh = time.monotonic() + META_REFRESH_S
        # Ticked at the core's next deadline rather than on a fixed beat: an idle node wakes a
        # few times a second, and a probe's timeout ends when due rather than on the next 50 ms.
        # The actor keeps that timer itself (its mailbox is a TimedInbox, as the Raft actor's):
        # a tick wakes this thread only, not the node's ticker and then this one. The ticker's
        # first Tick starts it; the ticker is then told to send no more.
        if transport.hosted:
            # Its thread runs the gossip transport while it waits (orion/actors/hosted_inbox.py):
            # a frame in or out wakes this thread only, not a transport thread as well.
            self.actor_inbox.host(transport)

    def on_start(self) -> None:
        self.raft.tell(LocalMeta(self.meta))

    def on_stop(self) -> None:
        self.actor_inbox.close()

    def frame_handler(self) -> Callable[[Channel, bytes], None]:
        ref = self.actor_ref

        def on_frame(channel: Channel, payload: bytes) -> None:
            if channel == Channel.GOSSIP:
                with contextlib.suppress(pykka.ActorDeadError):  # the node is stopping
                    ref.tell(_GossipFrame(payload))

        return on_frame

    def on_receive(self, message: Any) -> Any:
        now = time.monotonic()
        match message:
            case _GossipFrame(payload):
                try:
                    decoded = decode_message(payload)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    logger.debug("gossip: dropped a malformed frame: {}", exc)
                    return None
                self.core.receive(decoded, now)
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                    gate.tick_at(NEVER)  # this actor keeps its own timer (TimedInbox)
                self.core.tick(now)
                if self._left:
                    self._finish_leave(now)
                if self.refresh_meta is not None and now >= self._next_meta_refresh:
                    self._next_meta_refresh = now + META_REFRESH_S
                    self._update_meta(self.refresh_meta(self.meta), now)
            case Join(seeds):
                if seeds:
                    logger.info("gossip: joining through {}", ", ".join(seeds))
                    self.core.join(list(seeds), now)
            case UpdateMeta(meta):
                self._update_meta(meta, now)
            case ClusterIdentity(cluster_id, raft_incarnation):
                self._adopt_identity(cluster_id, raft_incarnation, now)
            case Shutdown(done):
                self.core.leave(now)
                self._left = True
                self._leave_done = done
                self._leave_deadline = now + LEAVE_GOSSIP_S
            case "members":
                return self.core.members()
            case "foreign_dropped":
                return self.core.foreign_dropped
            case "local_health":
                return self.core.local_health
            case _:
                logger.warning("gossip actor: unexpected message {!r}", type(message).__name__)
        self._flush()
        self._ask_next_tick(now)
        return None

    def _ask_next_tick(self, now: float) -> None:
        """Time the next tick for when the core next has work: after a message too, since an
        ack or a ping-req may move the deadline."""
        if self._left:
            at = now + LEAVE_TICK_S
        else:
            deadline = self.core.next_deadline()
            at = now + LONGEST_SLEEP_S if deadline is None else min(deadline, now + LONGEST_SLEEP_S)
            if self.refresh_meta is not None:
                at = min(at, self._next_meta_refresh)
        self.actor_inbox.tick_at(at)

    def _finish_leave(self, now: float) -> None:
        if self._leave_done is None:
            return
        if self.core.pending_broadcasts and now < self._leave_deadline:
            return
        done, self._leave_done = self._leave_done, None
        done()

    def _adopt_identity(self, cluster_id: str, raft_incarnation: str, now: float) -> None:
        # An empty value never erases a known one: Raft may not have the other one yet.
        identity = msgspec.structs.replace(
            self.meta,
            cluster_id=cluster_id or self.meta.cluster_id,
            raft_incarnation=raft_incarnation or self.meta.raft_incarnation,
        )
        if identity.cluster_id != self.meta.cluster_id:
            logger.info("gossip: cluster id {} (was {!r})", identity.cluster_id, self.meta.cluster_id)
        self._update_meta(identity, now)

    def _update_meta(self, meta: NodeMeta, now: float) -> None:
        # Whoever refreshes the meta (capacity, tags) may not know the identity: keep it (the
        # core's may be newer: taken from the seed that answered the join).
        meta = msgspec.structs.replace(
            meta,
            cluster_id=meta.cluster_id or self.core.cluster_id or self.meta.cluster_id,
            raft_incarnation=meta.raft_incarnation or self.meta.raft_incarnation,
        )
        if meta == self.meta:
            return
        self.meta = meta
        self.core.update_meta(meta, now)
        self.raft.tell(LocalMeta(meta))

    def _flush(self) -> None:
        if self.core.cluster_id != self.meta.cluster_id and not self.meta.cluster_id:
            # The core joined without an id and took the answering seed's (gossip core's doc).
            logger.info("gossip: cluster id {} (from the seed that answered the join)", self.core.cluster_id)
            self.meta = self.core.meta
            self.raft.tell(LocalMeta(self.meta))
        for address, message in self.core.drain_outbox():
            self.transport.send(address, Channel.GOSSIP, encode_message(message))
        events = self.core.drain_events()
        if events:
            for event in events:
                if event.kind in ("joined", "dead", "left", "suspect", "alive"):
                    logger.info("gossip: {} is {} ({})", event.node_id, event.kind, event.address)
            self.raft.tell(MemberEvents(events))
        for foreign in self.core.drain_foreign():
            logger.warning(
                "gossip: dropping gossip from {} of cluster {}; this node is in cluster {} "
                "(two clusters sharing a key, or a node that bootstrapped a cluster of its own)",
                foreign.address,
                foreign.cluster_id,
                foreign.local_cluster_id,
            )
