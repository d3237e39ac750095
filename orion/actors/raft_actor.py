"""The Brain's shell: owns the Raft core, the DuckDB store and the cluster FSM.

The order of a Ready is fixed: persist (one transaction per batch: group commit), then
send, then apply, then advance. Ready is drained once per burst of mailbox messages (a
``_Flush`` told to itself), so proposals that arrive together share one fsync.
Writes are answered when their entry is applied; reads when the FSM has caught up with a
read index confirmed by a quorum. Followers forward both to the leader.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pykka
from loguru import logger

from orion.actors.base import NodeActor
from orion.actors.messages import (
    Callback,
    LeadershipChanged,
    LocalMeta,
    MemberEvents,
    Outcome,
    Propose,
    Read,
    Shutdown,
    StateChanged,
    Tick,
)
from orion.api.protocol import NodeInfo, RaftInfo
from orion.cluster.forwarding import (
    ForwardAnswer,
    ForwardPropose,
    ForwardReadIndex,
    decode_forward,
    encode_forward,
)
from orion.cluster.membership import AddNonVoter, MemberStatus, Promote, Remove, next_change
from orion.config import NodeConfig
from orion.fsm import commands as fsm_commands
from orion.fsm.state import ClusterState
from orion.model import ACTIVE_STATES, NodeMeta, Task
from orion.raft.core import NotLeaderError, RaftConfig, RaftCore
from orion.raft.messages import decode_message, encode_message
from orion.raft.types import EntryKind, HardState, LogStore, Membership, StoredState
from orion.transport.peer import Channel, PeerTransport

_RESULT_ENCODER = msgspec.msgpack.Encoder()
_TASK_DECODER = msgspec.msgpack.Decoder(Task | None)
MEMBERSHIP_EVERY_TICKS = 4


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


@dataclass(slots=True)
class _MirrorEntry:
    status: str
    since: float
    meta: NodeMeta


class RaftActor(NodeActor):
    def __init__(
        self,
        config: NodeConfig,
        store: LogStore,
        stored: StoredState,
        peers: PeerTransport,
        on_fatal: Callable[[str], None],
    ) -> None:
        super().__init__(on_fatal)
        self.config = config
        self.store = store
        self._stored: StoredState | None = stored  # read once by the node at start
        self.peers = peers
        self.listeners: list[pykka.ActorRef] = []
        self.fsm = ClusterState()
        self.core: RaftCore | None = None
        self._flush_scheduled = False
        self._now = time.monotonic()
        self._ticks = 0
        self._last_heard: dict[str, int] = {}
        self._waiters: dict[int, _Waiter] = {}
        self._remote: dict[int, _Remote] = {}
        self._no_leader: list[_Remote] = []
        self._reads: dict[bytes, _PendingRead] = {}
        self._reads_waiting_apply: list[_PendingRead] = []
        self._req_ids = itertools.count(1)
        self._mirror: dict[str, _MirrorEntry] = {}
        self._local_meta: NodeMeta | None = None
        self._inflight_node_ops: dict[str, float] = {}
        self._config_change_index = 0
        self._was_leader = False
        self._leader_id = ""
        self._shutdown_done: Callable[[], None] | None = None
        self._shutdown_deadline = 0.0
        self._saved_hard_state = HardState()
        self._unsaved_hard_state: HardState | None = None
        self._view = StateView(self)

    # ---------------------------------------------------------------- lifecycle
    def on_start(self) -> None:
        stored, self._stored = self._stored, None
        self._saved_hard_state = stored.hard_state
        if stored.snapshot is not None:
            self.fsm.restore(stored.snapshot.data)
        empty = stored.snapshot is None and not stored.entries and stored.hard_state.term == 0
        bootstrap = None
        if self.config.bootstrap and empty:
            bootstrap = Membership(voters={self.config.node_id: self.config.raft_address})
            logger.info("bootstrapping a new cluster with {} as its only voter", self.config.node_id)
        self.core = RaftCore(
            self.config.node_id,
            stored,
            RaftConfig(
                election_ticks=self.config.election_ticks,
                heartbeat_ticks=self.config.heartbeat_ticks,
                snapshot_threshold=self.config.snapshot_threshold,
            ),
            random.Random(),
            bootstrap=bootstrap,
        )
        self._drain()

    def on_stop(self) -> None:
        if self._unsaved_hard_state is not None:
            self.store.save(self._unsaved_hard_state, [])
        for waiter in self._waiters.values():
            if waiter.callback:
                waiter.callback(Outcome.failure("unavailable", "node is shutting down"))
        self._waiters.clear()

    def add_listener(self, ref: pykka.ActorRef) -> None:
        self.listeners.append(ref)

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
                msg = decode_message(payload)
                if msg.dst != self.config.node_id:
                    return
                self._last_heard[msg.src] = self._ticks
                self.core.step(msg)
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
                self._on_member_events(events)
            case LocalMeta(meta):
                self._local_meta = meta
                self._mirror[meta.id] = _MirrorEntry("alive", self._now, meta)
            case Shutdown(done):
                self._begin_shutdown(done)
            case _:
                logger.warning("raft actor: unexpected message {!r}", type(message).__name__)

    # ---------------------------------------------------------------- frames in
    def frame_handler(self) -> Callable[[Channel, bytes], None]:
        """A transport callback (runs in the transport thread): hands frames to the actor."""
        ref = self.actor_ref

        def on_frame(channel: Channel, payload: bytes) -> None:
            if channel == Channel.RAFT:
                ref.tell(_RaftFrame(payload))
            elif channel == Channel.FORWARD:
                ref.tell(_ForwardFrame(payload))

        return on_frame

    # ---------------------------------------------------------------- ready loop
    def _drain(self) -> None:
        core = self.core
        changed = False
        while core.has_ready():
            ready = core.ready()
            if ready.snapshot is not None:
                self.store.save_snapshot(ready.snapshot)
                self.fsm.restore(ready.snapshot.data)
                changed = True
            hard_state = ready.hard_state
            vote_settled = hard_state is None or (
                hard_state.term == self._saved_hard_state.term
                and hard_state.vote == self._saved_hard_state.vote
            )
            if core.role == "leader" and vote_settled:
                # A leader may replicate its entries while it writes them (Raft thesis 10.2.1):
                # they count toward its own match only once advance() sees them durable.
                for msg in ready.messages:
                    self._send_raft(msg)
                self._persist(ready.hard_state, ready.entries)
            else:
                self._persist(ready.hard_state, ready.entries)
                for msg in ready.messages:
                    self._send_raft(msg)
            for entry in ready.committed:
                changed |= self._apply(entry)
            for read_state in ready.read_states:
                self._on_read_state(read_state.context, read_state.index)
            for context in ready.failed_reads:
                self._fail_read(context, "leadership lost before the read was confirmed")
            core.advance(ready)
        self._serve_ready_reads()
        self._maybe_snapshot()
        self._note_leadership()
        if changed:
            for listener in self.listeners:
                listener.tell(StateChanged())

    def _persist(self, hard_state: HardState | None, entries: list[Any]) -> None:
        """Write what must be durable before anything is sent. As in etcd's MustSync, a hard
        state whose only change is the commit index needs no fsync of its own (the commit
        index is recoverable from a quorum); it rides along with the next write."""
        if hard_state is not None:
            self._unsaved_hard_state = hard_state
        saved = self._saved_hard_state
        latest = self._unsaved_hard_state
        must_sync = bool(entries) or (
            latest is not None and (latest.term != saved.term or latest.vote != saved.vote)
        )
        if not must_sync:
            return
        self.store.save(latest, entries)
        if latest is not None:
            self._saved_hard_state = latest
            self._unsaved_hard_state = None

    def _send_raft(self, msg: Any) -> None:
        address = self.core.membership.address_of(msg.dst)
        if address is None:
            mirror = self._mirror.get(msg.dst)
            address = mirror.meta.raft_address if mirror else None
        if address is None:
            return
        self.peers.send(address, Channel.RAFT, encode_message(msg))

    def _apply(self, entry: Any) -> bool:
        result: Any = None
        if entry.kind == EntryKind.NORMAL:
            result = self.fsm.apply(entry.index, entry.data)
        elif entry.kind == EntryKind.CONFIG and entry.index >= self._config_change_index:
            self._config_change_index = 0
        waiter = self._waiters.pop(entry.index, None)
        if waiter is not None:
            if waiter.term != entry.term:
                self._finish(waiter, Outcome.failure("unavailable", "leadership changed; not committed"))
            else:
                self._finish(waiter, _outcome_of(result), entry.index)
        return entry.kind == EntryKind.NORMAL

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

    def _maybe_snapshot(self) -> None:
        core = self.core
        if core.applied_index - core.snapshot_index < self.config.snapshot_threshold:
            return
        snapshot = core.compact(core.applied_index, self.fsm.snapshot())
        self.store.save_snapshot(snapshot)
        # Auto-checkpointing is off (its stalls would hit heartbeats at random): fold the WAL
        # into the main file now, right after the snapshot made the log small.
        self.store.checkpoint()
        logger.info("snapshot at index {} (log compacted)", snapshot.meta.index)

    def _note_leadership(self) -> None:
        core = self.core
        is_leader = core.role == "leader"
        if is_leader != self._was_leader or core.leader_id != self._leader_id:
            self._was_leader = is_leader
            self._leader_id = core.leader_id
            logger.info("raft: role {} term {} leader {}", core.role, core.term, core.leader_id or "-")
            for listener in self.listeners:
                listener.tell(LeadershipChanged(is_leader, core.leader_id))
            if not is_leader:
                for index, waiter in list(self._waiters.items()):
                    if index > core.commit_index:
                        # The entry may still commit under the next leader: its fate is unknown.
                        del self._waiters[index]
                        self._finish(waiter, Outcome.failure("timeout", "leadership lost; outcome unknown"))
            self._retry_no_leader()

    # ---------------------------------------------------------------- writes
    def _has_quorum_contact(self) -> bool:
        voters = self.core.membership.voters
        window = self.config.election_ticks
        heard = sum(
            1
            for node_id in voters
            if node_id == self.config.node_id
            or self._ticks - self._last_heard.get(node_id, -(10**9)) <= window
        )
        return heard >= len(voters) // 2 + 1

    def _propose(self, request: Propose) -> None:
        deadline = self._now + request.timeout
        self._propose_or_forward(_Remote("propose", deadline, request.callback, data=request.data))

    def _propose_or_forward(self, remote: _Remote) -> None:
        core = self.core
        if core.role == "leader":
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
            self._finish(waiter, Outcome.failure("no_quorum", self._quorum_message()))
            return
        try:
            index = self.core.propose(data)
        except NotLeaderError as exc:
            self._finish(_Waiter(0, callback, deadline, forward_to), Outcome.failure("not_leader", str(exc)))
            return
        self._waiters[index] = _Waiter(self.core.term, callback, deadline, forward_to)

    def _quorum_message(self) -> str:
        voters = self.core.membership.voters
        reachable = [
            n
            for n in voters
            if n == self.config.node_id
            or self._ticks - self._last_heard.get(n, -(10**9)) <= self.config.election_ticks
        ]
        return (
            f"no quorum: the cluster cannot commit writes ({len(voters) - len(reachable)} of "
            f"{len(voters)} voters unreachable)"
        )

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
        if not self._no_leader or not (self.core.leader_id or self.core.role == "leader"):
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
                if self.core.role != "leader":
                    answer = ForwardAnswer(req_id, "not_leader", f"{self.config.node_id} is not the leader")
                    self.peers.send(origin, Channel.FORWARD, encode_forward(answer))
                    return
                deadline = self._now + self.config.request_timeout
                self._propose_local(data, None, deadline, (origin, req_id))
            case ForwardReadIndex(req_id, origin):
                if self.core.role != "leader":
                    answer = ForwardAnswer(req_id, "not_leader", f"{self.config.node_id} is not the leader")
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
                if code == "not_leader":
                    if self._now < remote.deadline:
                        self._no_leader.append(remote)  # retried when a leader is known
                        self._retry_no_leader()
                    elif remote.callback:
                        remote.callback(Outcome.failure("unavailable", text))
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
            request.callback(_run_query(request.query, self._view))
            return
        remote = _Remote("read", self._now + request.timeout, request.callback, query=request.query)
        self._read_or_forward(remote)

    def _read_or_forward(self, remote: _Remote) -> None:
        core = self.core
        if core.role == "leader":
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
            answer = ForwardAnswer(req_id, "not_leader", reason)
            self.peers.send(origin, Channel.FORWARD, encode_forward(answer))
        else:
            pending.callback(Outcome.failure("unavailable", reason))

    def _serve_ready_reads(self) -> None:
        if not self._reads_waiting_apply:
            return
        applied = self.core.applied_index
        still: list[_PendingRead] = []
        for pending in self._reads_waiting_apply:
            if pending.index <= applied:
                pending.callback(_run_query(pending.query, self._view))
            else:
                still.append(pending)
        self._reads_waiting_apply = still

    # ---------------------------------------------------------------- time
    def _on_tick(self, now: float) -> None:
        self._now = now
        self._ticks += 1
        self.core.tick()
        self._expire(now)
        # Requests parked while no leader (or no address for it) was known: try again now.
        self._retry_no_leader()
        if self.core.role == "leader" and self._ticks % MEMBERSHIP_EVERY_TICKS == 0:
            self._manage_membership(now)
            self._sync_nodes_into_fsm(now)
        if self._shutdown_done is not None:
            self._continue_shutdown()

    def _expire(self, now: float) -> None:
        for waiter in _pop_expired(self._waiters, now):
            self._finish(waiter, Outcome.failure("timeout", self._timeout_message("write")))
        for remote in _pop_expired(self._remote, now):
            if remote.callback:
                remote.callback(Outcome.failure("timeout", self._timeout_message(remote.kind)))
        if self._no_leader:
            expired = [r for r in self._no_leader if r.deadline <= now]
            self._no_leader = [r for r in self._no_leader if r.deadline > now]
            for remote in expired:
                if remote.callback:
                    remote.callback(
                        Outcome.failure("no_quorum", "no quorum: no leader could be elected in time")
                    )
        for pending in _pop_expired(self._reads, now):
            if pending.forward_to is None:
                pending.callback(Outcome.failure("no_quorum", self._quorum_message()))
        if self._reads_waiting_apply:
            for pending in [p for p in self._reads_waiting_apply if p.deadline <= now]:
                self._reads_waiting_apply.remove(pending)
                pending.callback(Outcome.failure("timeout", "read timed out waiting to catch up"))

    def _timeout_message(self, kind: str) -> str:
        if self.core.role == "leader" and not self._has_quorum_contact():
            return self._quorum_message() + f"; the {kind} may or may not be applied later"
        return f"{kind} timed out; outcome unknown (leader {self.core.leader_id or 'unknown'})"

    # ---------------------------------------------------------------- membership
    def _on_member_events(self, events: list[Any]) -> None:
        for event in events:
            previous = self._mirror.get(event.node_id)
            since = previous.since if previous and previous.status == event.kind else self._now
            status = {"joined": "alive", "updated": "alive", "alive": "alive"}.get(event.kind, event.kind)
            if previous is not None and previous.status == status:
                since = previous.since
            self._mirror[event.node_id] = _MirrorEntry(status, since, event.meta)

    def _manage_membership(self, now: float) -> None:
        core = self.core
        if self._config_change_index and self._config_change_index > core.commit_index:
            return
        members = {
            node_id: MemberStatus(entry.status, entry.since, entry.meta.raft_address)
            for node_id, entry in self._mirror.items()
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
                case AddNonVoter(node_id, address):
                    self._config_change_index = core.add_non_voter(node_id, address)
                    logger.info("raft: adding {} ({}) as a non-voter", node_id, address)
                case Promote(node_id):
                    self._config_change_index = core.promote(node_id)
                    logger.info("raft: promoting {} to voter", node_id)
                case Remove(node_id, reason):
                    self._config_change_index = core.remove(node_id)
                    logger.info("raft: removing {} from the configuration: {}", node_id, reason)
        except Exception as exc:  # a change already in flight, or leadership just lost
            logger.debug("raft: membership change {} deferred: {}", change, exc)

    def _sync_nodes_into_fsm(self, now: float) -> None:
        """Record gossip's view of the nodes in the FSM, and reschedule the tasks of dead ones."""
        known = {record.meta.id: record for record in self.fsm.nodes()}
        for node_id, entry in self._mirror.items():
            if self._inflight_node_ops.get(node_id, 0.0) > now:
                continue
            record = known.get(node_id)
            command: Any = None
            if record is None or record.status != entry.status or _capacity_changed(record.meta, entry.meta):
                command = fsm_commands.UpsertNode(meta=entry.meta, status=entry.status, at=time.time())
            elif (
                entry.status in ("dead", "left")
                and now - entry.since >= self.config.reschedule_after
                and any(t.state in ACTIVE_STATES for t in self.fsm.tasks_on_node(node_id))
            ):
                command = fsm_commands.RescheduleNodeTasks(
                    node_id=node_id, reason=f"node {node_id} is {entry.status}", at=time.time()
                )
            if command is not None:
                self._inflight_node_ops[node_id] = now + 2.0
                self._propose_local(fsm_commands.encode_command(command), None, now + 5.0, None)

    # ---------------------------------------------------------------- status
    def status(self) -> RaftInfo:
        core = self.core
        return RaftInfo(
            node_id=self.config.node_id,
            role=core.role,
            term=core.term,
            leader_id=core.leader_id,
            commit_index=core.commit_index,
            applied_index=core.applied_index,
            last_index=core.last_index,
            voters=sorted(core.membership.voters),
            non_voters=sorted(core.membership.non_voters),
        )

    def node_infos(self, fsm: ClusterState) -> list[NodeInfo]:
        membership = self.core.membership
        records = {record.meta.id: record for record in fsm.nodes()}
        ids = sorted({*records, *self._mirror, *membership.all_ids()})
        infos = []
        for node_id in ids:
            record = records.get(node_id)
            mirror = self._mirror.get(node_id)
            meta = mirror.meta if mirror else (record.meta if record else None)
            status = mirror.status if mirror else (record.status if record else "unknown")
            memory, cpu, disk = fsm.allocated(node_id)
            suffrage = (
                "voter"
                if node_id in membership.voters
                else "nonvoter"
                if node_id in membership.non_voters
                else "none"
            )
            infos.append(
                NodeInfo(
                    id=node_id,
                    address=meta.address if meta else (membership.address_of(node_id) or ""),
                    status=status,
                    role="leader" if node_id == self.core.leader_id else "follower",
                    suffrage=suffrage,
                    meta=meta,
                    allocated_memory=memory,
                    allocated_cpu=cpu,
                    allocated_disk=disk,
                )
            )
        return infos

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
        if self.core.role == "leader" and len(self.core.membership.voters) > 1:
            logger.info("raft: handing leadership over before shutdown")
            self.core.transfer_leadership(None)
        else:
            self._continue_shutdown()

    def _continue_shutdown(self) -> None:
        if self.core.role == "leader" and self._now < self._shutdown_deadline:
            return
        done, self._shutdown_done = self._shutdown_done, None
        if done is not None:
            done()


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
    )


def _outcome_of(result: Any) -> Outcome:
    if isinstance(result, fsm_commands.CommandError):
        code = "not_found" if result.message.startswith("no task with id") else "invalid"
        return Outcome.failure(code, result.message)
    return Outcome.success(result)


class StateView:
    """What a read query sees: the FSM plus the node's Raft and membership status. Queries
    run in the Raft actor's thread, so they see a consistent state without copies."""

    __slots__ = ("_actor",)

    def __init__(self, actor: RaftActor) -> None:
        self._actor = actor

    @property
    def fsm(self) -> ClusterState:
        return self._actor.fsm

    def raft(self) -> RaftInfo:
        return self._actor.status()

    def nodes(self) -> list[NodeInfo]:
        return self._actor.node_infos(self._actor.fsm)

    def gossip_seeds(self) -> list[str]:
        return self._actor.gossip_seeds()

    @property
    def is_leader(self) -> bool:
        return self._actor.core.role == "leader"


def _run_query(query: Callable[[StateView], Any], view: StateView) -> Outcome:
    try:
        return Outcome.success(query(view))
    except LookupError as exc:
        return Outcome.failure("not_found", str(exc.args[0]) if exc.args else "not found")


def _no_query(_fsm: Any) -> None:
    return None


def _ignore(_outcome: Outcome) -> None:
    return None
