"""A worker node's glue around its feed client (issue 20): what a node does with the feed's news.

Used alike by a real node's Raft actor and by a hollow node. While the node is outside its own
Raft configuration (``step`` is told the configuration's members), its ``FeedClient`` watches a
member; each accepted answer that changed the node's tasks replaces them in the node's
``ClusterState`` (a partial, fed replica: ``ClusterState.replace_node_tasks``), so the
reconciler and health checks read them as they read a replica; a new leader re-routes the
request path (writes go to the leader the feed names); a new cluster id is the node's identity.
Once the node is in the configuration, its own replica takes over (the first entry or snapshot
it applies drops the fed state) and the client stops watching.

A worker that still holds a replica of the log (a member the cluster removed: the configuration
its own log holds may even still name it, as Raft never tells a removed server it was removed)
keeps that replica untouched for its Raft core (if a seat frees and the leader adds it again,
replication goes on from it), and its reads see a separate fed state instead (``reads``). Such a
member learns of its removal by asking: one that has heard no leader for ``PROBE_AFTER_S``
watches the feed (``probing``); an answer of its own cluster, from a member whose applied index
is past its own, saying it is not in the configuration, makes it ``removed``: it runs as a
worker (its feed host stands down: its replica is stale) until its Raft core hears a leader.

Pure: no I/O or clock of its own (time comes in as an argument).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import msgspec
from loguru import logger

from orion.api.protocol import RaftInfo
from orion.cluster.feed_client import FeedClient
from orion.cluster.feed_protocol import FeedAnswer, FeedRedirect
from orion.cluster.leader_contact import LeaderContact
from orion.cluster.mirror import MemberMirror
from orion.cluster.request_path import RequestPath
from orion.cluster.status import StatusViews
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, NodeStatus

if TYPE_CHECKING:
    from orion.cluster.feed_host import FeedHost

MAX_CANDIDATES = 32  # beyond the seeds: enough to find a member when every server named is gone
# A member that heard no leader this long asks the feed whether the cluster still counts it in
# (an election takes an election timeout or two; a partition's minority asks too, harmlessly).
PROBE_AFTER_S = 10.0
CANDIDATES_EVERY_S = 5.0  # how often a worker that knows its servers refreshes its candidates


class FeedWorker:
    """``on_tasks()``: the node's tasks changed in ``fsm`` (start a reconcile round).
    ``on_cluster(cluster_id)``: the feed named the cluster (the node's identity)."""

    def __init__(
        self,
        node_id: str,
        client: FeedClient,
        fsm: ClusterState,
        requests: RequestPath,
        *,
        on_tasks: Callable[[], None],
        on_cluster: Callable[[str], None],
        host: FeedHost | None = None,
    ) -> None:
        """``host``: this node's feed host, stood down while the node is ``removed``."""
        self.node_id = node_id
        self.client = client
        self.fsm = fsm
        self.requests = requests
        self.host = host
        self._on_tasks = on_tasks
        self._on_cluster = on_cluster
        self._candidates_at: float | None = None
        self.removed = False  # in its own configuration, but the cluster's no longer has it
        self._leader_seen_at: float | None = None  # the last step at which the core knew a leader
        self._was_member = False  # at the last step
        # The fed state of a worker that holds a replica of the log (None: the fed tasks go to
        # ``fsm`` itself, an empty state, or the node is no worker).
        self._fed: ClusterState | None = None

    def step(
        self, now: float, members: Iterable[str], candidates: Callable[[], Iterable[str]] | None = None
    ) -> None:
        """Each Raft tick: ``members`` are the ids in this node's own Raft configuration;
        ``candidates()`` the Raft addresses worth asking (``feed_candidates``), called only
        while the node is a worker, at once while no answer named the servers, else every
        ``CANDIDATES_EVERY_S``."""
        client = self.client
        member = self.node_id in members
        core = self.requests.core
        if core.leader_id or not member or not self._was_member or self._leader_seen_at is None:
            self._leader_seen_at = now  # the wait counts from when it is a member without a leader
        self._was_member = member
        if self.removed and (core.leader_id or not member):
            # A leader replicates to it (a seat freed and it was added again), or its own log
            # has the configuration without it now: the removal is over, or is plain.
            self._set_removed(False)
        probing = member and not self.removed and now - self._leader_seen_at >= PROBE_AFTER_S
        self.requests.probing = probing
        was_active = client.active
        client.set_active(not member or self.removed or probing, now)
        if not client.active:
            self._fed = None
        elif not was_active and self.fsm.applied_index:
            # Its fed state starts empty: ask for the node's whole list, not for news since an
            # earlier watch (whose answers went to a fed state dropped since).
            client.since = 0
        if client.active and candidates is not None:
            last = self._candidates_at
            if not client.servers or last is None or now - last >= CANDIDATES_EVERY_S:
                self._candidates_at = now
                client.set_candidates(candidates())
        client.tick(now)

    def on_message(self, message: FeedAnswer | FeedRedirect, now: float) -> None:
        """A member's answer or redirect (the FEED channel's frames other than watches)."""
        client = self.client
        update = client.on_message(message, now)
        if update is None:
            return
        if self.requests.probing and self._is_removal(client):
            self._set_removed(True)
        if update.tasks_changed and client.active:
            fed = self.fsm
            if fed.applied_index:
                # It holds a replica of the log (it was a member): kept as it is for its Raft
                # core; the fed tasks go to a state of their own, which its reads see.
                if self._fed is None:
                    self._fed = ClusterState()
                fed = self._fed
            fed.replace_node_tasks(
                self.node_id, client.tasks, client.held_ports, client.since, client.volumes
            )
            if self.fed:
                self._on_tasks()
        if update.leader_changed:
            self.requests.on_leadership_changed()
        if update.cluster_changed and client.cluster_id:
            self._on_cluster(client.cluster_id)

    def _is_removal(self, client: FeedClient) -> bool:
        """The answer just accepted says this member is out of the configuration, from a member
        that applied more of the log than this one (so its configuration is the later one)."""
        core = self.requests.core
        return (
            not client.member
            and client.cluster_id == core.membership.cluster_id
            and client.since > core.applied_index
        )

    def _set_removed(self, removed: bool) -> None:
        if removed == self.removed:
            return
        self.removed = removed
        self.requests.probing = False
        if self.host is not None:
            self.host.stood_down = removed
        if removed:
            logger.warning(
                "raft: {} is no longer in the cluster's Raft configuration (removed while away; its "
                "replica stops at index {}): it runs as a worker fed by {} until the leader adds it again",
                self.node_id,
                self.requests.core.applied_index,
                ", ".join(self.client.servers) or "the members",
            )
            if self._fed is not None:
                self._on_tasks()
        else:
            logger.info("raft: {} hears a leader again: its own replica serves it", self.node_id)

    @property
    def reads(self) -> ClusterState:
        """The state this node's reads see: the fed one while it is a worker holding a replica
        of the log (kept for its Raft core, but stale), else ``fsm``."""
        fed = self._fed
        return fed if fed is not None and self.fed else self.fsm

    def next_deadline(self) -> float | None:
        return self.client.next_deadline()

    def leader_contact(self, alive_addresses: set[str], started: float) -> LeaderContact | None:
        """A worker's contact with the cluster, for the reconciler's disconnect rule
        (orion/cluster/leader_contact.py); None while the node is not a fed worker. Its Raft
        core hears no leader, so the feed stands for it: ``last_heard`` is the last accepted
        answer (a member that heard the leader; ``started`` before any), and the members that
        serve the feed stand for the voters. A worker cut off from all of them stops its tasks
        after ``stop_after_disconnect``, as a member would; one that still sees them alive
        (only its server failed) keeps them running."""
        if not self.fed:
            return None
        client = self.client
        servers = client.servers
        reachable = sum(1 for address in servers if address in alive_addresses)
        return LeaderContact(
            last_heard=client.last_answer_at if client.last_answer_at is not None else started,
            leader_id=client.leader_id,
            members=len(servers) + 1,
            members_reachable=reachable + 1,
            voters=len(servers),
            voters_reachable=reachable,
            cluster_id=client.cluster_id,
        )

    @property
    def cluster_id(self) -> str:
        """The cluster the feed names while this node is a worker ("" otherwise)."""
        return self.client.cluster_id if self.client.active else ""

    @property
    def fed(self) -> bool:
        """The node is a worker the feed has answered: its state is the fed one."""
        return self.requests.is_worker


def mirror_candidates(node_id: str, mirror: MemberMirror, seeds: Iterable[str]) -> list[str]:
    """``feed_candidates`` of the members gossip finds alive."""
    alive = (entry.meta for entry in mirror.entries.values() if entry.status == NodeStatus.ALIVE)
    return feed_candidates(node_id, alive, seeds)


def feed_candidates(node_id: str, members: Iterable[NodeMeta], seeds: Iterable[str]) -> list[str]:
    """Raft addresses a worker may watch before an answer names the servers: the gossip-alive
    ``members`` (metas) whose gossip address is a join seed first (a seed is usually a voter),
    then up to ``MAX_CANDIDATES`` others."""
    seed_set = set(seeds)
    first: list[str] = []
    rest: list[str] = []
    for meta in members:
        if meta.id == node_id or not meta.raft_port:
            continue
        if meta.gossip_address in seed_set:
            first.append(meta.raft_address)
        elif len(rest) < MAX_CANDIDATES:
            rest.append(meta.raft_address)
    return first + rest


class WorkerStatusViews(StatusViews):
    """A node's status views, with a worker's leader contact from its feed (``worker`` is set
    once built: the feed worker needs the request path, which needs these views). Reads see
    the worker's fed state where it keeps one apart from a stale replica (``FeedWorker.reads``)."""

    worker: FeedWorker | None = None

    @property
    def fsm(self) -> ClusterState:
        worker = self.worker
        return worker.reads if worker is not None else self._replica

    @fsm.setter
    def fsm(self, fsm: ClusterState) -> None:
        self._replica = fsm

    def status(self) -> RaftInfo:
        """A fed worker's Raft core knows no leader: its role says what it is, and the leader
        is the one its feed names (``orion raft``, and ``/health`` is ok while it has one)."""
        info = super().status()
        worker = self.worker
        if worker is not None and worker.fed:
            return msgspec.structs.replace(info, role="worker", leader_id=worker.client.leader_id)
        return info

    def leader_contact(self) -> LeaderContact:
        worker = self.worker
        if worker is not None and worker.fed:  # a member (the leader too) asks nothing of the mirror
            alive = {
                entry.meta.raft_address
                for entry in self.mirror.entries.values()
                if entry.status == NodeStatus.ALIVE and entry.meta.raft_port
            }
            contact = worker.leader_contact(alive, self.leadership.last_heard(self.core, self._clock()))
            if contact is not None:
                return contact
        return super().leader_contact()
