"""Many hollow nodes on one thread: ``orion hollow --count N --config FILE``.

The pool reads one node TOML (the same file a real node takes: cluster key, join seeds, Raft and
gossip timing, [resources], [tags]) and makes ``count`` hollow nodes of it. Node ``i`` is
``{prefix}{i}`` at address ``base + i`` (127.1.0.1, 127.1.0.2, ...: every 127/8 address is
loopback on Linux) and ``port``, which serves both its Raft and its gossip, and claims the
config's resources. One loop owns every socket (``HollowTransport``) and every core: it waits
for frames or the next deadline, hands each frame to its node, then steps the nodes that are due.

Every second, the pool writes its figures to ``--stats FILE`` (JSON, replaced atomically): what
the scale runs read (tools/bench/scale_curve.py).
"""

from __future__ import annotations

import gc
import heapq
import ipaddress
import json
import os
import resource
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from loguru import logger

from orion.actors.gossip_actor import gossip_config_from
from orion.config import ConfigError, NodeConfig, load_config
from orion.gossip.messages import SharedDecoder, encoded_updates, shared_alives
from orion.hollow.node import HollowNode, HollowStats
from orion.hollow.transport import HollowTransport
from orion.model import NodeMeta
from orion.security.settings import load_node_security
from orion.transport.frames import Channel

MAX_WAIT_S = 0.05
STATS_EVERY_S = 1.0
JOIN_BATCH = 5  # nodes of a pool that join at once,
JOIN_GAP_S = 0.1  # every this often: 100 nodes in 2 s
YOUNG_GC_THRESHOLD = 10_000  # allocations between collections of the youngest generation
NO_FULL_GC = 10**9  # collections of the middle generation before a full one: never, in practice
DEFAULT_GC_THRESHOLDS = gc.get_threshold()
ENCODED_UPDATES_PER_NODE = 256  # the pool's cache of encoded updates (~600 B each) per node


def hollow_address(base: str, index: int) -> str:
    """The loopback address of hollow node ``index`` (1-based) counted from ``base``."""
    address = ipaddress.IPv4Address(base) + index - 1
    if not address.is_loopback:
        raise ValueError(f"hollow node {index} would be at {address}, outside 127.0.0.0/8")
    return str(address)


def hollow_meta(config: NodeConfig, node_id: str, address: str, port: int) -> NodeMeta:
    """What a hollow node says of itself: the config's claimed resources, a port of its own."""
    return NodeMeta(
        id=node_id,
        role="node",
        address=address,
        raft_port=port,
        gossip_port=port,
        api_port=0,
        http_port=0,
        memory_total=config.memory or 16 << 30,
        cpu_total=config.cpu or 4.0,
        disk_total=config.disk or 50 << 30,
        tags=dict(config.tags),
        version=1,
        host_ip=address,
        port_space=f"hollow:{node_id}",
        raft_incarnation=uuid.uuid4().hex,
    )


class GcPauses:
    """The collector's pauses in this process (a pool holds millions of objects: a full
    collection walks them all, and no node of the pool answers meanwhile)."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self.max_s = 0.0
        self.full = 0
        # The CPU the collections took (``total_s`` is wall time: under load it counts the
        # time the process waited for a core too), and collections by generation.
        self.cpu_s = 0.0
        self.collections = [0, 0, 0]
        self._began = 0.0
        self._began_cpu = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            self._began_cpu = time.thread_time()
            return
        took = time.perf_counter() - self._began
        self.cpu_s += time.thread_time() - self._began_cpu
        self.total_s += took
        self.max_s = max(self.max_s, took)
        generation = info.get("generation", 0)
        self.collections[generation] += 1
        if generation == 2:
            self.full += 1


class HollowPool:
    def __init__(
        self,
        config: NodeConfig,
        count: int,
        *,
        first: int = 1,
        base_address: str = "127.1.0.1",
        port: int = 7600,
        prefix: str = "hollow",
    ) -> None:
        if count < 1:
            raise ValueError(f"count: at least 1 hollow node, got {count}")
        if first < 1:
            raise ValueError(f"first: node numbers start at 1, got {first}")
        self.config = config
        self.stats = HollowStats()
        security = load_node_security(config)
        self.transport = HollowTransport(security.peer_key)
        self.nodes: list[HollowNode] = []
        self._due: list[float] = []
        self._stop = threading.Event()
        self._started_at = time.monotonic()
        self._loop_max_s = 0.0  # the longest pass of the loop since the last stats write
        self._loop_max_ever_s = 0.0
        self._frames = 0
        self.gc_pauses = GcPauses()
        gossip = gossip_config_from(config)
        # One decoded copy of each member's meta for the whole pool, not one per hollow node.
        self.decoder = SharedDecoder()
        # Every update a pool's nodes gossip, encoded once: a node's bound (4,096) is dropped
        # whole many times over in a join of 1,000 (each joiner queues an alive per member).
        encoded_updates.max_entries = max(encoded_updates.max_entries, ENCODED_UPDATES_PER_NODE * count)
        # The alive each shared member state stands for, one per state: what a join answer's
        # thousand states become in a thousand cores, queued and encoded once.
        shared_alives.max_entries = max(shared_alives.max_entries, self.decoder.max_entries)
        now = time.monotonic()
        try:
            for index in range(first, first + count):
                address = hollow_address(base_address, index)
                slot = self.transport.bind(address, port)
                meta = hollow_meta(config, f"{prefix}{index}", address, port)
                node = HollowNode(
                    config,
                    meta,
                    gossip,
                    self._sender(slot),
                    self.stats,
                    now,
                    seed=index,
                    connect=self.transport.connect,
                    decode=self.decoder.decode,
                )
                self.nodes.append(node)
                self._due.append(now)
        except BaseException:
            self.transport.close()
            raise

    def _sender(self, slot: int) -> Any:
        send = self.transport.send

        def node_send(address: str, channel: Channel, payload: bytes) -> None:
            send(slot, address, channel, payload)

        return node_send

    def stop(self) -> None:
        self._stop.set()

    def run(self, stats_path: Path | None = None, duration: float | None = None) -> None:
        """The loop, until ``stop`` (or ``duration`` seconds); closes the sockets at the end."""
        now = time.monotonic()
        end = now + duration if duration is not None else None
        # A few joins at a time: every join brings back the whole membership to decode, and a
        # pool that took them all at once stopped answering probes for seconds (its nodes were
        # suspected by the hundred as they joined, and each suspicion is gossiped N x 12 times).
        joining, seeds, next_join = list(self.nodes), list(self.config.join), now
        next_stats = now
        nodes, due = self.nodes, self._due
        # (deadline, slot) of every node, soonest first; an entry whose deadline is no longer
        # the node's (it was stepped since) is skipped when it comes up. Looking at every node
        # on every pass of the loop cost O(N) per frame batch.
        timers = [(deadline, slot) for slot, deadline in enumerate(due)]
        heapq.heapify(timers)
        gc.callbacks.append(self.gc_pauses)
        quiet_collector()
        try:
            while not self._stop.is_set() and (end is None or now < end):
                if joining and now >= next_join:
                    for node in joining[:JOIN_BATCH]:
                        node.join(seeds, now)
                    del joining[:JOIN_BATCH]
                    next_join = now + JOIN_GAP_S
                first_due = min(timers[0][0], next_join) if joining else timers[0][0]
                wait = max(0.0, min(MAX_WAIT_S, first_due - time.monotonic()))
                touched: set[int] = set()
                frames = self.transport.poll(wait)
                began = time.monotonic()
                # Every frame that came, probes first (no budget per pass: a pass that stopped
                # early let the nodes' timers send at full rate while what they received piled
                # up, 127,000 frames behind at 300 nodes and load 7-15, refutations with them).
                # Timers fire at the end of the frames, not at the poll's time (tried, session 7:
                # a probe started then is sent a whole frame phase after the time its deadlines
                # count from, so a long phase shortened every probe's timeout by its length).
                for slot, channel, payload in frames:
                    nodes[slot].on_frame(channel, payload, time.monotonic())
                    touched.add(slot)
                    self._frames += 1
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    deadline, slot = heapq.heappop(timers)
                    if deadline == due[slot]:  # else stale: the node was stepped since
                        touched.add(slot)
                # Each node once per pass, as before: one due again at once waits for the next.
                for slot in touched:
                    nodes[slot].step(now)
                    due[slot] = deadline = nodes[slot].next_deadline()
                    heapq.heappush(timers, (deadline, slot))
                took = time.monotonic() - began
                if took > self._loop_max_s:
                    self._loop_max_s = took
                    self._loop_max_ever_s = max(self._loop_max_ever_s, took)
                if stats_path is not None and now >= next_stats:
                    next_stats = now + STATS_EVERY_S
                    write_stats(stats_path, self.figures())
                    self._loop_max_s = 0.0
        finally:
            gc.callbacks.remove(self.gc_pauses)
            gc.unfreeze()
            gc.set_threshold(*DEFAULT_GC_THRESHOLDS)
            if stats_path is not None:
                write_stats(stats_path, self.figures())
            self.transport.close()

    def figures(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # Workers (issue 20) hold no replica: their index is the feed's.
        applied = sorted(node.fsm.applied_index or node.feed_client.since for node in self.nodes)
        workers = [node for node in self.nodes if node.worker]
        feeds = [node.feed_client.stats for node in self.nodes]
        stats = self.stats
        return {
            "at": time.time(),
            "uptime_s": time.monotonic() - self._started_at,
            "count": len(self.nodes),
            "in_cluster": sum(1 for node in self.nodes if node.cluster_id),
            "workers": len(workers),
            "containers_on_workers": sum(len(node.runtime.list_managed()) for node in workers),
            "feed_watches": sum(feed.watches for feed in feeds),
            "feed_answers": sum(feed.answers for feed in feeds),
            "feed_timeouts": sum(feed.timeouts for feed in feeds),
            "feed_redirects": sum(feed.redirects for feed in feeds),
            "feed_lagging": sum(feed.lagging for feed in feeds),
            "feed_served": sum(node.feed_host.answered for node in self.nodes),
            "requests_out": sum(node.requests.forwarder.in_flight for node in self.nodes),
            # A sample: listing every node's members each second would cost N * N.
            "members_seen_min": min(
                len(node.swim.members()) for node in self.nodes[:: max(1, len(self.nodes) // 8)]
            ),
            # Gossip updates still to be piggybacked: a join is still spreading while > 0.
            "pending_broadcasts": sum(node.swim.pending_broadcasts for node in self.nodes),
            "applied_min": applied[0],
            "applied_max": applied[-1],
            "containers": sum(len(node.runtime.list_managed()) for node in self.nodes),
            "starts": sum(node.runtime.starts for node in self.nodes),
            "reports_sent": stats.reports_sent,
            "reports_ok": stats.reports_ok,
            "reports_failed": stats.reports_failed,
            "report_failures": dict(stats.report_failures),
            "dead_events": dict(stats.dead_events),
            "snapshots_taken": stats.snapshots_taken,
            "snapshots_installed": stats.snapshots_installed,
            "bytes_from": dict(self.transport.bytes_from),
            "frames_from": dict(self.transport.frames_from),
            "frames_in": self._frames,
            "sent": self.transport.sent,
            "local_frames": self.transport.local_frames,
            "dropped": self.transport.dropped,
            "sockets": self.transport.socket_count,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss_bytes": rss_bytes(),
            "loop_max_s": self._loop_max_s,
            "loop_max_ever_s": self._loop_max_ever_s,
            "decoded_shared": self.decoder.hits,
            "decoded_new": self.decoder.misses,
            "gc_s": round(self.gc_pauses.total_s, 3),
            "gc_max_s": round(self.gc_pauses.max_s, 3),
            "gc_full": self.gc_pauses.full,
            "gc_cpu_s": round(self.gc_pauses.cpu_s, 3),
            "gc_collections": list(self.gc_pauses.collections),
        }


def quiet_collector() -> None:
    """No full collections in a pool: it holds millions of long-lived objects (each node's
    member table, replica, timers) and a full collection walks them all while no node of the
    pool answers a probe (seconds under load: its nodes were suspected meanwhile). A pool's
    garbage is freed by reference counting (messages, updates, events hold no cycles); the
    young generations are still collected, and what is built so far is set aside (freeze)."""
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 20, NO_FULL_GC)


def rss_bytes(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def write_stats(path: Path, figures: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(figures))
    partial.replace(path)


def raise_file_limit(needed: int) -> None:
    """Each hollow node holds a listening socket and its connections: lift the soft limit, and
    the hard one too when allowed (root), so a thousand nodes do not run out of descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    target_hard = hard if hard == resource.RLIM_INFINITY or hard >= needed else needed
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, target_hard))
    except (ValueError, OSError):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-file limit from {}: {}", soft, exc)


def run_hollow(
    config_path: str,
    count: int,
    *,
    first: int = 1,
    base_address: str = "127.1.0.1",
    port: int = 7600,
    prefix: str = "hollow",
    stats_path: str | None = None,
    duration: float | None = None,
) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"orion hollow: {config_path}: {exc}", file=sys.stderr)
        return 2
    logger.remove()
    logger.add(sys.stderr, level="INFO" if config.log_level in ("TRACE", "DEBUG") else config.log_level)
    raise_file_limit(16 * count + 4096)
    try:
        pool = HollowPool(config, count, first=first, base_address=base_address, port=port, prefix=prefix)
    except (ValueError, OSError) as exc:
        print(f"orion hollow: {exc}", file=sys.stderr)
        return 1

    def on_signal(signum: int, _frame: Any) -> None:
        pool.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logger.info(
        "hollow: {} nodes {}{}..{}{} on {}..:{}, joining through {}",
        count,
        prefix,
        first,
        prefix,
        first + count - 1,
        hollow_address(base_address, first),
        port,
        ", ".join(config.join) or "nobody",
    )
    pool.run(Path(stats_path) if stats_path else None, duration)
    return 0
