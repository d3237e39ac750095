"""The Brain's shell: routes messages and frames to one Raft node's parts, on one thread.

The Ready loop (persist, send, apply, snapshot, identity checks, chunked snapshot streams) is
``orion.raft.shell.RaftShell``, shared with the simulator; this actor is its host. It drains
Ready once per burst of mailbox messages (a ``_Flush`` told to itself), so proposals that
arrive together share one fsync; with nothing else queued it drains at once. Requests go to
``orion.cluster.request_path`` (writes answered when applied, reads once linearizable,
followers forwarding both to the leader); a leader drives the configuration and the node
records from gossip (``membership_driver``, ``node_records``). The parts are built in
``orion.actors.raft_parts``; local snapshots are taken on a background thread
(``orion.actors.snapshot_jobs``), so a big state never delays a heartbeat; the other actors
hear of changes through ``orion.actors.raft_listeners``.

Time: the core counts in ticks (``config.tick``), but the actor does not wake on every one. It
owes the core the ticks that would change nothing but counters (``RaftShell.ticks_until_due``)
and pays them before the core's next input (a frame, stamped when the transport reads it:
as it arrives while this thread waits, within ``BUSY_TURN_S`` of arriving while it is busy)
or when one falls due: an idle follower wakes at its election deadline, which every
heartbeat moves on, and a leader at its heartbeats. Paying before each input keeps the core's
history the same as ticking on every beat (tests/raft/test_core_lazy_ticks.py). ``_next_wake``
is the one place that says when the actor needs its next Tick: the earliest of its parts'
deadlines. The actor keeps that timer itself: its mailbox is a ``TimedInbox``, which queues a
Tick when the deadline passes, so a heartbeat wakes one thread (this one), not the node's
ticker and then this one (orion/actors/timed_inbox.py). The clock starts with the first Tick
from the node's ticker, which starts once the node has wired every listener (so none misses a
leadership change), and that ticker is then told never to send another. A Raft transport
that was bound rather than started (``PeerTransport.bind``) is hosted by this thread: its
frames are read, stamped and handled, and this actor's sends written, by the one thread that
woke; the node binds it so (orion/node.py).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pykka
from loguru import logger

from orion.actors.base import NodeActor
from orion.actors.hosted_inbox import HostedInbox
from orion.actors.messages import LocalMeta, MemberEvents, Propose, Read, Shutdown, Tick
from orion.actors.raft_parts import RaftParts, build_raft_parts
from orion.actors.snapshot_jobs import LogCheckpointed, SnapshotDone, SnapshotJobs
from orion.actors.tick_stalls import TickStalls
from orion.actors.timed_inbox import NEVER
from orion.cluster.feed_protocol import FeedAnswer, FeedMessage, FeedRedirect, FeedWatch, decode_feed
from orion.cluster.feed_worker import mirror_candidates
from orion.cluster.forwarding import decode_forward
from orion.config import NodeConfig
from orion.metrics import NodeMetrics
from orion.raft.types import Entry, EntryKind, LogStore, RaftRole, Snapshot, SnapshotMeta, StoredState
from orion.transport.peer import Channel, PeerTransport

MEMBERSHIP_EVERY_TICKS = 4
IDLE_WAKE_S = 1.0  # the longest sleep of a node with no deadline (a worker, a non-voter)
# A tick due this close is paid now: the ticker may wake a little early (its resolution), and
# waking again a few ms later for it would cost more than it is worth.
TICK_EARLY_S = 0.005


@dataclass(slots=True)
class _Flush:
    pass


@dataclass(frozen=True, slots=True)
class _Frame:
    channel: Channel
    payload: bytes
    at: float = 0.0  # monotonic arrival time (0: not stamped, the core's clock is not advanced)


class RaftActor(NodeActor):
    parts: RaftParts  # built in on_start, on the actor's thread
    actor_inbox: HostedInbox
    # RaftShell may leave a Ready's frames held when nothing slow follows its sends: they go
    # to the transport in one batch when this thread is about to wait (``_before_wait``).
    flushes_when_idle = True

    @staticmethod
    def _create_actor_inbox() -> HostedInbox:  # type: ignore[override]
        return HostedInbox(Tick)

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
        if peers.hosted:
            # This thread runs the Raft transport while it waits (orion/actors/hosted_inbox.py):
            # a heartbeat goes out, and an answer comes in, waking this thread only.
            self.actor_inbox.host(peers)
        self.metrics = metrics
        self.config = config
        self.store = store
        self._stored: StoredState | None = stored  # read once by the node at start
        self.incarnation = incarnation or uuid.uuid4().hex
        self.peers = peers
        self._now = time.monotonic()
        self._stalls = TickStalls(config.tick)
        self._tick_s = config.tick
        self._tick_base = self._now  # when the core's last tick was due: the ticks owed count from here
        self._wake_asked = NEVER  # the Tick asked for since the last one
        self._clock_started = False  # by the ticker's first Tick: none is timed before it
        self._membership_due = False  # a leader's membership step is due (every few ticks)
        self._flush_scheduled = False
        self._snapshots = SnapshotJobs(config.node_id, store, metrics)
        self._held_frames: list[tuple[str, bytes]] = []  # sent by the shell, not yet handed over
        self._membership_seen: object = None  # the configuration the worker side last saw (_drain)
        self._member_ids_of: object = None  # the configuration ``_member_ids`` lists (_step_worker)
        self._member_ids: list[str] = []

    # ---------------------------------------------------------------- lifecycle
    def on_start(self) -> None:
        stored, self._stored = self._stored, None
        self.parts = build_raft_parts(
            self.config,
            self.store,
            stored,
            self,
            self.peers,
            incarnation=self.incarnation,
            now=lambda: self._now,
        )
        self._drain()
        self.flush_frames()
        self.actor_inbox.before_wait = self._before_wait

    def on_stop(self) -> None:
        self.flush_frames()  # held for the next wait, which will not come (a handover's TimeoutNow)
        self.parts.listeners.flush_events()
        self.parts.feed.close()
        self.parts.shell.flush_hard_state()
        self._snapshots.close()
        self.parts.requests.close()
        self.actor_inbox.close()

    def add_listener(self, ref: pykka.ActorRef) -> None:
        self.parts.listeners.add(ref)

    def set_event_sink(self, ref: pykka.ActorRef) -> None:
        self.parts.listeners.set_event_sink(ref)

    def add_identity_listener(self, ref: pykka.ActorRef) -> None:
        self.parts.listeners.add_identity(ref)

    def frame_handler(self) -> Callable[[Channel, bytes], None]:
        """A transport callback (on the transport's thread, or this actor's when it hosts the
        transport): hands frames to the actor, stamped with when they came (``frame_time``)."""
        ref = self.actor_ref
        arrived = self.actor_inbox.frame_time

        def on_frame(channel: Channel, payload: bytes) -> None:
            if channel in (Channel.RAFT, Channel.FORWARD, Channel.FEED):
                # The node is stopping if the actor is dead: frames still arriving have nobody to go to.
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.tell(_Frame(channel, payload, arrived()))

        return on_frame

    # ---------------------------------------------------------------- dispatch
    def on_receive(self, message: Any) -> Any:
        self._now = time.monotonic()
        self._pay_ticks_before(message)
        try:
            self._handle(message)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            logger.debug("dropped a malformed frame: {}", exc)
        if self.parts.core.has_ready() and not self._flush_scheduled:
            if self.actor_inbox.empty():
                self._drain()  # nothing waiting to share its write: no round through the mailbox
            else:
                self._flush_scheduled = True
                self.actor_ref.tell(_Flush())
        if not self.actor_inbox.empty():
            # Frames held (a quick Ready's, snapshot chunks and their acks) do not wait behind
            # the queued messages; with none queued they go when this thread is about to wait.
            self.flush_frames()
        events_due = self.parts.listeners.events_due
        if events_due is not None and events_due <= self._now + TICK_EARLY_S:
            self.parts.listeners.flush_events()
        self._plan_wake()

    def _before_wait(self) -> None:
        """The mailbox is empty and this thread is about to block: hand over the held frames."""
        try:
            self.flush_frames()
        except Exception as exc:  # raised outside on_receive, Pykka would not report it
            logger.exception("raft actor: flushing frames failed")
            self.on_fatal(f"RaftActor failed: {exc!r}")

    def _handle(self, message: Any) -> None:
        parts = self.parts
        match message:
            case _Flush():
                self._flush_scheduled = False
                self._drain()
            case _Frame(Channel.RAFT, payload):
                parts.shell.receive(payload)
                parts.leadership.on_receive(parts.core, self._now)
            case _Frame(Channel.FORWARD, payload):
                parts.requests.on_forward(decode_forward(payload), self._now)
            case _Frame(Channel.FEED, payload):
                self._on_feed(decode_feed(payload))
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                    gate.tick_at(NEVER)  # this actor keeps its own timer (TimedInbox)
                self._clock_started = True
                self._on_tick(self._now)
            case Propose(data, callback, timeout):
                if self.metrics is not None:
                    callback = self.metrics.timed(callback)
                parts.requests.propose(data, callback, self._now + timeout)
            case Read(query, callback, stale, timeout, local, complete):
                parts.requests.read(
                    query,
                    callback,
                    self._now + timeout,
                    stale=stale,
                    local=local,
                    complete=complete,
                    now=self._now,
                )
            case MemberEvents(events):
                parts.mirror.apply_events(events, self._now)
            case LocalMeta(meta):
                parts.mirror.set_local(meta, self._now)
            case LogCheckpointed():
                if not self._snapshots.busy:  # else the store's other connection may be in use
                    parts.shell.log_checkpointed()
            case SnapshotDone(snapshot, checksum):
                parts.shell.snapshot_taken(snapshot, checksum)
                if snapshot is not None:
                    logger.info("snapshot at index {} (log compacted)", snapshot.meta.index)
            case Shutdown(done):
                parts.shutdown.begin(done, self._now)
            case _:
                logger.warning("raft actor: unexpected message {!r}", type(message).__name__)

    def _on_tick(self, now: float) -> None:
        """The ticker's Tick (the ticks owed were paid before): the parts' timed steps."""
        parts = self.parts
        if self._wake_asked != NEVER:
            self._stalls.on_tick(now, previous=self._wake_asked - self._tick_s)
        self._wake_asked = NEVER  # the inbox queued this Tick and holds no deadline: ask again
        parts.bootstrap.step(now)
        if parts.requests.waiting:  # expire has nothing to look at otherwise (idle CPU)
            parts.requests.expire(now)
        parts.feed.expire(now)
        self._step_worker(now)
        parts.requests.retry_parked()  # parked while no leader (or no address for it) was known
        parts.requests.step_held_writes()  # held for quorum contact: refused once their window passed
        if self._membership_due and parts.core.role == RaftRole.LEADER:
            parts.members.step(now)
            parts.node_records.step(now, time.time())
        self._membership_due = False
        if parts.shutdown.pending:
            parts.shutdown.step(now)

    # ---------------------------------------------------------------- the core's clock
    def _pay_ticks_before(self, message: Any) -> None:
        """Pay the core the ticks owed up to the time ``message`` stands for, before the core
        sees it: a frame's arrival, a Tick's sending; a local message (a write, a read, the
        shutdown) at once on a leader (its quorum contact is counted in ticks) and not at all
        on a follower, whose core it does not reach."""
        # isinstance, not a match on class patterns: this runs for every message (idle CPU).
        if isinstance(message, _Frame):
            if message.at:
                self._pay_ticks(message.at)
        elif isinstance(message, Tick):
            self._pay_ticks(message.now, beat=True)
        elif self.parts.core.role == RaftRole.LEADER:
            self._pay_ticks(self._now)

    def _pay_ticks(self, at: float, beat: bool = False) -> None:
        """``beat``: ``at`` is a Tick's, the time the ticker woke for a tick due then: the
        ticks count on from it, so the next one asked for is where the ticker already plans
        one (a Tick moves its target an interval on before the actor can ask)."""
        tick = self._tick_s
        owed = int((at - self._tick_base + TICK_EARLY_S) / tick)
        if owed <= 0:
            return
        due = self._ticks_until_due()
        paid = owed if due is None else min(owed, due)
        for _ in range(paid):
            self._tick_core()
        if paid < owed or beat:
            # Late by more than a tick: this thread was held (a long apply, a pause). The
            # ticks missed meanwhile are dropped, not paid in a burst, as the ticker's
            # coalescing of late ticks always did: a leader held past a CheckQuorum round
            # hears the answers queued meanwhile before its next round.
            self._tick_base = at
        else:
            self._tick_base += paid * tick

    def _tick_core(self) -> None:
        parts = self.parts
        parts.leadership.on_tick(parts.core, self._now)
        parts.shell.tick()
        if parts.leadership.ticks % MEMBERSHIP_EVERY_TICKS == 0:
            self._membership_due = True

    def _ticks_until_due(self) -> int | None:
        """Ticks until one changes more than counters (None: none will by itself). A leader's
        membership step is not among them: it runs on the Tick of the next heartbeat."""
        return self.parts.shell.ticks_until_due()

    def _next_wake(self) -> float:
        """When this actor next needs a Tick (monotonic seconds): the earliest of its parts'
        deadlines. A part with a timer of its own adds its next deadline here."""
        parts = self.parts
        events_due = parts.listeners.events_due  # applied entries' events held for the events actor
        if parts.requests.waiting or parts.bootstrap.pending or parts.shutdown.pending:
            # their steps run every tick, as they always did
            wake = self._tick_base + self._tick_s
        else:
            due = self._ticks_until_due()
            wake = self._now + IDLE_WAKE_S if due is None else self._tick_base + due * self._tick_s
            # A worker's parked watch is answered at its deadline; this worker's own watch is
            # re-sent, or switched, at its own. (Plain comparisons: this runs after every message.)
            watch_due = parts.feed.next_deadline()
            if watch_due is not None and watch_due < wake:
                wake = watch_due
            own_watch = parts.feed_client.next_deadline()
            if own_watch is not None and own_watch < wake:
                wake = own_watch
        return wake if events_due is None or wake <= events_due else events_due

    def _plan_wake(self) -> None:
        """Set the mailbox's deadline for the next Tick (this thread's own timed wait: a
        later deadline, as every heartbeat sets on a follower, wakes nobody)."""
        if not self._clock_started:
            return
        wake = self._next_wake()
        self._wake_asked = wake
        self.actor_inbox.tick_at(wake)

    def _drain(self) -> None:
        parts, core = self.parts, self.parts.core
        changed = parts.shell.drain()
        if core.membership is not self._membership_seen:
            # A worker the leader added, or a member whose log removed it, changes at once: a
            # follower gets no Tick while heartbeats come, and a former worker would go on
            # refusing the cluster's reads (and watching) until some deadline of its own.
            self._membership_seen = core.membership
            self._step_worker(self._now)
        parts.feed.on_drained()  # before the listeners: workers hear of an entry no later than the events
        parts.requests.serve_ready_reads()
        parts.requests.step_held_writes()  # the answers just handled may show a quorum again
        if parts.leadership.observe(core, self._now):
            logger.info("raft: role {} term {} leader {}", core.role, core.term, core.leader_id or "-")
            if self.metrics is not None:
                self.metrics.leader_seen(core.leader_id or "")
            parts.listeners.leadership_changed(parts.leadership.is_leader, core.leader_id)
            parts.requests.on_leadership_changed()
        parts.listeners.cluster_seen(core.membership.cluster_id or parts.feed_client.cluster_id)
        if changed:
            # The events go within EVENTS_HOLD_S, with the next Readies' (one wake-up of the
            # events actor for several): on_receive and _next_wake see to it.
            parts.listeners.state_changed(parts.listeners.take_touched(), now=self._now)

    def _step_worker(self, now: float) -> None:
        """This node's own watch (issue 20): active while its configuration lacks it."""
        parts = self.parts
        membership = parts.core.membership
        if membership is not self._member_ids_of:  # a configuration is replaced, never changed
            self._member_ids_of = membership
            self._member_ids = membership.all_ids()
        parts.feed_client.step(now, self._member_ids, self._feed_candidates)

    def _feed_candidates(self) -> list[str]:
        """The Raft addresses a worker's watch may ask (called by the feed client)."""
        config = self.config
        return mirror_candidates(config.node_id, self.parts.mirror, config.join)

    def _on_feed(self, message: FeedMessage) -> None:
        """The worker feed: watches to this node's feed host (it serves them while a member,
        redirects otherwise); answers to this node's own watch, while it is a worker."""
        match message:
            case FeedWatch():
                self.parts.feed.on_watch(message, self._now)
            case FeedAnswer() | FeedRedirect():
                if self.parts.feed_client is not None:
                    self.parts.feed_client.on_message(message, self._now)

    # ---------------------------------------------------------------- the shell's host
    def send_frame(self, dst: str, frame: bytes) -> None:
        parts = self.parts
        parts.leadership.on_send(parts.core, dst, self._now)
        membership = parts.core.membership
        # Gossip knows a member's current address (it may have moved); the configuration's
        # is the fallback before gossip has found it, e.g. right after a restart.
        address = parts.mirror.raft_address(
            dst, membership.incarnations.get(dst, "")
        ) or membership.address_of(dst)
        if address is not None:
            self._held_frames.append((address, frame))

    def flush_frames(self) -> None:
        """Hand the frames sent since the last flush to the transport in one batch."""
        if self._held_frames:
            self.peers.send_batch(Channel.RAFT, self._held_frames)
            self._held_frames = []

    def apply(self, entry: Entry) -> bool:
        result: Any = None
        if entry.kind == EntryKind.NORMAL:
            fsm = self.parts.fsm
            fed = fsm.fed_index != 0  # apply drops a worker's fed tasks first, unseen by the hooks
            result = fsm.apply(entry.index, entry.data)
            self.parts.listeners.applied(entry.data, replaced=fed)
        elif entry.kind == EntryKind.CONFIG:
            self.parts.members.on_config_applied(entry.index)
        self.parts.requests.on_applied(entry, result)
        return entry.kind == EntryKind.NORMAL

    def restore(self, snapshot: Snapshot) -> None:
        if self.parts.listeners.events_due is not None:
            self.parts.listeners.flush_events()  # the events of entries applied before it
        self.parts.fsm.restore(snapshot.data)
        self.parts.feed.on_restored()
        if self.metrics is not None:
            self.metrics.snapshot_installed(len(snapshot.data))
        self.parts.listeners.state_replaced()
        self._snapshots.checkpoint()

    def snapshot_source(self) -> Any:
        return self.parts.fsm.snapshot_source()

    def start_snapshot(self, meta: SnapshotMeta, source: Any) -> None:
        self._snapshots.take(meta, source, self.actor_ref)

    def checkpoint_log(self) -> None:
        self._snapshots.checkpoint_log(self.actor_ref)

    def on_read_state(self, context: bytes, index: int) -> None:
        self.parts.requests.on_read_state(context, index)

    def on_failed_read(self, context: bytes) -> None:
        self.parts.requests.on_failed_read(context)

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        logger.warning("raft: dropping frames from {} ({}): {}", peer, reason, detail)
