"""The Brain's shell: routes messages and frames to one Raft node's parts, on one thread.

The Ready loop (persist, send, apply, snapshot, identity checks, chunked snapshot streams) is
``orion.raft.shell.RaftShell``, shared with the simulator; this actor is its host. It drains
Ready once per burst of mailbox messages (a ``_Flush`` told to itself), so proposals that
arrive together share one fsync. Requests go to ``orion.cluster.request_path`` (writes answered
when applied, reads once linearizable, followers forwarding both to the leader); a leader
drives the configuration and the node records from gossip (``membership_driver``,
``node_records``). Local snapshots are encoded and written on a background thread from a
consistent copy of the FSM, so a big state never delays a heartbeat.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import msgspec
import pykka
from loguru import logger

from orion.actors.base import NodeActor
from orion.actors.events_actor import AppliedEvents, EventsReset
from orion.actors.messages import (
    ClusterIdentity,
    LeadershipChanged,
    LocalMeta,
    MemberEvents,
    Propose,
    Read,
    Shutdown,
    StateChanged,
    Tick,
)
from orion.actors.state_view import StateView, run_query
from orion.actors.submit_placer import SubmitPlacer
from orion.actors.tick_stalls import TickStalls
from orion.cluster.bootstrap import BootstrapGrace
from orion.cluster.forwarding import decode_forward
from orion.cluster.leadership import Leadership
from orion.cluster.membership_driver import MembershipDriver
from orion.cluster.mirror import MemberMirror
from orion.cluster.node_records import NodeRecordSync
from orion.cluster.request_path import RequestPath
from orion.cluster.shutdown_handover import ShutdownHandover
from orion.cluster.status import StatusViews
from orion.config import NodeConfig
from orion.fsm.snapshot import encode_snapshot
from orion.fsm.state import ClusterState
from orion.metrics import NodeMetrics
from orion.raft.core import RaftConfig, RaftCore
from orion.raft.pacing import Pacer
from orion.raft.shell import RaftShell
from orion.raft.snapshot_stream import snapshot_checksum
from orion.raft.types import Entry, EntryKind, LogStore, RaftRole, Snapshot, SnapshotMeta, StoredState
from orion.transport.peer import Channel, PeerTransport

MEMBERSHIP_EVERY_TICKS = 4


@dataclass(slots=True)
class _Flush:
    pass


@dataclass(frozen=True, slots=True)
class _Frame:
    channel: Channel
    payload: bytes


@dataclass(frozen=True, slots=True)
class _SnapshotDone:
    snapshot: Snapshot | None  # None: taking it failed
    checksum: int | None = None


class RaftActor(NodeActor):
    def __init__(
        self,
        config: NodeConfig,
        store: LogStore,
        stored: StoredState,
        peers: PeerTransport,
        on_fatal: Callable[[str], None],
        incarnation: str = "",
        metrics: NodeMetrics | None = None,
    ) -> None:
        super().__init__(on_fatal)
        self.metrics = metrics
        self.config = config
        self.store = store
        self._stored: StoredState | None = stored  # read once by the node at start
        self.incarnation = incarnation or uuid.uuid4().hex
        self.peers = peers
        self.listeners: list[pykka.ActorRef] = []  # told StateChanged and LeadershipChanged
        self.identity_listeners: list[pykka.ActorRef] = []  # told ClusterIdentity
        self.event_sink: pykka.ActorRef | None = None  # told AppliedEvents (orion/actors/events_actor.py)
        self.fsm = ClusterState()
        self.mirror = MemberMirror()
        self._now = time.monotonic()
        self.leadership = Leadership(self._now)
        self._stalls = TickStalls(config.tick)
        self._flush_scheduled = False
        self._cluster_id = ""
        self._snapshotter = ThreadPoolExecutor(1, thread_name_prefix=f"{config.node_id}-snapshot")

    # ---------------------------------------------------------------- lifecycle
    def on_start(self) -> None:
        stored, self._stored = self._stored, None
        if stored.snapshot is not None:
            self.fsm.restore(stored.snapshot.data)
        config = self.config
        raft_config = RaftConfig(
            election_ticks=config.election_ticks,
            heartbeat_ticks=config.heartbeat_ticks,
            snapshot_threshold=config.snapshot_threshold,
            trailing_entries=config.trailing_entries,
            max_size_per_msg=config.max_size_per_msg,
            max_inflight_bytes=config.max_inflight_bytes,
        )
        self.core = core = RaftCore(config.node_id, stored, raft_config, random.Random())
        self.shell = RaftShell(
            core,
            self.store,
            self,
            incarnation=self.incarnation,
            snapshot_threshold=config.snapshot_threshold,
            chunk_bytes=config.snapshot_chunk,
            saved_hard_state=stored.hard_state,
        )
        views = StatusViews(config.node_id, core, self.fsm, self.mirror, self.leadership, lambda: self._now)
        self._view = StateView(views)
        self.placer = SubmitPlacer(
            self.fsm,
            strategy=config.strategy,
            dynamic_ports=config.dynamic_ports,
            next_index=lambda: core.last_index + 1,
            term=lambda: core.term,
        )
        self.requests = RequestPath(
            core,
            self.leadership,
            node_id=config.node_id,
            origin=config.raft_address,
            request_timeout=config.request_timeout,
            election_ticks=config.election_ticks,
            send=lambda address, payload: self.peers.send(address, Channel.FORWARD, payload),
            run=lambda query: run_query(query, self._view),
            prepare=self.placer.prepare,
        )
        self.members = MembershipDriver(
            core,
            self.mirror,
            self.leadership,
            node_id=config.node_id,
            max_voters=config.max_voters,
            remove_after=config.remove_dead_after,
        )
        self.node_records = NodeRecordSync(
            self.fsm,
            self.mirror,
            self.leadership,
            lambda data, deadline: self.requests.propose_here(data, None, deadline),
            reschedule_after=config.reschedule_after,
        )
        self.bootstrap = BootstrapGrace(
            core,
            lambda: {**self.mirror.clusters_seen(config.node_id), **self.shell.heard_clusters},
            node_id=config.node_id,
            raft_address=config.raft_address,
            incarnation=self.incarnation,
        )
        self.shutdown = ShutdownHandover(core)
        if (
            config.bootstrap
            and stored.snapshot is None
            and not stored.entries
            and stored.hard_state.term == 0
        ):
            self.bootstrap.start(self._now, config.bootstrap_grace)
        self._drain()

    def on_stop(self) -> None:
        self.shell.flush_hard_state()
        self._snapshotter.shutdown(wait=True, cancel_futures=True)
        self.requests.close()

    def add_listener(self, ref: pykka.ActorRef) -> None:
        self.listeners.append(ref)

    def set_event_sink(self, ref: pykka.ActorRef) -> None:
        """From now on, tell ``ref`` the events of every applied entry; it starts at the
        applied index (what was applied before is not known as events)."""
        self.event_sink = ref
        self.fsm.events.enabled = True
        self.fsm.take_events()
        ref.tell(EventsReset(self.fsm.applied_index))

    def add_identity_listener(self, ref: pykka.ActorRef) -> None:
        self.identity_listeners.append(ref)
        ref.tell(ClusterIdentity(self._cluster_id, self.incarnation))

    def frame_handler(self) -> Callable[[Channel, bytes], None]:
        """A transport callback (runs in the transport thread): hands frames to the actor."""
        ref = self.actor_ref

        def on_frame(channel: Channel, payload: bytes) -> None:
            if channel in (Channel.RAFT, Channel.FORWARD):
                # The node is stopping if the actor is dead: frames still arriving have nobody to go to.
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.tell(_Frame(channel, payload))

        return on_frame

    # ---------------------------------------------------------------- dispatch
    def on_receive(self, message: Any) -> Any:
        try:
            self._handle(message)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            logger.debug("dropped a malformed frame: {}", exc)
        if self.core.has_ready() and not self._flush_scheduled:
            self._flush_scheduled = True
            self.actor_ref.tell(_Flush())

    def _handle(self, message: Any) -> None:
        match message:
            case _Flush():
                self._flush_scheduled = False
                self._drain()
            case _Frame(Channel.RAFT, payload):
                self.shell.receive(payload)
            case _Frame(Channel.FORWARD, payload):
                self.requests.on_forward(decode_forward(payload), self._now)
            case Tick(now, gate):
                if gate is not None:
                    gate.release()
                self._on_tick(now)
            case Propose(data, callback, timeout):
                if self.metrics is not None:
                    callback = self.metrics.timed(callback)
                self.requests.propose(data, callback, self._now + timeout)
            case Read(query, callback, stale, timeout):
                self.requests.read(query, callback, self._now + timeout, stale=stale)
            case MemberEvents(events):
                self.mirror.apply_events(events, self._now)
            case LocalMeta(meta):
                self.mirror.set_local(meta, self._now)
            case _SnapshotDone(snapshot, checksum):
                self.shell.snapshot_taken(snapshot, checksum)
                if snapshot is not None:
                    logger.info("snapshot at index {} (log compacted)", snapshot.meta.index)
            case Shutdown(done):
                self.shutdown.begin(done, self._now)
            case _:
                logger.warning("raft actor: unexpected message {!r}", type(message).__name__)

    def _on_tick(self, now: float) -> None:
        self._stalls.on_tick(now)
        self._now = now
        self.leadership.on_tick(self.core, now)
        self.shell.tick()
        self.bootstrap.step(now)
        self.requests.expire(now)
        self.requests.retry_parked()  # parked while no leader (or no address for it) was known
        if self.core.role == RaftRole.LEADER and self.leadership.ticks % MEMBERSHIP_EVERY_TICKS == 0:
            self.members.step(now)
            self.node_records.step(now, time.time())
        if self.shutdown.pending:
            self.shutdown.step(now)

    def _drain(self) -> None:
        changed = self.shell.drain()
        self.requests.serve_ready_reads()
        if self.leadership.observe(self.core, self._now):
            core = self.core
            logger.info("raft: role {} term {} leader {}", core.role, core.term, core.leader_id or "-")
            if self.metrics is not None:
                self.metrics.leader_seen(core.leader_id or "")
            _tell_all(self.listeners, LeadershipChanged(self.leadership.is_leader, core.leader_id))
            self.requests.on_leadership_changed()
        cluster_id = self.core.membership.cluster_id
        if cluster_id != self._cluster_id:
            self._cluster_id = cluster_id
            _tell_all(self.identity_listeners, ClusterIdentity(cluster_id, self.incarnation))
        if changed:
            _tell_all(self.listeners, StateChanged())
        if self.event_sink is not None and changed:
            _tell_all([self.event_sink], AppliedEvents(self.fsm.take_events(), self.fsm.applied_index))

    # ---------------------------------------------------------------- the shell's host
    def send_frame(self, dst: str, frame: bytes) -> None:
        self.leadership.on_send(self.core, dst, self._now)
        membership = self.core.membership
        # Gossip knows a member's current address (it may have moved); the configuration's
        # is the fallback before gossip has found it, e.g. right after a restart.
        address = self.mirror.raft_address(
            dst, membership.incarnations.get(dst, "")
        ) or membership.address_of(dst)
        if address is not None:
            self.peers.send(address, Channel.RAFT, frame)

    def apply(self, entry: Entry) -> bool:
        result: Any = None
        if entry.kind == EntryKind.NORMAL:
            result = self.fsm.apply(entry.index, entry.data)
        elif entry.kind == EntryKind.CONFIG:
            self.members.on_config_applied(entry.index)
        self.requests.on_applied(entry, result)
        return entry.kind == EntryKind.NORMAL

    def restore(self, snapshot: Snapshot) -> None:
        self.fsm.restore(snapshot.data)
        if self.metrics is not None:
            self.metrics.snapshot_installed(len(snapshot.data))
        if self.event_sink is not None:  # the entries it stands for were not applied here
            self.fsm.take_events()
            _tell_all([self.event_sink], EventsReset(self.fsm.applied_index))
        # The installed snapshot sits in the WAL until a checkpoint folds it in: do that off
        # this thread, or a restart would replay all of it.
        self._snapshotter.submit(self.store.checkpoint)

    def snapshot_source(self) -> Any:
        return self.fsm.snapshot_source()

    def start_snapshot(self, meta: SnapshotMeta, source: Any) -> None:
        ref = self.actor_ref
        store = self.store
        metrics = self.metrics

        def take() -> None:
            snapshot: Snapshot | None = None
            checksum: int | None = None
            started = time.monotonic()
            try:
                snapshot = Snapshot(meta, encode_snapshot(source, pace=Pacer()))  # lock shared, see Pacer
                checksum = snapshot_checksum(snapshot.data)  # for streaming it, if ever needed
                store.write_snapshot(snapshot)  # durable, then checkpointed, all off this thread
                if metrics is not None:
                    metrics.snapshot_taken(len(snapshot.data), time.monotonic() - started)
            except Exception:
                logger.exception("taking a snapshot at index {} failed; will retry", meta.index)
                snapshot = None
            with contextlib.suppress(pykka.ActorDeadError):  # stopped while it was being taken
                ref.tell(_SnapshotDone(snapshot, checksum))

        self._snapshotter.submit(take)

    def on_read_state(self, context: bytes, index: int) -> None:
        self.requests.on_read_state(context, index)

    def on_failed_read(self, context: bytes) -> None:
        self.requests.on_failed_read(context)

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        logger.warning("raft: dropping frames from {} ({}): {}", peer, reason, detail)


def _tell_all(refs: list[pykka.ActorRef], message: Any) -> None:
    """Tell every listener; one that has stopped (the node is shutting down, actors stop one
    by one) is skipped rather than taking this actor down with it."""
    for ref in refs:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(message)
