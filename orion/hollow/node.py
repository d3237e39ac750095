"""One hollow node: the agent side of an Orion node, minus Docker, driven by its pool.

It is what a real worker node is to the cluster, built from the same parts:

- the SWIM/Lifeguard core (``orion.gossip.core.SwimCore``) with the node's meta, so it joins
  through gossip and the leader adds it to the Raft configuration as it adds any node;
- a Raft core behind the production Ready loop (``orion.raft.shell.RaftShell``) with an
  in-memory store and its own FSM copy (``ClusterState``): while the leader has room in the
  configuration (``[raft] max_members``) a hollow node becomes a non-voter that replicates the
  whole log, pays that cost as a real one does, and serves the worker feed
  (``orion.cluster.feed_host.FeedHost``) as any member does;
- beyond it, a *worker* (issue 20): its feed client (``orion.cluster.feed_worker``) watches a
  member for its own tasks, which replace its FSM's (a partial, fed replica);
- the request path (``orion.cluster.request_path.RequestPath``), so task state reports are
  forwarded to the leader (a worker's: to the leader the feed names) and committed exactly
  like a real node's;
- the reconcile planner (``orion.worker.reconcile_plan.ReconcilePlanner``) acting on a fake
  runtime (``fake_runtime.FakeRuntime``) that starts containers at once.

No threads or sockets here: the pool hands in frames and time, and sends what comes out.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
from loguru import logger

from orion.actors.raft_parts import raft_settings
from orion.actors.state_view import StateView, run_query
from orion.cluster.feed_client import FeedClient
from orion.cluster.feed_host import FeedHost
from orion.cluster.feed_protocol import FeedWatch, decode_feed
from orion.cluster.feed_worker import CANDIDATES_EVERY_S, FeedWorker, feed_candidates
from orion.cluster.forwarding import decode_forward
from orion.cluster.leadership import Leadership
from orion.cluster.mirror import MemberMirror
from orion.cluster.outcome import Callback, Outcome
from orion.cluster.request_path import RequestPath
from orion.cluster.status import StatusViews
from orion.config import NodeConfig
from orion.fsm import commands as fsm_commands
from orion.fsm.snapshot import encode_snapshot
from orion.fsm.state import ClusterState
from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.messages import GossipMessage, decode_message, encode_message
from orion.hollow.fake_runtime import FakeRuntime
from orion.model import NodeMeta
from orion.raft.core import RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.shell import RaftShell
from orion.raft.types import Entry, EntryKind, Snapshot, SnapshotMeta
from orion.transport.frames import Channel
from orion.worker import reconcile_plan as plan
from orion.worker.reconcile_plan import ReconcilePlanner, Wanted
from orion.worker.restart_policy import RestartPolicy

Send = Callable[[str, Channel, bytes], None]
# A round runs at most this often when the FSM keeps changing (the real reconciler's rounds
# coalesce the same way: one in flight, the next one when it ends).
MIN_ROUND_GAP_S = 0.2
# A worker that knows no server yet lists its feed candidates from gossip at most this often.
MIN_CANDIDATES_GAP_S = 1.0
IDLE_WAKE_S = 1.0  # the Raft actor's longest sleep with nothing due (a worker, a non-voter)
TICK_EARLY_S = 0.005  # a tick due this close is paid now (the Raft actor's rule)


class HollowStats:
    """Counters of one pool, summed over its nodes."""

    def __init__(self) -> None:
        self.reports_sent = 0  # task reports (and the other commands a node proposes, one each)
        self.entries_sent = 0  # the entries that carried them (a pass's reports share one)
        self.reports_ok = 0
        self.reports_failed = 0
        self.report_failures: dict[str, int] = {}  # error code -> reports that failed with it
        self.dead_events: dict[str, int] = {}  # member id -> times a hollow node heard it declared dead
        self.snapshots_taken = 0
        self.snapshots_installed = 0


class HollowNode:
    def __init__(
        self,
        config: NodeConfig,
        meta: NodeMeta,
        gossip: GossipConfig,
        send: Send,
        stats: HollowStats,
        now: float,
        seed: int,
        connect: Callable[[str], None] | None = None,
        decode: Callable[[bytes], GossipMessage] = decode_message,
    ) -> None:
        self.id = meta.id
        self._connect = connect  # opens the gossip connection to a member heard of (the pool's transport)
        self._decode = decode  # the pool's SharedDecoder: its nodes share what they hear alike
        self.config = config
        self.meta = meta
        self.stats = stats
        self._send = send
        self._now = now
        incarnation = meta.raft_incarnation
        self.swim = SwimCore(meta, gossip, random.Random(seed), now)
        self._join_pick = seed  # which seed this node joins through
        self.store = MemoryStore()
        self.store.save_identity(incarnation)
        stored = self.store.load()
        raft_config = raft_settings(config)
        self.core = core = RaftCore(meta.id, stored, raft_config, random.Random(seed + 1))
        self.fsm = ClusterState()
        self.shell = RaftShell(
            core,
            self.store,
            self,
            incarnation=incarnation,
            snapshot_threshold=config.snapshot_threshold,
            snapshot_log_ratio=config.snapshot_log_ratio,
            chunk_bytes=config.snapshot_chunk,
            saved_hard_state=stored.hard_state,
        )
        self.leadership = Leadership(now)
        views = StatusViews(meta.id, core, self.fsm, MemberMirror(), self.leadership, lambda: self._now)
        view = StateView(views)
        self.feed_client = FeedClient(
            meta.id, meta.raft_address, lambda address, payload: self._send(address, Channel.FEED, payload)
        )
        self.requests = RequestPath(
            core,
            self.leadership,
            node_id=meta.id,
            origin=meta.raft_address,
            request_timeout=config.request_timeout,
            election_ticks=config.election_ticks,
            send=lambda address, payload: self._send(address, Channel.FORWARD, payload),
            run=lambda query: run_query(query, view),
            feed=self.feed_client,
        )
        self.feed = FeedWorker(
            meta.id,
            self.feed_client,
            self.fsm,
            self.requests,
            on_tasks=self._fed_tasks_changed,
            on_cluster=lambda _cluster_id: self._sync_cluster_id(self._now),
        )
        self.feed_host = FeedHost(meta.id, self.fsm, core, self._raft_address_of, self._send_feed)
        self.runtime = FakeRuntime(meta.id, meta.port_space)
        policy = RestartPolicy(
            condition=config.restart_condition,
            max_attempts=config.restart_attempts,
            interval=config.restart_interval,
            base=config.restart_backoff,
            cap=config.restart_backoff_max,
            mode=config.restart_mode,
        )
        self.planner = ReconcilePlanner(meta.id, policy)
        self.cluster_id = ""
        self.next_raft_tick = now  # when the Raft side (core ticks, requests, feed) next steps
        self._raft_wake_stale = False  # an input since the last step may have moved it
        self._tick_base = now  # the time of the last Raft tick paid
        self._raft_stepped_at = now
        # Spread the periodic rounds, as independent processes would be.
        self.next_round = now + random.Random(seed + 2).uniform(0, config.reconcile_interval)
        self._dirty = False
        self._last_round = 0.0
        # Raft addresses as gossip reports them: the configuration names the leader only once
        # this node has it, and the first answers to the leader go before that.
        self._raft_addresses: dict[str, str] = {}
        self._alive: dict[str, NodeMeta] = {}  # gossip-alive members: a worker's feed candidates
        self._candidates_stale = False
        self._candidates_at = -CANDIDATES_EVERY_S  # when the feed's candidates were last listed

    # ------------------------------------------------------------------ inputs
    def join(self, seeds: list[str], now: float) -> None:
        """Through one of the seeds, a different one for each node: every seed answers a join
        with the whole membership (a thousand members: ~390 KB, 10-30 ms to decode here), so
        asking all three tripled the pool's join cost and each voter's."""
        others = [s for s in seeds if s != self.meta.gossip_address]
        self.swim.join(others[self._join_pick % len(others) :][:1] if others else [], now)
        self._flush(now)

    def on_frame(self, channel: Channel, payload: bytes, now: float) -> None:
        self._now = now
        if channel != Channel.GOSSIP:
            self._raft_wake_stale = True
        try:
            if channel == Channel.GOSSIP:
                self.swim.receive(self._decode(payload), now)
                # Acks leave at once, not after the rest of the pool's batch: a probe is
                # answered as fast as a node of its own would answer it.
                for address, message in self.swim.drain_outbox():
                    self._send(address, Channel.GOSSIP, encode_message(message))
            elif channel == Channel.RAFT:
                self._pay_ticks(now)  # before the input, so the core's history is a beat ticker's
                self.shell.receive(payload)
            elif channel == Channel.FORWARD:
                self.requests.on_forward(decode_forward(payload), now)
            elif channel == Channel.FEED:
                message = decode_feed(payload)
                if isinstance(message, FeedWatch):
                    self.feed_host.on_watch(message, now)
                else:
                    self.feed.on_message(message, now)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            logger.debug("hollow {}: dropped a malformed {} frame: {}", self.id, channel.name, exc)

    def step(self, now: float) -> None:
        """Whatever is due at ``now`` (ticks, a reconcile round), then everything that came out."""
        self._now = now
        deadline = self.swim.next_deadline()
        if deadline is None or now >= deadline:
            self.swim.tick(now)
        if now >= self.next_raft_tick:
            self._raft_wake_stale = True
            self._pay_ticks(now)
            self._raft_stepped_at = now
            self.requests.expire(now)
            self.requests.retry_parked()
            self.requests.step_held_writes()
            if self._candidates_stale and now >= self._candidates_at + self._candidates_gap():
                # Not on every gossip event: listing the alive members is O(N), and during a
                # join each node hears of N others (22 % of a 300-node pool's join profile).
                self._candidates_stale = False
                self._candidates_at = now
                self.feed_client.set_candidates(
                    feed_candidates(self.id, self._alive.values(), self.config.join)
                )
            self.feed.step(now, self.core.membership.all_ids())
            self.feed_host.expire(now)
        if self.cluster_id and (
            now >= self.next_round or (self._dirty and now - self._last_round >= MIN_ROUND_GAP_S)
        ):
            self._round(now)
        self._flush(now)
        if self._raft_wake_stale:
            # Not only after the Raft side's step: a frame or a round may have made a request
            # wait, parked a watch here or moved this worker's own watch.
            self._raft_wake_stale = False
            self.next_raft_tick = self._raft_wake()

    def _pay_ticks(self, now: float) -> None:
        """The Raft ticks owed since the last one paid, as the Raft actor pays them: all of
        them while none is due (they change only counters), else up to the due one."""
        tick = self.config.tick
        owed = int((now - self._tick_base + TICK_EARLY_S) / tick)
        if owed <= 0:
            return
        due = self.shell.ticks_until_due()
        paid = owed if due is None else min(owed, due)
        for _ in range(paid):
            self.leadership.on_tick(self.core, now)
            self.shell.tick()
        # Late by more than the due tick: the ticks missed meanwhile are dropped, not paid in
        # a burst (the Raft actor's rule).
        self._tick_base = now if paid < owed else self._tick_base + paid * tick

    def _raft_wake(self) -> float:
        """When the Raft side next needs a step, by the Raft actor's rule (``_next_wake``):
        every tick while a request waits, at the tick the core says is due, else after
        IDLE_WAKE_S; sooner for a watch parked here or this worker's own watch. A worker
        (no replica, nothing due) steps about once a second, not 20 times, as a real one."""
        tick = self.config.tick
        if self.requests.waiting:
            return self._tick_base + tick
        due = self.shell.ticks_until_due()
        wake = self._raft_stepped_at + IDLE_WAKE_S if due is None else self._tick_base + due * tick
        for other in (self.feed_host.next_deadline(), self.feed.next_deadline()):
            if other is not None and other < wake:
                wake = other
        if self._candidates_stale:
            wake = min(wake, self._candidates_at + self._candidates_gap())
        return wake

    def next_deadline(self) -> float:
        deadline = min(self.next_raft_tick, self.swim.next_deadline() or self.next_raft_tick)
        if self.cluster_id:
            deadline = min(deadline, self.next_round)
            if self._dirty:
                deadline = min(deadline, self._last_round + MIN_ROUND_GAP_S)
        return deadline

    def _flush(self, now: float) -> None:
        stats = self.stats
        if self.core.has_ready():
            if self.shell.drain():
                self._dirty = True
            self.requests.serve_ready_reads()
            self.feed_host.on_drained()
        if self.leadership.observe(self.core, now):
            self.requests.on_leadership_changed()
        self._sync_cluster_id(now)
        for address, message in self.swim.drain_outbox():
            self._send(address, Channel.GOSSIP, encode_message(message))
        for event in self.swim.drain_events():
            if event.kind in ("joined", "updated", "alive"):
                meta = event.meta
                if event.kind == "joined" and self._connect is not None:
                    self._connect(event.address)  # its gossip address, formatted by the core
                known = self._alive.get(event.node_id)
                if known is None or known.address != meta.address or known.raft_port != meta.raft_port:
                    # Formatted when it changed only: a join brings each node N events.
                    self._raft_addresses[event.node_id] = sys.intern(meta.raft_address)
                self._alive[event.node_id] = meta
                self._candidates_stale = self._raft_wake_stale = True
            elif event.kind in ("dead", "left") and self._alive.pop(event.node_id, None) is not None:
                self._candidates_stale = self._raft_wake_stale = True
            if event.kind == "dead":
                stats.dead_events[event.node_id] = stats.dead_events.get(event.node_id, 0) + 1
        self.swim.drain_foreign()

    # ------------------------------------------------------------------ the reconcile round
    def _round(self, now: float) -> None:
        if self.requests.catching_up:
            # A former worker: its replica lacks tasks the feed showed it (see RequestPath).
            self._last_round = now
            self.next_round = now + self.config.reconcile_interval
            return
        self._dirty = False
        self._last_round = now
        self.next_round = now + self.config.reconcile_interval
        self._raft_wake_stale = True  # its reports wait for answers
        wall = time.time()
        self.planner.begin_round()
        fsm = self.fsm
        wanted = Wanted(fsm.tasks_on_node(self.id), fsm.held_port_tasks(self.id))
        actions = self.planner.wanted(wanted, now)
        actions += self.planner.plan(self.runtime.list_managed(), True, now, now, wall)
        self._carry_out(actions, now)

    def _carry_out(self, actions: list[plan.Action], now: float) -> None:
        pending = list(actions)
        reports: list[plan.ReportState] = []
        while pending:
            action = pending.pop(0)
            match action:
                case plan.StartContainer(task):
                    self.runtime.start(task)
                    pending.extend(self.planner.started(task.id, now, time.time()))
                case plan.StopContainer(task_id, keep, grace):
                    if keep:
                        self.runtime.halt(task_id, grace)
                    else:
                        self.runtime.stop(task_id, grace)
                    self.planner.stopped(task_id)
                case plan.ReportState() as report:
                    reports.append(report)
                case plan.ReleasePorts(node_id, task_ids):
                    command = fsm_commands.ReleasePorts(node_id=node_id, task_ids=task_ids, at=time.time())
                    self._propose(command, now)
                case plan.PortConflict(task_id, host_ip, port, reason):
                    command = fsm_commands.PortConflict(
                        task_id=task_id,
                        node_id=self.id,
                        host_ip=host_ip,
                        port=port,
                        reason=reason,
                        at=time.time(),
                    )
                    self._propose(command, now)
                case plan.RoundAgain():
                    self._dirty = True
                case plan.ListAbsent() | plan.Note():
                    pass  # no engine is shared between hollow nodes; notes are for people
        for batch in plan.report_batches(reports):  # the pass's reports in one entry, as a node's
            self._propose(
                batch.command(self.id, time.time()),
                now,
                lambda outcome, b=batch: self._reports_answered(b, outcome),
                reports=len(batch.reports),
            )

    def _reports_answered(self, batch: plan.ReportBatch, outcome: Outcome) -> None:
        for report, refused in batch.answers(outcome.ok, outcome.value):
            self.planner.report_answered(report.task_id, report.key, not refused, self._now)
            self._count(not refused, str(outcome.code) if not outcome.ok else "refused")

    def _sync_cluster_id(self, now: float) -> None:
        """The cluster this node belongs to: its configuration's, or a worker's feed's."""
        cluster_id = self.core.membership.cluster_id or (
            self.feed_client.cluster_id if self.feed_client.active else ""
        )
        if cluster_id != self.cluster_id:
            self.cluster_id = cluster_id
            self.runtime.set_cluster_id(cluster_id)
            self.swim.set_identity(cluster_id, self.meta.raft_incarnation, now)
            self._dirty = True

    def _fed_tasks_changed(self) -> None:
        self._dirty = True

    def _candidates_gap(self) -> float:
        """A worker whose answers name the members needs candidates only if they all fail:
        refreshed as FeedWorker refreshes a real node's; before that, once a second."""
        return CANDIDATES_EVERY_S if self.feed_client.servers else MIN_CANDIDATES_GAP_S

    @property
    def worker(self) -> bool:
        """Outside the Raft configuration, fed by a member (issue 20)."""
        return self.requests.is_worker

    def _raft_address_of(self, node_id: str) -> str | None:
        return self._raft_addresses.get(node_id) or self.core.membership.address_of(node_id)

    def _send_feed(self, frames: list[tuple[str, bytes]]) -> None:
        for address, payload in frames:
            self._send(address, Channel.FEED, payload)

    def _propose(
        self, command: fsm_commands.Command, now: float, answered: Callback | None = None, reports: int = 0
    ) -> None:
        """Propose ``command`` (carrying ``reports`` task reports: those are counted one by one
        by the caller's ``answered``; any other command counts as one report)."""
        self.stats.entries_sent += 1
        self.stats.reports_sent += reports or 1

        def on_outcome(outcome: Outcome) -> None:
            if not reports:
                self._count(outcome.ok, outcome.code)
            if answered is not None:
                answered(outcome)

        self.requests.propose(
            fsm_commands.encode_command(command), on_outcome, now + self.config.request_timeout
        )

    def _count(self, ok: bool, code: str) -> None:
        if ok:
            self.stats.reports_ok += 1
        else:
            stats = self.stats
            stats.reports_failed += 1
            stats.report_failures[code] = stats.report_failures.get(code, 0) + 1

    # ------------------------------------------------------------------ the shell's host
    def send_frame(self, dst: str, frame: bytes) -> None:
        self.leadership.on_send(self.core, dst, self._now)
        address = self._raft_addresses.get(dst) or self.core.membership.address_of(dst)
        if address is not None:
            self._send(address, Channel.RAFT, frame)

    def apply(self, entry: Entry) -> bool:
        result: Any = None
        if entry.kind == EntryKind.NORMAL:
            result = self.fsm.apply(entry.index, entry.data)
        self.requests.on_applied(entry, result)
        return entry.kind == EntryKind.NORMAL

    def restore(self, snapshot: Snapshot) -> None:
        self.fsm.restore(snapshot.data)
        self.stats.snapshots_installed += 1
        self.feed_host.on_restored()

    def snapshot_source(self) -> Any:
        return self.fsm.snapshot_source()

    def start_snapshot(self, meta: SnapshotMeta, source: Any) -> None:
        # At once, on the pool's thread: a real node does this on a thread of its own.
        snapshot = Snapshot(meta, encode_snapshot(source))
        self.store.write_snapshot(snapshot)
        self.shell.snapshot_taken(snapshot)
        self.stats.snapshots_taken += 1

    def on_read_state(self, context: bytes, index: int) -> None:
        self.requests.on_read_state(context, index)

    def on_failed_read(self, context: bytes) -> None:
        self.requests.on_failed_read(context)

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        logger.debug("hollow {}: dropping frames from {} ({}): {}", self.id, peer, reason, detail)
