"""The parts of one node's Raft actor, built once when it starts, and how they are wired.

The actor routes messages to these parts; each part is a plain object with no thread of its
own, so they all run on the actor's thread. Built here rather than in the actor so the wiring
(who calls whom, through which callback) reads in one place.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orion.actors.raft_listeners import RaftListeners
from orion.actors.state_view import StateView, run_query
from orion.actors.submit_placer import SubmitPlacer
from orion.cluster.bootstrap import BootstrapGrace
from orion.cluster.feed_client import FeedClient
from orion.cluster.feed_host import FeedHost
from orion.cluster.feed_worker import FeedWorker, WorkerStatusViews
from orion.cluster.leadership import Leadership
from orion.cluster.membership_driver import MembershipDriver
from orion.cluster.mirror import MemberMirror
from orion.cluster.node_records import NodeRecordSync
from orion.cluster.request_path import RequestPath
from orion.cluster.shutdown_handover import ShutdownHandover
from orion.config import NodeConfig
from orion.fsm.state import ClusterState
from orion.raft.core import RaftConfig, RaftCore
from orion.raft.shell import RaftShell, ShellHost
from orion.raft.types import LogStore, StoredState
from orion.transport.peer import Channel, PeerTransport


@dataclass(frozen=True, slots=True)
class RaftParts:
    fsm: ClusterState
    mirror: MemberMirror  # the members as gossip sees them
    leadership: Leadership  # leader or not, and since when the leader was last heard
    core: RaftCore
    shell: RaftShell  # the Ready loop around the core; the actor is its host
    requests: RequestPath  # writes and reads, forwarded to the leader on a follower
    members: MembershipDriver  # the leader's configuration changes, driven by gossip
    node_records: NodeRecordSync  # the leader's node records in the FSM, driven by gossip
    bootstrap: BootstrapGrace
    shutdown: ShutdownHandover
    listeners: RaftListeners
    feed: FeedHost  # serves workers' watches (orion/cluster/feed_host.py) while this node is a member
    feed_client: Any = None  # this node's own watch while it is a worker (orion/cluster/feed_client.py)


def raft_settings(config: NodeConfig) -> RaftConfig:
    """The Raft core's settings from a node's configuration (a node, and a hollow node alike)."""
    return RaftConfig(
        election_ticks=config.election_ticks,
        heartbeat_ticks=config.heartbeat_ticks,
        snapshot_threshold=config.snapshot_threshold,
        trailing_entries=config.trailing_entries,
        max_size_per_msg=config.max_size_per_msg,
        max_inflight_bytes=config.max_inflight_bytes,
    )


def build_raft_parts(
    config: NodeConfig,
    store: LogStore,
    stored: StoredState,
    host: ShellHost,
    peers: PeerTransport,
    *,
    incarnation: str,
    now: Callable[[], float],
) -> RaftParts:
    """Build the parts around the state ``stored`` was loaded with; ``now`` is the actor's clock
    (the time of its last tick)."""
    fsm = ClusterState()
    if stored.snapshot is not None:
        fsm.restore(stored.snapshot.data)
    mirror = MemberMirror()
    leadership = Leadership(now())
    raft_config = raft_settings(config)
    core = RaftCore(config.node_id, stored, raft_config, random.Random())
    shell = RaftShell(
        core,
        store,
        host,
        incarnation=incarnation,
        snapshot_threshold=config.snapshot_threshold,
        snapshot_log_ratio=config.snapshot_log_ratio,
        chunk_bytes=config.snapshot_chunk,
        saved_hard_state=stored.hard_state,
    )
    views = WorkerStatusViews(config.node_id, core, fsm, mirror, leadership, now)
    view = StateView(views)
    placer = SubmitPlacer(
        fsm,
        strategy=config.strategy,
        dynamic_ports=config.dynamic_ports,
        next_index=lambda: core.last_index + 1,
        term=lambda: core.term,
    )
    # Beyond [raft] max_members a node is a worker: it watches a member for its tasks (issue 20).
    feed_client = FeedClient(
        config.node_id,
        config.raft_address,
        lambda address, payload: peers.send(address, Channel.FEED, payload),
    )
    requests = RequestPath(
        core,
        leadership,
        node_id=config.node_id,
        origin=config.raft_address,
        request_timeout=config.request_timeout,
        election_ticks=config.election_ticks,
        send=lambda address, payload: peers.send(address, Channel.FORWARD, payload),
        run=lambda query: run_query(query, view),
        prepare=placer.prepare,
        feed=feed_client,
        describe_members=mirror.describe_endpoints,
    )
    members = MembershipDriver(
        core,
        mirror,
        leadership,
        node_id=config.node_id,
        max_voters=config.max_voters,
        max_members=config.max_members,
        remove_after=config.remove_dead_after,
    )
    node_records = NodeRecordSync(
        fsm,
        mirror,
        leadership,
        lambda data, deadline: requests.propose_here(data, None, deadline),
        reschedule_after=config.reschedule_after,
    )
    bootstrap = BootstrapGrace(
        core,
        lambda: {**mirror.clusters_seen(config.node_id), **shell.heard_clusters},
        node_id=config.node_id,
        raft_address=config.raft_address,
        incarnation=incarnation,
    )
    feed = FeedHost(
        config.node_id,
        fsm,
        core,
        lambda node_id: _member_address(config, core, mirror, node_id),
        lambda frames: peers.send_batch(Channel.FEED, frames),
    )
    # Only a node that has never been part of a cluster may found one.
    fresh = stored.snapshot is None and not stored.entries and stored.hard_state.term == 0
    if config.bootstrap and fresh:
        bootstrap.start(now(), config.bootstrap_grace)
    listeners = RaftListeners(fsm, incarnation, config.node_id)
    feed_worker = FeedWorker(
        config.node_id,
        feed_client,
        fsm,
        requests,
        on_tasks=listeners.state_changed,
        on_cluster=listeners.cluster_seen,
        host=feed,
    )
    views.worker = feed_worker
    return RaftParts(
        fsm=fsm,
        mirror=mirror,
        leadership=leadership,
        core=core,
        shell=shell,
        requests=requests,
        members=members,
        node_records=node_records,
        bootstrap=bootstrap,
        shutdown=ShutdownHandover(core),
        listeners=listeners,
        feed=feed,
        feed_client=feed_worker,
    )


def _member_address(config: NodeConfig, core: RaftCore, mirror: MemberMirror, node_id: str) -> str | None:
    """A member's Raft address: this node's own, gossip's current one (a member may have moved),
    or the configuration's before gossip has found it."""
    if node_id == config.node_id:
        return config.raft_address
    membership = core.membership
    gossiped = mirror.raft_address(node_id, membership.incarnations.get(node_id, ""))
    return gossiped or membership.address_of(node_id)
