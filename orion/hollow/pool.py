"""Many hollow nodes on one thread: ``orion hollow --count N --config FILE``.

The pool reads one node TOML (the same file a real node takes: cluster key, join seeds, Raft and
gossip timing, [resources], [tags]) and makes ``count`` hollow nodes of it. Node ``i`` is
``{prefix}{i}`` at address ``base + i`` (127.1.0.1, 127.1.0.2, ...: every 127/8 address is
loopback on Linux) and ``port``, which serves both its Raft and its gossip, and claims the
config's resources. One loop owns every socket (``HollowTransport``) and every core: it waits
for frames or the next deadline, hands each frame to its node, then steps the nodes that are due.

When the pool cannot keep up (a thousand nodes' gossip on a share of two cores, where a real
fleet has a CPU per node), it decides where the lack of CPU falls, so that it slows the epidemic
instead of breaking the protocol's timing (a late ack makes a live node suspect; every false
suspicion is two more updates for every member to relay 16 times). What a real node sees, and
what a pool's node sees instead:

- Probes, acks, ping-reqs and nacks (and Raft, feed and forwarded requests) are handled in the
  pass that read them, as before: a node answers a ping as fast as its pool can poll.
- Other gossip frames (gossip messages, push-pulls) wait in their node's backlog; a pass handles
  them oldest first for at most ``BACKLOG_BUDGET_S``. A real node handles them on arrival.
- A node's timers (probe deadlines, suspicions running out, its gossip round, Raft ticks) never
  fire while gossip that reached it waits: its backlog is handled first. A real node would have
  handled it on arrival, before the deadline; so no suspicion runs out here while the refutation
  that came in time sits in the pool.
- While the oldest frame waiting is older than ``GOSSIP_HOLD_AGE_S``, the nodes stepped in a pass
  skip their gossip round (``SwimCore.hold_gossip``: one gossip interval at a time). A real
  node gossips every interval whatever its neighbours' load. So a saturated pool spreads updates
  more slowly than a fleet of real nodes would (what it sends, it sends on pings and acks and
  on the rounds it is given): a join measured here is bounded by the rig, an upper bound of the
  protocol's time.
- A pass moves the pool's clock by at most ``MAX_PASS_S``: what a longer pass takes past it is
  lost by the clock (``clock_lag_s`` in the figures), and all the run's pools share the largest
  lag (``SharedClock``). A node of a starved pool thus sees the time it would have seen with a
  CPU of its own: its probe timeouts, suspicions, gossip rounds and Raft ticks are not run out
  by the seconds its pool waited for a core, and its neighbours in other pools are as slow as
  it is. The real voters keep real time: to them a lagging pool's nodes are slow nodes (their
  probes may time out), which is what ``scale_curve --gossip-scale`` is for. A join or a
  placement measured in real time includes the lag (the figures give it).

Nothing of this changes anything while the pool keeps up (no frame waits past a pass, no pass
takes longer than ``MAX_PASS_S``).

Every second, the pool writes its figures to ``--stats FILE`` (JSON, replaced atomically): what
the scale runs read (tools/bench/scale_curve.py).
"""

from __future__ import annotations

import gc
import heapq
import ipaddress
import json
import mmap
import os
import resource
import signal
import struct
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from loguru import logger

from orion.actors.gossip_actor import gossip_config_from
from orion.config import ConfigError, NodeConfig, load_config
from orion.gossip.messages import SharedDecoder, encoded_updates, shared_alives
from orion.hollow.node import HollowNode, HollowStats
from orion.hollow.transport import HollowTransport, is_probe
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
# A pass handles the gossip frames waiting for at most this long (probes, and the frames of the
# nodes whose timers are due, always), and holds its nodes' gossip rounds while the oldest frame
# waiting is older than a gossip interval's worth (class doc: "When the pool cannot keep up").
BACKLOG_BUDGET_S = 0.1
# The most a pass moves the pool's clock: the rest of a longer pass is lag (class doc).
MAX_PASS_S = 0.1
GOSSIP_HOLD_AGE_S = 0.2
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
        self._lag = 0.0  # seconds the pool's clock is behind monotonic time (it fell behind)
        self._floor = 0.0  # the latest time handed to a node: the clock never goes back
        self._shared_clock: SharedClock | None = None
        self._backlog = 0  # gossip frames read and not handled yet
        self._backlog_max_age_s = 0.0  # the oldest of them when the pool held gossip
        self._holding_passes = 0  # passes that held its nodes' gossip rounds
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

    def clock(self) -> float:
        """The time the pool's nodes see: monotonic time less what the pool (or, with a shared
        clock, the slowest pool of the run) fell behind; never earlier than a time already seen."""
        at = time.monotonic() - self._lag
        return at if at > self._floor else self._floor

    def share_clock(self, clock: SharedClock) -> None:
        """Run on the same clock as the run's other pools (class doc)."""
        self._shared_clock = clock

    def _drain_node(self, slot: int, waiting: deque[tuple[float, bytes]], clock: Any) -> None:
        node = self.nodes[slot]
        self._backlog -= len(waiting)
        for _, payload in waiting:
            node.on_frame(Channel.GOSSIP, payload, clock())

    def stop(self) -> None:
        self._stop.set()

    def run(self, stats_path: Path | None = None, duration: float | None = None) -> None:
        """The loop, until ``stop`` (or ``duration`` seconds); closes the sockets at the end."""
        real = time.monotonic
        end = real() + duration if duration is not None else None
        now = self.clock()
        # A few joins at a time: every join brings back the whole membership to decode, and a
        # pool that took them all at once stopped answering probes for seconds (its nodes were
        # suspected by the hundred as they joined, and each suspicion is gossiped N x 12 times).
        joining, seeds, next_join = list(self.nodes), list(self.config.join), now
        next_stats = real()
        nodes, due = self.nodes, self._due
        # (deadline, slot) of every node, soonest first; an entry whose deadline is no longer
        # the node's (it was stepped since) is skipped when it comes up. Looking at every node
        # on every pass of the loop cost O(N) per frame batch.
        timers = [(deadline, slot) for slot, deadline in enumerate(due)]
        heapq.heapify(timers)
        # Gossip frames not handled yet, by node: (read at, payload), oldest first; ``order``
        # names the node of each in the order they were read (stale once its node was drained).
        backlog: dict[int, deque[tuple[float, bytes]]] = {}
        order: deque[int] = deque()
        gossip_interval = gossip_config_from(self.config).gossip_interval
        gc.callbacks.append(self.gc_pauses)
        quiet_collector()
        try:
            while not self._stop.is_set() and (end is None or real() < end):
                now = self.clock()
                if joining and now >= next_join:
                    for node in joining[:JOIN_BATCH]:
                        node.join(seeds, now)
                    del joining[:JOIN_BATCH]
                    next_join = now + JOIN_GAP_S
                first_due = min(timers[0][0], next_join) if joining else timers[0][0]
                wait = 0.0 if order else max(0.0, min(MAX_WAIT_S, first_due - self.clock()))
                touched: set[int] = set()
                frames = self.transport.poll(wait)
                began = real()
                # The pool's clock during a pass: real time, but at most MAX_PASS_S past the
                # pass's start (class doc: "When the pool cannot keep up").
                start = self.clock()
                last = start + MAX_PASS_S

                def clock(last: float = last) -> float:
                    at = real() - self._lag
                    return at if at < last else last

                # Probes (and Raft, feed and forwarded requests) are handled in the pass that
                # read them; other gossip frames wait in their node's backlog.
                for slot, channel, payload in frames:
                    self._frames += 1
                    if channel is Channel.GOSSIP and not is_probe(channel, payload):
                        waiting = backlog.get(slot)
                        if waiting is None:
                            waiting = backlog[slot] = deque()
                        waiting.append((start, payload))
                        order.append(slot)
                        self._backlog += 1
                        continue
                    nodes[slot].on_frame(channel, payload, clock())
                    touched.add(slot)
                now = clock()
                due_slots: list[int] = []
                while timers and timers[0][0] <= now:
                    deadline, slot = heapq.heappop(timers)
                    if deadline == due[slot]:  # else stale: the node was stepped since
                        due_slots.append(slot)
                # A node's timers never fire while gossip that reached it sits unhandled: a real
                # node would have handled it on arrival (a refutation, say, before its suspicion
                # of the sender ran out).
                for slot in due_slots:
                    touched.add(slot)
                    if slot in backlog:
                        self._drain_node(slot, backlog.pop(slot), clock)
                # The rest of the backlog, oldest first, for at most BACKLOG_BUDGET_S.
                until = began + BACKLOG_BUDGET_S
                while order and real() < until:
                    slot = order.popleft()
                    waiting = backlog.get(slot)
                    if not waiting:
                        continue  # drained with its node's timers
                    _, payload = waiting.popleft()
                    if not waiting:
                        del backlog[slot]
                    self._backlog -= 1
                    nodes[slot].on_frame(Channel.GOSSIP, payload, clock())
                    touched.add(slot)
                while order and order[0] not in backlog:
                    order.popleft()
                oldest = backlog[order[0]][0][0] if order else None
                now = clock()
                hold = oldest is not None and now - oldest > GOSSIP_HOLD_AGE_S
                if hold:
                    self._holding_passes += 1
                    self._backlog_max_age_s = max(self._backlog_max_age_s, now - oldest)
                # Each node once per pass, as before: one due again at once waits for the next.
                for slot in touched:
                    node = nodes[slot]
                    if hold:
                        node.swim.hold_gossip(now + gossip_interval)
                    node.step(now)
                    due[slot] = deadline = node.next_deadline()
                    heapq.heappush(timers, (deadline, slot))
                took = real() - began
                self._floor = clock()
                if took > MAX_PASS_S:
                    # The pool fell behind: its nodes' clock lost what the pass took past MAX_PASS_S.
                    self._lag += took - MAX_PASS_S
                if self._shared_clock is not None:
                    self._lag = self._shared_clock.publish(self._lag)
                if took > self._loop_max_s:
                    self._loop_max_s = took
                    self._loop_max_ever_s = max(self._loop_max_ever_s, took)
                if stats_path is not None and real() >= next_stats:
                    next_stats = real() + STATS_EVERY_S
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
            "entries_sent": stats.entries_sent,
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
            "clock_lag_s": round(self._lag, 3),
            "backlog": self._backlog,
            "backlog_max_age_s": round(self._backlog_max_age_s, 3),
            "holding_passes": self._holding_passes,
            "loop_max_ever_s": self._loop_max_ever_s,
            "decoded_shared": self.decoder.hits,
            "decoded_new": self.decoder.misses,
            "gc_s": round(self.gc_pauses.total_s, 3),
            "gc_max_s": round(self.gc_pauses.max_s, 3),
            "gc_full": self.gc_pauses.full,
            "gc_cpu_s": round(self.gc_pauses.cpu_s, 3),
            "gc_collections": list(self.gc_pauses.collections),
        }


class SharedClock:
    """The lag of every pool of a run in one small file (8 bytes a pool): each pool publishes
    its own and runs on the largest, so that all hollow nodes of the run see one clock, however
    unevenly the machine's cores are shared among their processes."""

    SLOTS = 64

    def __init__(self, path: str | Path, slot: int) -> None:
        if not 0 <= slot < self.SLOTS:
            raise ValueError(f"clock slot {slot}: 0..{self.SLOTS - 1}")
        self._slot = slot
        with open(path, "a+b") as file:
            if os.fstat(file.fileno()).st_size < 8 * self.SLOTS:
                file.truncate(8 * self.SLOTS)
            self._map = mmap.mmap(file.fileno(), 8 * self.SLOTS)
        self._format = struct.Struct(f"<{self.SLOTS}d")

    def publish(self, lag: float) -> float:
        """Writes this pool's lag; returns the run's (the largest published)."""
        struct.pack_into("<d", self._map, 8 * self._slot, lag)
        return max(self._format.unpack_from(self._map, 0))

    def close(self) -> None:
        self._map.close()


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
    clock_path: str | None = None,
    clock_slot: int = 0,
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

    if clock_path:
        pool.share_clock(SharedClock(clock_path, clock_slot))

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
