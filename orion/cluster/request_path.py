"""Every write and linearizable read a node accepts, from arrival to answer.

A leader proposes writes itself and confirms reads by ReadIndex; a write that reaches a leader
that has not heard from a quorum within an election timeout is held, not appended, for at most
one more election timeout: it is appended as soon as answers show a quorum again (a follower
that was merely slow, as on a loaded machine while another voter restarts), refused with
``no_quorum`` when none came (nothing was appended: a clean failure), and sent on to the new
leader if this one steps down meanwhile; a follower forwards both to its
leader; a node that knows no leader parks them until one is known or their deadline passes.
Writes are answered when their entry is applied; reads when the FSM has caught up with a
read index confirmed by a quorum. A leader's ``not_leader`` answer (it lost leadership
before appending) puts a forwarded request back in the queue for the next leader.

A worker (issue 20: a node outside the Raft configuration, fed by ``feed``) has no replica
and its Raft core never learns a leader: its writes go to the leader the feed names. Its
state is a partial replica (its own tasks and their volumes), so a read of the cluster,
linearizable or stale, is refused at once with ``not_leader`` naming the Raft members' API
endpoints (clients ask another endpoint); a node-local one (``local``: the reconciler's, the
health checks', the volume support's, the node's own status) is served from the fed state, a
linearizable one once a fresh feed answer came.

Pure: no threads or I/O; time comes in as an argument, frames leave through ``send``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orion.api.protocol import ErrorCode
from orion.cluster.feed_client import FeedClient
from orion.cluster.forwarding import (
    ForwardAnswer,
    Forwarder,
    ForwardMessage,
    ForwardPropose,
    ForwardReadIndex,
    Remote,
    RequestKind,
    decode_result,
)
from orion.cluster.leadership import Leadership
from orion.cluster.linearizable_reads import LinearizableReads, Query
from orion.cluster.outcome import Callback, Outcome
from orion.cluster.quorum_contact import QuorumContact
from orion.cluster.write_waiters import Waiter, WriteWaiters
from orion.raft.core import NotLeaderError, RaftCore
from orion.raft.types import Entry, RaftRole


@dataclass(slots=True)
class HeldWrite:
    """A write a leader without recent quorum contact holds until ``until_tick`` (its
    leadership's tick count), unappended."""

    data: bytes
    waiter: Waiter
    until_tick: int


class RequestPath:
    """``send(address, payload)``: one frame on the FORWARD channel. ``run(query)``: a read
    query against the FSM, as an outcome. ``origin``: this node's Raft address. ``prepare(data)``:
    a write as the leader appends it."""

    def __init__(
        self,
        core: RaftCore,
        leadership: Leadership,
        *,
        node_id: str,
        origin: str,
        request_timeout: float,
        election_ticks: int,
        send: Callable[[str, bytes], None],
        run: Callable[[Query], Outcome],
        prepare: Callable[[bytes], bytes] | None = None,
        feed: FeedClient | None = None,
        describe_members: Callable[[list[str]], str] | None = None,
    ) -> None:
        self.core = core
        self.feed = feed  # a worker's view of the cluster (None: this node is never a worker)
        # A member that heard no leader for long watches the feed only to learn whether it was
        # removed (orion/cluster/feed_worker.py): no worker for its reads meanwhile.
        self.probing = False
        # Where clients reach the members the feed names (their Raft addresses): a worker's
        # refusal of a cluster read says so (the API endpoints gossip knows).
        self._describe_members = describe_members or _raft_addresses
        # What a leader does to a write just before appending it (the submit placer puts the
        # Judge's decision into a SubmitTask): every write, local or forwarded, passes here.
        self._prepare = prepare
        self.node_id = node_id
        self.request_timeout = request_timeout  # for requests forwarded by followers
        self.quorum = QuorumContact(core, leadership, election_ticks)
        self.forwarder = Forwarder(origin, send)
        self.writes = WriteWaiters(self.forwarder.reply)
        self.reads = LinearizableReads(self.forwarder.reply)
        self.held: list[HeldWrite] = []  # writes waiting for quorum contact, in arrival order
        self._run = run

    # ------------------------------------------------------------------ requests in
    def propose(self, data: bytes, callback: Callback | None, deadline: float) -> None:
        self._route(Remote(RequestKind.PROPOSE, deadline, callback, data=data))

    def read(
        self,
        query: Query,
        callback: Callback,
        deadline: float,
        *,
        stale: bool = False,
        local: bool = False,
        complete: bool = False,
        now: float = 0.0,
    ) -> None:
        """Run ``query`` once linearizable (at once on this node's state when ``stale``).
        ``local``: the query reads only what concerns this node (its tasks, their volumes, its
        own status), so a worker serves it from its fed state (after a fresh feed answer unless
        ``stale``; ``now``: the time, for the feed's watch). A worker refuses every other read,
        stale or not: its state lacks the rest of the cluster. ``complete``: the caller acts on
        what the node's task list lacks (the reconciler), refused while the replica catches up."""
        if complete and self.catching_up:
            # A worker that joined the configuration: its replica is applying the log from its
            # start (or awaits a snapshot) and lacks tasks the feed showed it; read now, the
            # reconciler would remove their containers.
            assert self.feed is not None
            callback(
                Outcome.failure(
                    ErrorCode.UNAVAILABLE,
                    f"this node's replica is catching up (applied {self.core.applied_index}, "
                    f"the worker feed showed index {self.feed.since})",
                )
            )
            return
        if self.is_worker and not local:
            callback(self._worker_refusal())
        elif stale:
            callback(self._run(query))
        elif self.is_worker:
            self._worker_read(query, callback, deadline, now)
        else:
            self._route(Remote(RequestKind.READ, deadline, callback, query=query))

    @property
    def catching_up(self) -> bool:
        """A former worker whose replica has not yet reached the index the feed showed it."""
        feed = self.feed
        return feed is not None and not feed.active and feed.since > self.core.applied_index

    @property
    def is_worker(self) -> bool:
        """Outside the Raft configuration and fed by a member: no replica, no Raft leader."""
        feed = self.feed
        return feed is not None and feed.active and bool(feed.cluster_id) and not self.probing

    def _worker_refusal(self) -> Outcome:
        """A worker's answer to a read of the cluster (linearizable or stale alike: its state
        holds only its own tasks). Retryable, so a client asks its next endpoint; the message
        names the members' API endpoints for a client that has only this one."""
        feed = self.feed
        assert feed is not None
        where = self._describe_members(feed.servers) if feed.servers else "none known yet"
        return Outcome.failure(
            ErrorCode.NOT_LEADER,
            f"{self.node_id} is a worker outside the Raft configuration and holds only its own "
            f"tasks: ask a Raft member ({where})",
        )

    def _worker_read(self, query: Query, callback: Callback, deadline: float, now: float) -> None:
        feed = self.feed
        assert feed is not None

        def fresh(ok: bool) -> None:
            if ok:
                callback(self._run(query))
            else:
                callback(
                    Outcome.failure(ErrorCode.UNAVAILABLE, "no fresh answer from the worker feed in time")
                )

        feed.want_fresh(fresh, deadline, now)

    def _route(self, remote: Remote) -> None:
        core = self.core
        if core.role == RaftRole.LEADER:
            if remote.kind == RequestKind.PROPOSE:
                self.propose_here(remote.data, remote.callback, remote.deadline)
            else:
                assert remote.query is not None and remote.callback is not None
                core.read_index(self.reads.start(remote.query, remote.callback, remote.deadline))
        elif core.leader_id or self._fed_leader() is not None:
            self.forwarder.forward(remote, self._leader_address())
        else:
            self.forwarder.park(remote)

    def _fed_leader(self) -> tuple[str, str] | None:
        """The leader the worker feed names, while this node is fed (a worker)."""
        feed = self.feed
        return feed.leader if feed is not None and feed.active else None

    def _leader_id(self) -> str:
        fed = self._fed_leader()
        return self.core.leader_id or (fed[0] if fed is not None else "")

    def _leader_address(self) -> str | None:
        """Where the leader this node follows listens: its Raft core's, else the feed's
        (None: no leader known, or no address for it)."""
        core = self.core
        if core.leader_id:
            return core.membership.address_of(core.leader_id)
        fed = self._fed_leader()
        return fed[1] if fed is not None else None

    def propose_here(
        self,
        data: bytes,
        callback: Callback | None,
        deadline: float,
        forward_to: tuple[str, int] | None = None,
    ) -> None:
        """Append a write on this node, which should lead; answered when applied."""
        waiter = Waiter(0, callback, deadline, forward_to)
        quorum = self.quorum
        if self.held or not quorum.has_quorum():
            # Behind earlier held writes too, so writes are appended in the order they came.
            self.held.append(HeldWrite(data, waiter, quorum.ticks + quorum.window))
            return
        self._append(data, waiter)

    def _append(self, data: bytes, waiter: Waiter) -> None:
        if self._prepare is not None:
            data = self._prepare(data)
        try:
            index = self.core.propose(data)
        except NotLeaderError as exc:
            self.writes.finish(waiter, Outcome.failure(ErrorCode.NOT_LEADER, str(exc)))
            return
        waiter.term = self.core.term
        self.writes.add(index, waiter)

    def step_held_writes(self) -> None:
        """Append the held writes once a quorum was heard from; refuse those whose election
        timeout passed without it; route them again if this node no longer leads. Called after
        each batch of frames (answers renew contact) and on every tick."""
        if not self.held:
            return
        quorum = self.quorum
        if self.core.role != RaftRole.LEADER:
            held, self.held = self.held, []
            for write in held:
                self._reroute(write)
        elif quorum.has_quorum():
            held, self.held = self.held, []
            for write in held:
                self._append(write.data, write.waiter)
        else:
            ticks = quorum.ticks
            while self.held and self.held[0].until_tick <= ticks:
                self._refuse_held(self.held.pop(0))

    def _refuse_held(self, write: HeldWrite) -> None:
        """Held, never appended: a definite refusal."""
        self.writes.finish(
            write.waiter, Outcome.failure(ErrorCode.NO_QUORUM, self.quorum.no_quorum_message())
        )

    def _reroute(self, write: HeldWrite) -> None:
        """A held write whose leader stepped down: nothing was appended, so a local one goes
        to the next leader and a forwarded one back to its follower, which asks it again."""
        waiter = write.waiter
        if waiter.forward_to is not None:
            refusal = Outcome.failure(ErrorCode.NOT_LEADER, f"{self.node_id} is not the leader")
            self.writes.finish(waiter, refusal)
        else:
            self._route(Remote(RequestKind.PROPOSE, waiter.deadline, waiter.callback, data=write.data))

    def retry_parked(self) -> None:
        """Route the requests parked while no leader was known, if one is known now."""
        if not self.forwarder.has_parked or not (self._leader_id() or self.core.role == RaftRole.LEADER):
            return
        for remote in self.forwarder.take_parked():
            self._route(remote)

    # ------------------------------------------------------------------ forwarded frames
    def on_forward(self, message: ForwardMessage, now: float) -> None:
        match message:
            case ForwardPropose(req_id, origin, data):
                if self._refuse_unless_leader(origin, req_id):
                    return
                self.propose_here(data, None, now + self.request_timeout, (origin, req_id))
            case ForwardReadIndex(req_id, origin):
                if self._refuse_unless_leader(origin, req_id):
                    return
                self.core.read_index(self.reads.start_forwarded(origin, req_id, now + self.request_timeout))
            case ForwardAnswer():
                self._on_answer(message, now)

    def _refuse_unless_leader(self, origin: str, req_id: int) -> bool:
        if self.core.role == RaftRole.LEADER:
            return False
        answer = ForwardAnswer(req_id, ErrorCode.NOT_LEADER, f"{self.node_id} is not the leader")
        self.forwarder.reply(origin, answer)
        return True

    def _on_answer(self, answer: ForwardAnswer, now: float) -> None:
        remote = self.forwarder.answered(answer.req_id)
        if remote is None:
            return
        if answer.code == ErrorCode.NOT_LEADER:
            if now < remote.deadline:
                self.forwarder.park(remote)  # retried when a leader is known
                if self.is_worker and not self.core.leader_id:
                    # The feed named a former leader: ask it for news rather than sending the
                    # request straight back (parked requests go again on the next tick).
                    assert self.feed is not None
                    self.feed.want_fresh(_ignore, remote.deadline, now)
                else:
                    self.retry_parked()
            elif remote.callback:
                remote.callback(Outcome.failure(ErrorCode.UNAVAILABLE, answer.message))
        elif answer.code:
            if remote.callback:
                remote.callback(Outcome(False, None, answer.code, answer.message))
        elif remote.kind == RequestKind.PROPOSE:
            if remote.callback:
                remote.callback(Outcome.success(decode_result(answer.result_kind, answer.result)))
        else:
            assert remote.query is not None and remote.callback is not None
            self.reads.wait_for_apply(remote.query, remote.callback, remote.deadline, answer.index)
            self.serve_ready_reads()

    # ------------------------------------------------------------------ the Ready loop's news
    def on_applied(self, entry: Entry, result: Any) -> None:
        self.writes.on_applied(entry, result)

    def on_read_state(self, context: bytes, index: int) -> None:
        self.reads.on_read_state(context, index)

    def on_failed_read(self, context: bytes) -> None:
        self.reads.fail(context, "leadership lost before the read was confirmed")

    @property
    def waiting(self) -> bool:
        """A request waits for an answer, a leader or its deadline: whoever owns the clock
        must keep calling ``expire`` and ``retry_parked`` (an idle node need not tick at all)."""
        return bool(self.writes) or bool(self.held) or self.forwarder.waiting or self.reads.waiting

    def serve_ready_reads(self) -> None:
        self.reads.serve_ready(self.core.applied_index, self._run)

    def on_leadership_changed(self) -> None:
        core = self.core
        if core.role != RaftRole.LEADER:
            self.writes.on_leadership_lost(core.commit_index)
        self.step_held_writes()
        self._abandon_former_leader()
        self.retry_parked()

    def _abandon_former_leader(self) -> None:
        """Requests forwarded to a leader that is no longer the one this node follows (it died
        or was deposed) would wait out their whole deadline for an answer that rarely comes.
        A read is asked again of the new leader (it changes nothing). A write may have been
        appended by the former leader and still commit, so its caller hears "outcome unknown"
        at once and decides (the client asks again, as after silence; writes carry ids or
        versions that make a repeat harmless). Not while this node is a precandidate: its
        leader has not changed (yet)."""
        core = self.core
        if core.role == RaftRole.PRECANDIDATE:
            # Polling for votes without raising its term: this node stopped hearing its leader
            # for an election timeout (often a stall of its own), and PreVote fails while the
            # others still hear it. Its requests wait for that leader's answer, a new leader, or
            # their deadline (a 100k-task fill had 21 writes answered "outcome unknown" by a
            # follower that was a precandidate for 232 ms, its leader unchanged).
            return
        if core.role == RaftRole.LEADER:
            current: str | None = self.forwarder.origin
        else:
            current = self._leader_address()
        for remote in self.forwarder.take_sent_elsewhere(current):
            if remote.kind == RequestKind.READ:
                remote.sent_to = ""
                self.forwarder.park(remote)  # routed by retry_parked once a leader is known
            elif remote.callback:
                remote.callback(
                    Outcome.failure(
                        ErrorCode.TIMEOUT,
                        f"outcome unknown: the leader changed (now {self._leader_id() or 'none known'}) "
                        "before the former one answered; the write may or may not be applied",
                    )
                )

    # ------------------------------------------------------------------ time
    def expire(self, now: float) -> None:
        """Answer every request whose deadline has passed."""
        quorum = self.quorum
        self.writes.expire(now, lambda: quorum.timeout_message("write"))
        if self.held:
            expired = [write for write in self.held if write.waiter.deadline <= now]
            if expired:
                self.held = [write for write in self.held if write.waiter.deadline > now]
                for write in expired:
                    self._refuse_held(write)
        sent, parked = self.forwarder.expire(now)
        for remote in sent:
            if remote.callback:
                remote.callback(Outcome.failure(ErrorCode.TIMEOUT, quorum.timeout_message(remote.kind)))
        for remote in parked:
            if remote.callback:
                remote.callback(
                    Outcome.failure(ErrorCode.NO_QUORUM, "no quorum: no leader could be elected in time")
                )
        self.reads.expire(now, quorum.no_quorum_message)

    def close(self) -> None:
        """The node stops: every local writer still waiting hears so."""
        stopping = Outcome.failure(ErrorCode.UNAVAILABLE, "node is shutting down")
        self.writes.fail_callers(stopping)
        held, self.held = self.held, []
        for write in held:
            if write.waiter.callback is not None:
                write.waiter.callback(stopping)


def _ignore(_ok: bool) -> None:
    """A fresh feed answer asked for its side effect only (news of the leader)."""


def _raft_addresses(servers: list[str]) -> str:
    return "Raft at " + ", ".join(servers)
