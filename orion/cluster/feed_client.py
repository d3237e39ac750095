"""A worker's side of the worker feed (issue 20): watch one Raft member for what concerns this node.

A node is a *worker* while its own Raft configuration does not contain it (the configuration
is full: ``[raft] max_members``). It holds no replica of the log; instead it keeps, from a
member's answers (``orion.cluster.feed_protocol``), its own task list, the ids of tasks whose
host ports it holds, the volume records its tasks need, the cluster id, and the leader with its
Raft address (where its writes go).

The loop: send ``FeedWatch(node_id, origin, since, wait_ms)`` to one server; every answer is
level-triggered (the node's whole task list at the member's applied index), so a lost answer or a
switch to another server costs one more watch, never a gap. ``since`` is the index of the last
answer *accepted*. After an answer, when no other watch is still out, the next watch goes at once.

Servers: the ``servers`` of the last answer (or redirect), the leader last and the others from
a place given by a hash of the node id (so a thousand workers spread over the members rather
than all watching the first), then the candidates the host gives (gossip-alive members' Raft
addresses, seeds first). A watch unanswered for ``wait + margin``
means the server is gone: the next one is asked. A ``FeedRedirect`` (the node asked holds no
replica) switches at once. After as many failures in a row as there are servers (at least
three), the next attempt waits ``retry_gap``, so a cluster with no member to serve (still
forming, or all redirecting) is not asked in a hot loop.

An index going backwards: a server whose applied index is behind ``since`` (it lags, e.g. a
standby catching up) cannot vouch for a change after ``since``, so it answers at once with the
task list at *its* index. Taking that list would move this node back in time: a task it saw
stopped could look wanted again and be restarted. So an answer of the same cluster with an index
below ``since`` is dropped (its facts too: its leader may be old as well) and counts as a
failure of that server, which is left for the next one; a server that merely caught up to
``since`` (index == since) is taken. An answer from another cluster (the cluster id changed:
the node joined a new cluster at the same address) starts over whatever its index.

Reads that must see the latest state (``want_fresh``) send a watch with ``wait_ms`` 0 and are
served by the first answer accepted after it was sent. Answers carry no request id, so an
answer already on its way when that watch left may serve it: it was made at most one network
transit earlier, which is as fresh as a read of a replica gets.

Pure: no clock, no I/O: time comes in as an argument, frames leave through ``send``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orion.cluster.feed_protocol import FeedAnswer, FeedRedirect, FeedWatch, encode_feed
from orion.model import Task
from orion.volumes.spec import Volume

WATCH_WAIT_S = 10.0  # how long a server may hold a watch without news
ANSWER_MARGIN_S = 3.0  # beyond the wait: transit, and a busy member's Raft thread
FRESH_WAIT_S = 2.0  # a wait_ms=0 watch unanswered this long: the server is gone
RETRY_GAP_S = 1.0  # between attempts once every server failed in a row
MIN_FAST_SWITCHES = 3  # failures in a row that switch at once when few servers are known

FreshDone = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """What an accepted answer changed: the host refreshes its state, its request path, or
    its cluster identity accordingly."""

    tasks_changed: bool
    leader_changed: bool
    cluster_changed: bool


@dataclass(slots=True)
class FeedStats:
    watches: int = 0
    answers: int = 0
    redirects: int = 0
    timeouts: int = 0  # servers given up on for silence
    lagging: int = 0  # answers dropped for an index behind ``since``
    foreign: int = 0  # answers about another node, dropped


@dataclass(slots=True)
class _FreshWaiter:
    needs: int  # the fresh watch that must have been sent for this waiter (a count)
    deadline: float
    done: FreshDone


@dataclass(slots=True)
class _Out:
    """Deadlines of the watches still out at the current server, earliest first."""

    deadlines: list[float] = field(default_factory=list)

    def add(self, deadline: float) -> None:
        self.deadlines.append(deadline)
        self.deadlines.sort()

    def answered(self) -> None:
        if self.deadlines:
            self.deadlines.pop(0)


class FeedClient:
    """``send(address, payload)``: one frame on the FEED channel. ``origin``: this node's Raft
    (peer) address, where answers go."""

    def __init__(
        self,
        node_id: str,
        origin: str,
        send: Callable[[str, bytes], None],
        *,
        wait_s: float = WATCH_WAIT_S,
        margin_s: float = ANSWER_MARGIN_S,
        fresh_wait_s: float = FRESH_WAIT_S,
        retry_gap_s: float = RETRY_GAP_S,
    ) -> None:
        if wait_s <= 0 or margin_s <= 0 or fresh_wait_s <= 0 or retry_gap_s <= 0:
            raise ValueError(
                f"feed client timings must be positive: wait {wait_s}, margin {margin_s}, "
                f"fresh_wait {fresh_wait_s}, retry_gap {retry_gap_s}"
            )
        self.node_id = node_id
        self.origin = origin
        self._send = send
        self.wait_s = wait_s
        self.margin_s = margin_s
        self.fresh_wait_s = fresh_wait_s
        self.retry_gap_s = retry_gap_s
        self.active = False
        # What the last accepted answer said.
        self.since = 0
        self.tasks: list[Task] = []
        self.held_ports: list[str] = []
        self.volumes: list[Volume] = []  # the volume records the node's tasks need
        self.cluster_id = ""
        self.leader_id = ""
        self.leader_address = ""
        self.servers: list[str] = []
        self.member = False
        self.last_answer_at: float | None = None  # when an answer was last accepted
        self.server = ""  # the server watched now ("" before the first watch)
        self.stats = FeedStats()
        self._candidates: list[str] = []
        # Candidates that redirected naming no server: other workers (gossip does not tell
        # members from workers). Skipped, so the next attempt goes back to the top of the list
        # (the seeds) rather than on through a thousand workers one redirect at a time.
        self._not_serving: set[str] = set()
        self._out = _Out()
        self._send_at: float | None = None  # when the next watch goes (None: only on news)
        self._failures = 0  # servers that failed in a row since the last accepted answer
        self._fresh: list[_FreshWaiter] = []
        self._fresh_sent = 0  # fresh watches sent so far

    # ------------------------------------------------------------------ the host's inputs
    def set_active(self, active: bool, now: float) -> None:
        """Watch while ``active`` (this node is not in its own Raft configuration). Going
        inactive answers waiting fresh reads False: the node's own replica serves them now."""
        if active == self.active:
            return
        self.active = active
        self._out = _Out()
        if active:
            self._send_at = now
        else:
            self._send_at = None
            waiters, self._fresh = self._fresh, []
            for waiter in waiters:
                waiter.done(False)

    def set_candidates(self, addresses: Iterable[str]) -> None:
        """Raft addresses worth asking when the answers named no server (gossip-alive members,
        seeds first). Duplicates and this node's own address are left out."""
        seen: dict[str, None] = {}
        for address in addresses:
            if address and address != self.origin:
                seen.setdefault(address, None)
        self._candidates = list(seen)

    def want_fresh(self, done: FreshDone, deadline: float, now: float) -> None:
        """Call ``done(True)`` once an answer sent after this call is accepted (the fed state
        is then as recent as a member's), ``done(False)`` at ``deadline`` or when the node stops
        being a worker."""
        if not self.active:
            done(False)
            return
        self._fresh.append(_FreshWaiter(self._fresh_sent + 1, deadline, done))
        if self._fresh_sent < self._fresh[-1].needs:
            self._watch(now, fresh=True)

    # ------------------------------------------------------------------ time
    def tick(self, now: float) -> None:
        """Send what is due: the first watch, a re-send after silence (to the next server)."""
        if self._fresh:
            expired = [w for w in self._fresh if w.deadline <= now]
            if expired:
                self._fresh = [w for w in self._fresh if w.deadline > now]
                for waiter in expired:
                    waiter.done(False)
        if not self.active:
            return
        if self._out.deadlines and now >= self._out.deadlines[0]:
            self.stats.timeouts += 1
            self._fail(now)
        elif self._send_at is not None and now >= self._send_at:
            self._watch(now, fresh=bool(self._fresh))

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do (None: only when a message arrives)."""
        times = [w.deadline for w in self._fresh]
        if self.active:
            if self._out.deadlines:
                times.append(self._out.deadlines[0])
            if self._send_at is not None:
                times.append(self._send_at)
        return min(times) if times else None

    # ------------------------------------------------------------------ messages
    def on_message(self, message: FeedAnswer | FeedRedirect, now: float) -> FeedUpdate | None:
        """A server's answer or redirect; returns what an accepted answer changed (None when
        nothing was accepted)."""
        if message.node_id != self.node_id:
            self.stats.foreign += 1
            return None
        self._out.answered()
        if isinstance(message, FeedRedirect):
            self.stats.redirects += 1
            if message.servers:
                self.servers = self._clean(message.servers)
            elif self.server and self.server not in self.servers:
                self._not_serving.add(self.server)
            if self.active:
                self._fail(now)
            return None
        return self._on_answer(message, now)

    def _on_answer(self, answer: FeedAnswer, now: float) -> FeedUpdate | None:
        same_cluster = not self.cluster_id or answer.cluster_id == self.cluster_id
        if same_cluster and answer.index < self.since:
            self.stats.lagging += 1
            if self.active:
                self._fail(now)
            return None
        self.stats.answers += 1
        self._failures = 0
        self.last_answer_at = now
        tasks_changed = not same_cluster
        if answer.changed:
            tasks_changed = (
                tasks_changed
                or answer.tasks != self.tasks
                or answer.held_ports != self.held_ports
                or answer.volumes != self.volumes
            )
            self.tasks = list(answer.tasks)
            self.held_ports = list(answer.held_ports)
            self.volumes = list(answer.volumes)
        elif not same_cluster:
            self.tasks, self.held_ports, self.volumes = [], [], []
        leader_changed = (answer.leader_id, answer.leader_address) != (self.leader_id, self.leader_address)
        cluster_changed = answer.cluster_id != self.cluster_id
        self.since = answer.index
        self.cluster_id = answer.cluster_id
        self.leader_id = answer.leader_id
        self.leader_address = answer.leader_address
        if answer.servers:
            self.servers = self._clean(answer.servers)
        self.member = answer.member
        self._serve_fresh()
        if self.servers and self.server not in self.servers:
            self.server = ""  # a candidate found the servers: go to this node's own among them
        if self.active and not self._out.deadlines:
            self._watch(now, fresh=bool(self._fresh))
        return FeedUpdate(tasks_changed, leader_changed, cluster_changed)

    # ------------------------------------------------------------------ reading
    @property
    def leader(self) -> tuple[str, str] | None:
        """(leader id, its Raft address) as the last accepted answer named it; None while
        none is known (or its address is not)."""
        if self.leader_id and self.leader_address:
            return self.leader_id, self.leader_address
        return None

    @property
    def watching(self) -> int:
        """Watches out at the current server."""
        return len(self._out.deadlines)

    # ------------------------------------------------------------------ sending
    def _choices(self) -> list[str]:
        """Who to ask, in order: the servers other than the leader (its thread is the
        cluster's busiest), starting at a place of this node's own so workers spread over
        them; the leader; then the candidates."""
        servers = [s for s in self.servers if s != self.leader_address]
        if servers:
            start = zlib.crc32(self.node_id.encode()) % len(servers)
            servers = servers[start:] + servers[:start]
        if self.leader_address in self.servers:
            servers.append(self.leader_address)
        others = [c for c in self._candidates if c not in self.servers and c not in self._not_serving]
        if not others and self._not_serving:
            self._not_serving.clear()  # every candidate refused: the cluster may have changed, ask again
            others = [c for c in self._candidates if c not in self.servers]
        return servers + others

    def _clean(self, addresses: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(a for a in addresses if a and a != self.origin))

    def _fail(self, now: float) -> None:
        """The current server failed (silent, redirecting, lagging): the next one is asked,
        at once unless every server failed in a row since the last accepted answer."""
        self._failures += 1
        self._out = _Out()
        choices = self._choices()
        if self.servers and self.server not in self.servers:
            self.server = ""  # servers were named since this one was picked: start with them
        elif self.server in choices and len(choices) > 1:
            self.server = choices[(choices.index(self.server) + 1) % len(choices)]
        else:
            self.server = ""  # picked afresh (first choice) by the next watch
        fast = max(MIN_FAST_SWITCHES, len(self.servers))
        self._send_at = now if self._failures < fast else now + self.retry_gap_s
        if self._send_at <= now:
            self._watch(now, fresh=bool(self._fresh))

    def _watch(self, now: float, *, fresh: bool) -> None:
        if not self.server:
            choices = self._choices()
            self.server = choices[0] if choices else ""
        if not self.server:
            self._send_at = now + self.retry_gap_s  # nobody known yet: look again later
            return
        wait = 0.0 if fresh else self.wait_s
        watch = FeedWatch(self.node_id, self.origin, self.since, int(wait * 1000))
        self._send(self.server, encode_feed(watch))
        self.stats.watches += 1
        self._send_at = None
        self._out.add(now + (self.fresh_wait_s if fresh else wait + self.margin_s))
        if fresh:
            self._fresh_sent += 1

    def _serve_fresh(self) -> None:
        if not self._fresh:
            return
        served = [w for w in self._fresh if w.needs <= self._fresh_sent]
        self._fresh = [w for w in self._fresh if w.needs > self._fresh_sent]
        for waiter in served:
            waiter.done(True)
