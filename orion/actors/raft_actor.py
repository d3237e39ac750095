"""The Brain's shell: routes requests and frames to one Raft node and answers them.

The Ready loop itself (persist, send, apply, snapshot, identity checks, chunked snapshot
streams) is ``orion.raft.shell.RaftShell``, shared with the simulator; this actor is its host.
It drains Ready once per burst of mailbox messages (a ``_Flush`` told to itself), so proposals
that arrive together share one fsync. Writes are answered when their entry is applied; reads
when the FSM has caught up with a read index confirmed by a quorum. Followers forward both to
the leader. Local snapshots are encoded and written on a background thread from a consistent
copy of the FSM, so a big state never delays a heartbeat.
"""

from __future__ import annotations

import contextlib
import itertools
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
from orion.actors.messages import (
    Callback,
    ClusterIdentity,
    LeadershipChanged,
    LocalMeta,
    MemberEvents,
    Outcome,
    Propose,
    Read,
    Shutdown,
    StateChanged,
    Tick,
    outcome_of,
)
from orion.actors.state_view import StateView, run_query
from orion.api.protocol import ErrorCode, NodeInfo, RaftInfo
from orion.cluster import status
from orion.cluster.forwarding import (
    ForwardAnswer,
    ForwardPropose,
    ForwardReadIndex,
    decode_forward,
    encode_forward,
)
from orion.cluster.leader_contact import LeaderContact
from orion.cluster.membership import (
    AddNonVoter,
    MemberStatus,
    Promote,
    Remove,
    UpdateAddress,
    next_change,
)
from orion.cluster.mirror import MemberMirror
from orion.config import NodeConfig
from orion.fsm import commands as fsm_commands
from orion.fsm.snapshot import encode_snapshot
from orion.fsm.state import ClusterState
from orion.model import ACTIVE_STATES, GONE_STATUSES, NodeMeta, NodeStatus, Task
from orion.raft.core import LEADER, NotLeaderError, RaftConfig, RaftCore
from orion.raft.shell import RaftShell
from orion.raft.snapshot_stream import snapshot_checksum
from orion.raft.types import Entry, EntryKind, LogStore, Membership, Snapshot, SnapshotMeta, StoredState
from orion.transport.peer import Channel, PeerTransport

_RESULT_ENCODER = msgspec.msgpack.Encoder()
_TASK_DECODER = msgspec.msgpack.Decoder(Task | None)
MEMBERSHIP_EVERY_TICKS = 4
STALL_TICKS = 2  # ticks this far apart delayed a heartbeat by more than one tick


@dataclass(slots=True)
class _Flush:
    pass


@dataclass(frozen=True, slots=True)
class _RaftFrame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class _ForwardFrame:
    payload: bytes


@dataclass(slots=True)
class _Waiter:
    """A proposal appended by this leader, answered when its index is applied."""

    term: int
    callback: Callback | None
    deadline: float
    forward_to: tuple[str, int] | None = None  # (origin address, req_id) for a forwarded write


@dataclass(slots=True)
class _Remote:
    """A request this follower sent to the leader and still waits for."""

    kind: str  # "propose" or "read"
    deadline: float
    callback: Callback | None
    data: bytes = b""
    query: Callable[[Any], Any] | None = None
    sent_to: str = ""


@dataclass(slots=True)
class _PendingRead:
    query: Callable[[Any], Any]
    callback: Callback
    deadline: float
    index: int = -1  # -1 until the read index is known
    forward_to: tuple[str, int] | None = None  # answer a follower's read-index request instead


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
    ) -> None:
        super().__init__(on_fatal)
        self.config = config
        self.store = store
        self._stored: StoredState | None = stored  # read once by the node at start
        self.incarnation = incarnation or uuid.uuid4().hex
        self.peers = peers
        self.listeners: list[pykka.ActorRef] = []  # told StateChanged and LeadershipChanged
        self.identity_listeners: list[pykka.ActorRef] = []  # told ClusterIdentity
        self.fsm = ClusterState()
        self.core: RaftCore | None = None
        self.shell: RaftShell | None = None
        self._flush_scheduled = False
        self._now = time.monotonic()
        self._ticks = 0
        self._stalls = (0, 0.0)  # late ticks since the last report, and the worst gap (s)
        self._leading_since = 0.0  # when this node last became leader (monotonic)
        self._stall_logged = 0.0
        self._waiters: dict[int, _Waiter] = {}
        self._remote: dict[int, _Remote] = {}
        self._no_leader: list[_Remote] = []
        self._reads: dict[bytes, _PendingRead] = {}
        self._reads_waiting_apply: list[_PendingRead] = []
        self._req_ids = itertools.count(1)
        self.mirror = MemberMirror()
        self._inflight_node_ops: dict[str, float] = {}
        self._config_change_index = 0
        self._was_leader = False
        self._led_since = 0  # the tick this node last became leader
        self._leader_id = ""
        self._cluster_id = ""
        self._bootstrap_at: float | None = None  # when an empty bootstrap node may found a cluster
        self._snapshotter = ThreadPoolExecutor(1, thread_name_prefix=f"{config.node_id}-snapshot")
        self._shutdown_done: Callable[[], None] | None = None
        self._shutdown_deadline = 0.0
        self._view = StateView(self)
        # When this node last heard its leader (leader_contact below). Counted from the start,
        # so a node that never hears one is silent from then on.
        self._leader_heard = self._now

    # ---------------------------------------------------------------- lifecycle
    def on_start(self) -> None:
        stored, self._stored = self._stored, None
        if stored.snapshot is not None:
            self.fsm.restore(stored.snapshot.data)
        config = self.config
        self.core = RaftCore(
            config.node_id,
            stored,
            RaftConfig(
                election_ticks=config.election_ticks,
                heartbeat_ticks=config.heartbeat_ticks,
                snapshot_threshold=config.snapshot_threshold,
                trailing_entries=config.trailing_entries,
                max_size_per_msg=config.max_size_per_msg,
                max_inflight_bytes=config.max_inflight_bytes,
            ),
            random.Random(),
        )
        self.shell = RaftShell(
            self.core,
            self.store,
            self,
            incarnation=self.incarnation,
            snapshot_threshold=config.snapshot_threshold,
            chunk_bytes=config.snapshot_chunk,
            saved_hard_state=stored.hard_state,
        )
        empty = stored.snapshot is None and not stored.entries and stored.hard_state.term == 0
        if config.bootstrap and empty:
            self._bootstrap_at = self._now + config.bootstrap_grace
            logger.info(
                "empty data dir with bootstrap = true: listening {:.1f}s for an existing cluster first",
                config.bootstrap_grace,
            )
            self._maybe_bootstrap()
        self._drain()

    def on_stop(self) -> None:
        if self.shell is not None:
            self.shell.flush_hard_state()
        self._snapshotter.shutdown(wait=True, cancel_futures=True)
        for waiter in self._waiters.values():
            if waiter.callback:
                waiter.callback(Outcome.failure(ErrorCode.UNAVAILABLE, "node is shutting down"))
        self._waiters.clear()

    def add_listener(self, ref: pykka.ActorRef) -> None:
        self.listeners.append(ref)

    def add_identity_listener(self, ref: pykka.ActorRef) -> None:
        self.identity_listeners.append(ref)
        ref.tell(ClusterIdentity(self._cluster_id, self.incarnation))

    def _maybe_bootstrap(self) -> None:
        """Found a new cluster only if nobody spoke for an existing one during the grace: a
        bootstrap node whose data dir was lost must rejoin its cluster, never fork it."""
        if self._bootstrap_at is None:
            return
        core = self.core
        heard = {**self.mirror.clusters_seen(self.config.node_id), **self.shell.heard_clusters}
        if heard or core.term > 0 or core.last_index > 0:
            cluster, via = next(iter(heard.items()), (core.membership.cluster_id, core.leader_id))
            logger.warning(
                "not bootstrapping: cluster {} exists (heard from {}); this node joins it as a new "
                "member (incarnation {}) once the leader adds it",
                cluster or "?",
                via or "?",
                self.incarnation,
            )
            self._bootstrap_at = None
            return
        if self._now < self._bootstrap_at:
            return
        self._bootstrap_at = None
        cluster_id = uuid.uuid4().hex
        membership = Membership(
            voters={self.config.node_id: self.config.raft_address},
            cluster_id=cluster_id,
            incarnations={self.config.node_id: self.incarnation},
        )
        core.bootstrap(membership)
        logger.info(
            "bootstrapping a new cluster {} with {} as its only voter", cluster_id, self.config.node_id
        )

    # ---------------------------------------------------------------- dispatch
    def on_receive(self, message: Any) -> Any:
        try:
            self._handle(message)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            logger.debug("dropped a malformed frame: {}", exc)
        if self.core is not None and self.core.has_ready() and not self._flush_scheduled:
            self._flush_scheduled = True
            self.actor_ref.tell(_Flush())

    def _handle(self, message: Any) -> None:
        match message:
            case _Flush():
                self._flush_scheduled = False
                self._drain()
            case _RaftFrame(payload):
                self.shell.receive(payload)
            case _ForwardFrame(payload):
                self._on_forward(decode_forward(payload))
            case Tick(now, gate):
                if gate is not None:
                    gate.release()
                self._on_tick(now)
            case Propose():
                self._propose(message)
            case Read():
                self._read(message)
            case MemberEvents(events):
                self.mirror.apply_events(events, self._now)
            case LocalMeta(meta):
                self.mirror.set_local(meta, self._now)
            case _SnapshotDone(snapshot, checksum):
                self.shell.snapshot_taken(snapshot, checksum)
                if snapshot is not None:
                    logger.info("snapshot at index {} (log compacted)", snapshot.meta.index)
            case Shutdown(done):
                self._begin_shutdown(done)
            case _:
                logger.warning("raft actor: unexpected message {!r}", type(message).__name__)

    # ---------------------------------------------------------------- frames in
    def frame_handler(self) -> Callable[[Channel, bytes], None]:
        """A transport callback (runs in the transport thread): hands frames to the actor."""
        ref = self.actor_ref

        def on_frame(channel: Channel, payload: bytes) -> None:
            try:
                if channel == Channel.RAFT:
                    ref.tell(_RaftFrame(payload))
                elif channel == Channel.FORWARD:
                    ref.tell(_ForwardFrame(payload))
            except pykka.ActorDeadError:
                pass  # the node is stopping: frames still arriving have nobody to go to

        return on_frame

    # ---------------------------------------------------------------- the shell's host
    def _drain(self) -> None:
        changed = self.shell.drain()
        self._serve_ready_reads()
        self._note_leadership()
        self._note_identity()
        if changed:
            _tell_all(self.listeners, StateChanged())

    def send_frame(self, dst: str, frame: bytes) -> None:
        if dst == self.core.leader_id and self.core.role != LEADER:
            # A follower sends to its leader only in answer to the leader's own messages
            # (appends, heartbeats, snapshot chunks): answering it means having heard from it.
            self._leader_heard = self._now
        membership = self.core.membership
        recorded = membership.address_of(dst)
        # Gossip knows a member's current address (it may have moved); the configuration's
        # is the fallback before gossip has found it, e.g. right after a restart.
        address = self.mirror.raft_address(dst, membership.incarnations.get(dst, "")) or recorded
        if address is None:
            return
        self.peers.send(address, Channel.RAFT, frame)

    def apply(self, entry: Entry) -> bool:
        result: Any = None
        if entry.kind == EntryKind.NORMAL:
            result = self.fsm.apply(entry.index, entry.data)
        elif entry.kind == EntryKind.CONFIG and entry.index >= self._config_change_index:
            self._config_change_index = 0
        waiter = self._waiters.pop(entry.index, None)
        if waiter is not None:
            if waiter.term != entry.term:
                self._finish(
                    waiter, Outcome.failure(ErrorCode.UNAVAILABLE, "leadership changed; not committed")
                )
            else:
                self._finish(waiter, outcome_of(result), entry.index)
        return entry.kind == EntryKind.NORMAL

    def restore(self, snapshot: Snapshot) -> None:
        self.fsm.restore(snapshot.data)
        # The installed snapshot sits in the WAL until a checkpoint folds it in: do that off
        # this thread, or a restart would replay all of it.
        self._snapshotter.submit(self.store.checkpoint)

    def snapshot_source(self) -> Any:
        return self.fsm.snapshot_source()

    def start_snapshot(self, meta: SnapshotMeta, source: Any) -> None:
        ref = self.actor_ref
        store = self.store

        def take() -> None:
            snapshot: Snapshot | None = None
            checksum: int | None = None
            try:
                snapshot = Snapshot(meta, encode_snapshot(source))
                checksum = snapshot_checksum(snapshot.data)  # for streaming it, if ever needed
                store.write_snapshot(snapshot)  # durable, then checkpointed, all off this thread
            except Exception:
                logger.exception("taking a snapshot at index {} failed; will retry", meta.index)
                snapshot = None
            with contextlib.suppress(pykka.ActorDeadError):  # stopped while it was being taken
                ref.tell(_SnapshotDone(snapshot, checksum))

        self._snapshotter.submit(take)

    def on_read_state(self, context: bytes, index: int) -> None:
        self._on_read_state(context, index)

    def on_failed_read(self, context: bytes) -> None:
        self._fail_read(context, "leadership lost before the read was confirmed")

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        logger.warning("raft: dropping frames from {} ({}): {}", peer, reason, detail)

    def _finish(self, waiter: _Waiter, outcome: Outcome, index: int = 0) -> None:
        if waiter.forward_to is not None:
            origin, req_id = waiter.forward_to
            value = outcome.value if isinstance(outcome.value, Task) else None
            answer = ForwardAnswer(
                req_id, outcome.code, outcome.message, index, _RESULT_ENCODER.encode(value)
            )
            self.peers.send(origin, Channel.FORWARD, encode_forward(answer))
        elif waiter.callback is not None:
            waiter.callback(outcome)

    def _note_identity(self) -> None:
        cluster_id = self.core.membership.cluster_id
        if cluster_id != self._cluster_id:
            self._cluster_id = cluster_id
            _tell_all(self.identity_listeners, ClusterIdentity(cluster_id, self.incarnation))

    def _note_leadership(self) -> None:
        core = self.core
        is_leader = core.role == LEADER
        if is_leader != self._was_leader or core.leader_id != self._leader_id:
            if is_leader and not self._was_leader:
                self._led_since = self._ticks
                self._leading_since = self._now
            self._was_leader = is_leader
            self._leader_id = core.leader_id
            logger.info("raft: role {} term {} leader {}", core.role, core.term, core.leader_id or "-")
            _tell_all(self.listeners, LeadershipChanged(is_leader, core.leader_id))
            if not is_leader:
                for index, waiter in list(self._waiters.items()):
                    if index > core.commit_index:
                        # The entry may still commit under the next leader: its fate is unknown.
                        del self._waiters[index]
                        self._finish(
                            waiter, Outcome.failure(ErrorCode.TIMEOUT, "leadership lost; outcome unknown")
                        )
            self._retry_no_leader()

    # ---------------------------------------------------------------- writes
    def _reachable_voters(self) -> list[str]:
        """Voters the leader heard from within an election timeout (the core tracks it).

        A new leader has heard from no one yet in its term: for its first election timeout
        (as etcd's CheckQuorum waits one), a voter not yet heard from counts as reachable, so
        the writes that arrive right after an election (a leader handing over on shutdown)
        are not refused with no_quorum while a quorum has just voted for it."""
        core = self.core
        window = self.config.election_ticks
        new_leader = self._ticks - self._led_since <= window
        reachable = []
        for node_id in core.membership.voters:
            ticks = core.last_contact_ticks(node_id)
            if (ticks is not None and ticks <= window) or (ticks is None and new_leader):
                reachable.append(node_id)
        return reachable

    def _has_quorum_contact(self) -> bool:
        return len(self._reachable_voters()) >= len(self.core.membership.voters) // 2 + 1

    def _propose(self, request: Propose) -> None:
        deadline = self._now + request.timeout
        self._propose_or_forward(_Remote("propose", deadline, request.callback, data=request.data))

    def _propose_or_forward(self, remote: _Remote) -> None:
        core = self.core
        if core.role == LEADER:
            self._propose_local(remote.data, remote.callback, remote.deadline, None)
        elif core.leader_id:
            self._forward(remote)
        else:
            self._no_leader.append(remote)

    def _propose_local(
        self, data: bytes, callback: Callback | None, deadline: float, forward_to: tuple[str, int] | None
    ) -> None:
        if not self._has_quorum_contact():
            waiter = _Waiter(0, callback, deadline, forward_to)
            self._finish(waiter, Outcome.failure(ErrorCode.NO_QUORUM, self._quorum_message()))
            return
        try:
            index = self.core.propose(data)
        except NotLeaderError as exc:
            self._finish(
                _Waiter(0, callback, deadline, forward_to), Outcome.failure(ErrorCode.NOT_LEADER, str(exc))
            )
            return
        self._waiters[index] = _Waiter(self.core.term, callback, deadline, forward_to)

    def _quorum_message(self) -> str:
        voters = self.core.membership.voters
        unreachable = len(voters) - len(self._reachable_voters())
        return f"the cluster cannot commit writes ({unreachable} of {len(voters)} voters unreachable)"

    def _forward(self, remote: _Remote) -> None:
        leader = self.core.leader_id
        address = self.core.membership.address_of(leader)
        if address is None:
            self._no_leader.append(remote)
            return
        req_id = next(self._req_ids)
        remote.sent_to = leader
        self._remote[req_id] = remote
        origin = self.config.raft_address
        message = (
            ForwardPropose(req_id, origin, remote.data)
            if remote.kind == "propose"
            else ForwardReadIndex(req_id, origin)
        )
        self.peers.send(address, Channel.FORWARD, encode_forward(message))

    def _retry_no_leader(self) -> None:
        if not self._no_leader or not (self.core.leader_id or self.core.role == LEADER):
            return
        waiting, self._no_leader = self._no_leader, []
        for remote in waiting:
            if remote.kind == "propose":
                self._propose_or_forward(remote)
            else:
                self._read_or_forward(remote)

    def _on_forward(self, message: Any) -> None:
        match message:
            case ForwardPropose(req_id, origin, data):
                if self.core.role != LEADER:
                    answer = ForwardAnswer(
                        req_id, ErrorCode.NOT_LEADER, f"{self.config.node_id} is not the leader"
                    )
                    self.peers.send(origin, Channel.FORWARD, encode_forward(answer))
                    return
                deadline = self._now + self.config.request_timeout
                self._propose_local(data, None, deadline, (origin, req_id))
            case ForwardReadIndex(req_id, origin):
                if self.core.role != LEADER:
                    answer = ForwardAnswer(
                        req_id, ErrorCode.NOT_LEADER, f"{self.config.node_id} is not the leader"
                    )
                    self.peers.send(origin, Channel.FORWARD, encode_forward(answer))
                    return
                context = f"f:{origin}:{req_id}".encode()
                deadline = self._now + self.config.request_timeout
                self._reads[context] = _PendingRead(_no_query, _ignore, deadline, forward_to=(origin, req_id))
                self.core.read_index(context)
            case ForwardAnswer(req_id, code, text, index, result):
                remote = self._remote.pop(req_id, None)
                if remote is None:
                    return
                if code == ErrorCode.NOT_LEADER:
                    if self._now < remote.deadline:
                        self._no_leader.append(remote)  # retried when a leader is known
                        self._retry_no_leader()
                    elif remote.callback:
                        remote.callback(Outcome.failure(ErrorCode.UNAVAILABLE, text))
                elif code:
                    if remote.callback:
                        remote.callback(Outcome.failure(code, text))
                elif remote.kind == "propose":
                    if remote.callback:
                        remote.callback(Outcome.success(_TASK_DECODER.decode(result) if result else None))
                else:
                    self._reads_waiting_apply.append(
                        _PendingRead(remote.query, remote.callback, remote.deadline, index=index)
                    )
                    self._serve_ready_reads()

    # ---------------------------------------------------------------- reads
    def _read(self, request: Read) -> None:
        if request.stale:
            request.callback(run_query(request.query, self._view))
            return
        remote = _Remote("read", self._now + request.timeout, request.callback, query=request.query)
        self._read_or_forward(remote)

    def _read_or_forward(self, remote: _Remote) -> None:
        core = self.core
        if core.role == LEADER:
            context = f"l:{next(self._req_ids)}".encode()
            self._reads[context] = _PendingRead(remote.query, remote.callback, remote.deadline)
            core.read_index(context)
        elif core.leader_id:
            self._forward(remote)
        else:
            self._no_leader.append(remote)

    def _on_read_state(self, context: bytes, index: int) -> None:
        pending = self._reads.pop(context, None)
        if pending is None:
            return
        if pending.forward_to is not None:
            origin, req_id = pending.forward_to
            self.peers.send(origin, Channel.FORWARD, encode_forward(ForwardAnswer(req_id, index=index)))
            return
        pending.index = index
        self._reads_waiting_apply.append(pending)

    def _fail_read(self, context: bytes, reason: str) -> None:
        pending = self._reads.pop(context, None)
        if pending is None:
            return
        if pending.forward_to is not None:
            origin, req_id = pending.forward_to
            answer = ForwardAnswer(req_id, ErrorCode.NOT_LEADER, reason)
            self.peers.send(origin, Channel.FORWARD, encode_forward(answer))
        else:
            pending.callback(Outcome.failure(ErrorCode.UNAVAILABLE, reason))

    def _serve_ready_reads(self) -> None:
        if not self._reads_waiting_apply:
            return
        applied = self.core.applied_index
        still: list[_PendingRead] = []
        for pending in self._reads_waiting_apply:
            if pending.index <= applied:
                pending.callback(run_query(pending.query, self._view))
            else:
                still.append(pending)
        self._reads_waiting_apply = still

    # ---------------------------------------------------------------- time
    def _on_tick(self, now: float) -> None:
        gap = now - self._now
        if gap > STALL_TICKS * self.config.tick and self._ticks:
            # Something held this thread (or the interpreter) long enough to delay a heartbeat
            # by more than a tick. Said at most once a second, with the worst gap and count;
            # tools/bench_snapshot_pause.py reads these lines.
            self._stalls = (self._stalls[0] + 1, max(self._stalls[1], gap))
        if self._stalls[0] and now - self._stall_logged >= 1.0:
            count, worst = self._stalls
            logger.warning("raft: {} late tick(s), worst {:.0f} ms between ticks", count, worst * 1000)
            self._stalls = (0, 0.0)
            self._stall_logged = now
        self._now = now
        self._ticks += 1
        if self.core.role == LEADER:
            self._leader_heard = now  # a leader is its own contact (CheckQuorum deposes a cut-off one)
        self.shell.tick()
        self._maybe_bootstrap()
        self._expire(now)
        # Requests parked while no leader (or no address for it) was known: try again now.
        self._retry_no_leader()
        if self.core.role == LEADER and self._ticks % MEMBERSHIP_EVERY_TICKS == 0:
            self._manage_membership(now)
            self._sync_nodes_into_fsm(now)
        if self._shutdown_done is not None:
            self._continue_shutdown()

    def _expire(self, now: float) -> None:
        for waiter in _pop_expired(self._waiters, now):
            self._finish(waiter, Outcome.failure(ErrorCode.TIMEOUT, self._timeout_message("write")))
        for remote in _pop_expired(self._remote, now):
            if remote.callback:
                remote.callback(Outcome.failure(ErrorCode.TIMEOUT, self._timeout_message(remote.kind)))
        if self._no_leader:
            expired = [r for r in self._no_leader if r.deadline <= now]
            self._no_leader = [r for r in self._no_leader if r.deadline > now]
            for remote in expired:
                if remote.callback:
                    remote.callback(
                        Outcome.failure(ErrorCode.NO_QUORUM, "no quorum: no leader could be elected in time")
                    )
        for pending in _pop_expired(self._reads, now):
            if pending.forward_to is None:
                pending.callback(Outcome.failure(ErrorCode.NO_QUORUM, self._quorum_message()))
        if self._reads_waiting_apply:
            for pending in [p for p in self._reads_waiting_apply if p.deadline <= now]:
                self._reads_waiting_apply.remove(pending)
                pending.callback(Outcome.failure(ErrorCode.TIMEOUT, "read timed out waiting to catch up"))

    def _timeout_message(self, kind: str) -> str:
        if self.core.role == LEADER and not self._has_quorum_contact():
            return self._quorum_message() + f"; the {kind} may or may not be applied later"
        return f"{kind} timed out; outcome unknown (leader {self.core.leader_id or 'unknown'})"

    # ---------------------------------------------------------------- membership
    def _manage_membership(self, now: float) -> None:
        core = self.core
        if self._config_change_index and self._config_change_index > core.commit_index:
            return
        members = {
            node_id: MemberStatus(
                entry.status,
                self._trusted_since(entry.since),
                entry.meta.raft_address,
                incarnation=entry.meta.raft_incarnation,
                cluster_id=entry.meta.cluster_id,
            )
            for node_id, entry in self.mirror.entries.items()
            if node_id != self.config.node_id
        }
        change = next_change(
            leader_id=self.config.node_id,
            membership=core.membership,
            members=members,
            match_index=core.match_index,
            commit_index=core.commit_index,
            now=now,
            max_voters=self.config.max_voters,
            remove_after=self.config.remove_dead_after,
        )
        if change is None:
            return
        try:
            match change:
                case AddNonVoter(node_id, address, incarnation):
                    self._config_change_index = core.add_non_voter(node_id, address, incarnation)
                    logger.info("raft: adding {} ({}) as a non-voter", node_id, address)
                case Promote(node_id):
                    self._config_change_index = core.promote(node_id)
                    logger.info("raft: promoting {} to voter", node_id)
                case Remove(node_id, reason):
                    self._config_change_index = core.remove(node_id)
                    logger.info("raft: removing {} from the configuration: {}", node_id, reason)
                case UpdateAddress(node_id, address):
                    self._config_change_index = core.update_address(node_id, address)
                    logger.info("raft: {} moved to {}", node_id, address)
        except Exception as exc:  # a change already in flight, or leadership just lost
            logger.debug("raft: membership change {} deferred: {}", change, exc)

    def _trusted_since(self, since: float) -> float:
        """Since when a member's gossip status counts, for decisions this leader makes: not
        before it began to lead. A node that was cut off and just won an election may hold
        stale "dead" reports of healthy nodes; their grace periods start again with its reign,
        while gossip catches up."""
        return max(since, self._leading_since)

    def _sync_nodes_into_fsm(self, now: float) -> None:
        """Record gossip's view of the nodes in the FSM, and reschedule the tasks of dead ones."""
        known = {record.meta.id: record for record in self.fsm.nodes()}
        for node_id, entry in self.mirror.entries.items():
            if self._inflight_node_ops.get(node_id, 0.0) > now:
                continue
            record = known.get(node_id)
            command: Any = None
            if record is None or record.status != entry.status or _capacity_changed(record.meta, entry.meta):
                command = fsm_commands.UpsertNode(meta=entry.meta, status=entry.status, at=time.time())
            elif (
                entry.status in GONE_STATUSES
                and now - self._trusted_since(entry.since) >= self.config.reschedule_after
                and any(t.state in ACTIVE_STATES for t in self.fsm.tasks_on_node(node_id))
            ):
                command = fsm_commands.RescheduleNodeTasks(
                    node_id=node_id, reason=f"node {node_id} is {entry.status}", at=time.time()
                )
            if command is not None:
                self._inflight_node_ops[node_id] = now + 2.0
                self._propose_local(fsm_commands.encode_command(command), None, now + 5.0, None)

    # ---------------------------------------------------------------- status (read queries)
    def status(self) -> RaftInfo:
        return status.raft_info(self.config.node_id, self.core)

    def node_infos(self) -> list[NodeInfo]:
        return status.node_infos(self.core, self.fsm, self.mirror)

    @property
    def is_leader(self) -> bool:
        return self.core.role == LEADER

    def leader_contact(self) -> LeaderContact:
        """When this node last heard its leader and which peers gossip finds alive: what the
        reconciler needs to decide whether to stop its tasks (orion/cluster/leader_contact.py)."""
        me = self.config.node_id
        membership = self.core.membership
        alive = {node for node, entry in self.mirror.entries.items() if entry.status == NodeStatus.ALIVE}
        alive.add(me)
        members = {*membership.all_ids(), me}
        voters = set(membership.voters)
        return LeaderContact(
            last_heard=self._now if self.core.role == LEADER else self._leader_heard,
            leader_id=self.core.leader_id,
            members=len(members),
            members_reachable=len(members & alive),
            voters=len(voters),
            voters_reachable=len(voters & alive),
            cluster_id=membership.cluster_id,
        )

    def gossip_seeds(self) -> list[str]:
        """Gossip addresses of every node the replicated state knows (rejoin after a restart)."""
        return [
            record.meta.gossip_address
            for record in self.fsm.nodes()
            if record.meta.id != self.config.node_id and record.meta.gossip_port
        ]

    # ---------------------------------------------------------------- shutdown
    def _begin_shutdown(self, done: Callable[[], None]) -> None:
        self._shutdown_done = done
        self._shutdown_deadline = self._now + 3.0
        if self.core.role == LEADER and len(self.core.membership.voters) > 1:
            logger.info("raft: handing leadership over before shutdown")
            self.core.transfer_leadership(None)
        else:
            self._continue_shutdown()

    def _continue_shutdown(self) -> None:
        if self.core.role == LEADER and self._now < self._shutdown_deadline:
            return
        done, self._shutdown_done = self._shutdown_done, None
        if done is not None:
            done()


def _tell_all(refs: list[pykka.ActorRef], message: Any) -> None:
    """Tell every listener; one that has stopped (the node is shutting down, actors stop one
    by one) is skipped rather than taking this actor down with it."""
    for ref in refs:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(message)


def _pop_expired(pending: dict[Any, Any], now: float) -> list[Any]:
    """Remove and return the expired items of an insertion-ordered map of requests. Requests
    are inserted with near-equal timeouts, so the scan stops at the first live one instead of
    walking thousands of outstanding writes on every tick."""
    expired = []
    for key, item in pending.items():
        if item.deadline > now:
            break
        expired.append(key)
    return [pending.pop(key) for key in expired]


def _capacity_changed(old: NodeMeta, new: NodeMeta) -> bool:
    return (
        old.memory_total != new.memory_total
        or old.cpu_total != new.cpu_total
        or old.disk_total != new.disk_total
        or old.tags != new.tags
        or old.address != new.address
        or old.api_port != new.api_port
        or old.raft_port != new.raft_port
        or old.gossip_port != new.gossip_port
        or old.http_port != new.http_port
        or old.host_ip != new.host_ip
        or old.port_space != new.port_space
        or old.raft_incarnation != new.raft_incarnation
    )


def _no_query(_fsm: Any) -> None:
    return None


def _ignore(_outcome: Outcome) -> None:
    return None
