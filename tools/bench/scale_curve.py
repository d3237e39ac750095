"""The scale curve (issue 20): 3 real voters and N hollow nodes, at N = 10, 100, 300, 1,000.

    python -m tools.bench.scale_curve --nodes 10,100,300,1000
    python -m tools.bench.scale_curve --short          # 10 nodes, short windows: under a minute

Each point starts a fresh cluster of three ``orion node`` processes, one hollow "victim" node
in a process of its own (it gets a few tasks, and is killed later), then ``orion hollow
--count N``, and measures, in this order:

1. join: time until the leader lists N + 4 members alive and every hollow node has received
   the Raft configuration (a deadline ends the point: reported as not converged, and the
   larger points are not tried);
2. idle window: leader CPU (cores) and RSS; the hollow process's CPU per member (gossip and
   Raft parts timed separately); members the FSM or any hollow node declared dead (false: no
   node was harmed);
3. a steady 50 submits/s: API latency p50/p99, leader CPU, bytes the leader sent to the hollow
   nodes per committed entry (counted as they arrive at the hollow process);
4. placement: a burst of tasks, time until all are Running (fake), tasks/s. With
   ``--burst-via submits`` (the default) every task is its own submit, so the burst also
   measures the submit path; with ``--burst-via services`` the tasks are the replicas of
   services of at most 1,000 each (how a fleet's 10,000 tasks are declared: one entry per
   service, then the scheduler's placements), so it measures placement and the nodes' reports;
5. node loss: the victim process is killed; time until its tasks are Running elsewhere.

Tasks carry the node selector ``hollow=1``, so they go to hollow nodes only. Load averages
(``uptime``) are recorded with every point: the machine is shared, CPU figures are rough.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from orion.client import Client, Unavailable
from orion.hollow.pool import rss_bytes
from orion.raft.types import Membership, encode_membership
from orion.services.spec import MAX_REPLICAS
from orion.testing.localcluster import LocalCluster, _to_toml, free_ports
from tools.bench.common import log, machine, save_result
from tools.stats import p50, p99

IMAGE = "orion-busybox:latest"
SELECTOR = {"hollow": "1"}
VICTIM_TASKS = 5
TICKS = os.sysconf("SC_CLK_TCK")


class NotConverged(Exception):
    pass


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def read_stats(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


SUMMED = (
    "count",
    "in_cluster",
    "containers",
    "starts",
    "reports_sent",
    "entries_sent",
    "reports_ok",
    "cpu_s",
    "rss_bytes",
)
SUMMED += ("dropped", "sent", "frames_in", "gc_s", "gc_full", "pending_broadcasts", "local_frames")
SUMMED += ("gc_cpu_s", "backlog", "holding_passes")


def read_pools(paths: list[Path]) -> dict[str, Any]:
    """The figures of several hollow processes as one pool (sums, minimums, merged counters)."""
    parts = [read_stats(path) for path in paths]
    if not all(parts):
        return {}
    merged: dict[str, Any] = {key: sum(part.get(key, 0) for part in parts) for key in SUMMED}
    merged["applied_min"] = min(part["applied_min"] for part in parts)
    merged["applied_max"] = max(part["applied_max"] for part in parts)
    merged["members_seen_min"] = min(part["members_seen_min"] for part in parts)
    for key in ("loop_max_s", "loop_max_ever_s", "gc_max_s", "clock_lag_s", "backlog_max_age_s"):
        merged[key] = max(part.get(key, 0.0) for part in parts)
    merged["gc_collections"] = [sum(p.get("gc_collections", [0, 0, 0])[g] for p in parts) for g in range(3)]
    for key in ("bytes_from", "frames_from", "dead_events", "report_failures"):
        counter: dict[str, int] = {}
        for part in parts:
            for name, value in part.get(key, {}).items():
                counter[name] = counter.get(name, 0) + value
        merged[key] = counter
    return merged


def pool_summary(stats: dict[str, Any], started: float) -> dict[str, Any]:
    """What the pools spent since they started: CPU, the collector, the longest loop pass, the
    frames, and the dead declarations their nodes heard (every one of them false: no hollow
    node is stopped before the victim)."""
    dead = stats.get("dead_events", {})
    summary = {"at_s": round(time.monotonic() - started, 1), "dead_heard": sum(dead.values())}
    summary["dead_heard_members"] = len(dead)
    summary["dead_heard_most"] = dict(sorted(dead.items(), key=lambda item: -item[1])[:8])
    for key in ("cpu_s", "gc_s", "gc_cpu_s", "gc_collections", "loop_max_ever_s", "frames_in", "sent"):
        summary[key] = stats.get(key)
    summary["local_frames"] = stats.get("local_frames")
    summary["pending_broadcasts"] = stats.get("pending_broadcasts")
    # How far the pools' shared clock fell behind (orion/hollow/pool.py: a pool that cannot keep
    # up slows its nodes' clock), and the gossip they held back meanwhile.
    for key in ("clock_lag_s", "backlog", "backlog_max_age_s", "holding_passes"):
        summary[key] = stats.get(key)
    return summary


def wait_until(what: str, check: Any, deadline_s: float, every: float = 0.5, guard: Any = None) -> float:
    """Seconds until ``check()`` is true; NotConverged after ``deadline_s``, or as soon as
    ``guard()`` names a reason to give up (the machine is shared: no run may take it all)."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > deadline_s:
            raise NotConverged(f"{what}: not within {deadline_s:.0f}s")
        problem = guard() if guard is not None else None
        if problem:
            raise NotConverged(f"{what}: {problem} after {time.monotonic() - start:.0f}s")
        time.sleep(every)


def memory_guard(pids: list[int], limit_mib: int) -> Any:
    def over() -> str | None:
        rss = sum(rss_bytes(pid) for pid in pids) >> 20
        return f"hollow process RSS {rss} MiB over the {limit_mib} MiB cap" if rss > limit_mib else None

    return over


def profile(pid: int | None, seconds: float, path: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy on ``pid`` for ``seconds`` (collapsed stacks in ``path``), in the background;
    nothing when no profile was asked for."""
    if path is None or pid is None or seconds < 1:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    # --gil: only the thread running Python (the CPU that counts, not threads waiting);
    # --nonblocking: a process stopped 50 times a second under load fell behind.
    command = [str(spy), "record", "--nonblocking", "--gil", "-p", str(pid), "-d", str(int(seconds))]
    command += ["-r", "50", "-f", "raw"]
    return subprocess.Popen([*command, "-o", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profiles_done(spies: list[subprocess.Popen[bytes] | None]) -> None:
    for spy in spies:
        if spy is not None:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(5)


def lan_gossip(scale: float) -> dict[str, str]:
    """memberlist's LAN timing (probe 1 s, its timeout 500 ms, gossip rounds 200 ms), every
    period ``scale`` times longer: a slower gossip clock for every node of the cluster, real and
    hollow (``--gossip-scale``). Suspicion timeouts follow the probe interval."""
    return {
        "probe_interval": f"{round(1000 * scale)}ms",
        "probe_timeout": f"{round(500 * scale)}ms",
        "gossip_interval": f"{round(200 * scale)}ms",
    }


def hollow_config(
    cluster: LocalCluster, path: Path, tags: dict[str, str], packet_budget: int, gossip_scale: float = 1.0
) -> Path:
    path.write_text(
        _to_toml(
            {
                "node": {
                    "id": "hollow",
                    "data_dir": str(path.parent / "hollow-data"),
                    "join": [n.gossip_address for n in cluster.nodes],
                },
                "resources": {"memory": "64GiB", "cpu": 64.0, "disk": "500GiB"},
                "tags": tags,
                # memberlist's LAN profile (the real nodes here probe twice as often): a thousand
                # hollow nodes share the cores that a thousand hosts would each have.
                "gossip": {**lan_gossip(gossip_scale), "packet_budget": packet_budget},
                "scheduler": {"reconcile_interval": "5s"},
                "security": {
                    "cluster_key": str(cluster.cluster_key_path),
                    "token_file": str(cluster.token_path),
                    "api_key": str(cluster.api_key_path),
                },
            }
        )
    )
    return path


def start_hollow(
    config: Path,
    count: int,
    first: int,
    prefix: str,
    address: str,
    stats: Path,
    log_path: Path,
    slot: int,
    port: int,
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "orion", "hollow", "--config", str(config), "--count", str(count)]
    command += ["--port", str(port)]
    command += ["--first", str(first), "--prefix", prefix, "--address", address, "--stats", str(stats)]
    # Every hollow process of a point runs on one clock (orion/hollow/pool.py SharedClock).
    command += ["--clock", str(config.with_name("clock.bin")), "--clock-slot", str(slot)]
    return subprocess.Popen(command, stderr=open(log_path, "ab"), stdout=subprocess.DEVNULL)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL: never raises, so the cluster is always closed after it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            log(f"process {process.pid} still there 60 s after SIGKILL")


class LossParts:
    """When, after a node's kill, the cluster first held it dead, had placed all its tasks
    elsewhere, and had them all Running there (seconds; what was not seen yet is absent)."""

    def __init__(self, node_id: str, task_ids: list[str]) -> None:
        self.node_id = node_id
        self.task_ids = task_ids
        self.seen: dict[str, float] = {}

    def look(self, client: Client, t0: float) -> bool:
        try:
            nodes = client.nodes(stale=True) if "declared" not in self.seen else []
            tasks = {t.id: t for t in client.tasks(stale=True)}
        except Unavailable as exc:
            log(f"loss: {exc}")
            return False
        at = round(time.monotonic() - t0, 2)
        if any(m.id == self.node_id and m.status in ("dead", "left") for m in nodes):
            self.seen.setdefault("declared", at)
        moved = [tasks.get(t) for t in self.task_ids]
        if all(t is not None and t.node_id not in ("", self.node_id) for t in moved):
            self.seen.setdefault("declared", at)  # its tasks could only move once it was
            self.seen.setdefault("placed", at)
        if all(t is not None and t.state == "Running" and t.node_id != self.node_id for t in moved):
            self.seen.setdefault("running", at)
            return "placed" in self.seen
        return False

    def from_history(self, client: Client, killed_at: float) -> dict[str, float]:
        """The same parts from the tasks' own histories (the proposers' clocks, not this
        poll's: a stale list of 10,000 tasks takes a while): when the last of them went back
        to Pending (the leader held the node dead), was Scheduled elsewhere, was Running."""
        tasks = {t.id: t for t in client.tasks(stale=False)}
        parts: dict[str, float] = {}
        for task_id in self.task_ids:
            task = tasks.get(task_id)
            events = [e for e in task.history if e.at >= killed_at] if task is not None else []
            for name, state in (("rescheduled", "Pending"), ("placed", "Scheduled"), ("running", "Running")):
                when = next((e.at for e in events if e.state == state), None)
                if when is not None:
                    parts[name] = max(parts.get(name, 0.0), round(when - killed_at, 2))
        return parts


def running_on(client: Client, task_ids: list[str], exclude: str = "") -> bool:
    try:
        tasks = {t.id: t for t in client.tasks(stale=True)}
    except Unavailable as exc:  # no endpoint answered this time: asked again on the next poll
        log(f"task list: {exc}")
        return False
    return all(t in tasks and tasks[t].state == "Running" and tasks[t].node_id != exclude for t in task_ids)


def submit_paced(endpoints: list[str], rate: float, seconds: float) -> tuple[list[float], int]:
    """Submits at ``rate`` per second for ``seconds``, each on time whatever the last one took
    (a few client threads); the latencies of those answered, and how many failed."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    local = threading.local()

    def one() -> None:
        nonlocal failures
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(endpoints, timeout=5.0)
        began = time.monotonic()
        try:
            client.submit(IMAGE, memory="1MiB", node_selectors=SELECTOR)
            with lock:
                latencies.append(time.monotonic() - began)
        except Exception:
            with lock:
                failures += 1

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        start = time.monotonic()
        count = int(rate * seconds)
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one)
    return latencies, failures


def submit_burst(endpoints: list[str], count: int) -> list[str]:
    local = threading.local()

    def one(_: int) -> str:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(endpoints, timeout=10.0)
        return client.submit(IMAGE, memory="1MiB", node_selectors=SELECTOR).id

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def create_burst_services(client: Client, count: int) -> list[tuple[str, int]]:
    """Services whose replicas add up to ``count`` (each at most MAX_REPLICAS): their names and
    replica counts, in the order they were created."""
    services = []
    number = 0
    while count > 0:
        number += 1
        replicas = min(count, MAX_REPLICAS)
        name = f"burst{number}"
        client.create_service(name, IMAGE, replicas=replicas, memory="1MiB", constraints=SELECTOR)
        services.append((name, replicas))
        count -= replicas
    return services


def services_running(client: Client, services: list[tuple[str, int]]) -> bool:
    """Every slot of every service holds a Running task (a stale read from a follower)."""
    try:
        tasks = client.tasks(stale=True)
    except Unavailable as exc:
        log(f"task list: {exc}")
        return False
    running: dict[str, set[int]] = {}
    for task in tasks:
        if task.service and task.state == "Running":
            running.setdefault(task.service, set()).add(task.slot)
    return all(len(running.get(name, ())) >= replicas for name, replicas in services)


def measure_point(n: int, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    point: dict[str, Any] = {"nodes": n, "uptime_start": os.getloadavg()}
    point["config_entry_bytes"] = config_entry_bytes(n + 4)
    # The three real nodes are the voters (the "next to 3 or 5 real voters"): with the
    # default max_voters of 5 the victim or a hollow node in a starved pool process would vote,
    # and the leader's commits would wait on the bench rig.
    gossip: dict[str, Any] = {"packet_budget": args.packet_budget}
    if args.lan_voters:
        # The hollow nodes' probe timing (memberlist's LAN profile) for the real nodes too: with
        # the node default (500 ms / 250 ms) a voter suspects every hollow node whose pool takes
        # more than half a second to answer, and declares it dead 5.6 s later at 600 members.
        gossip.update(lan_gossip(1.0))
    if args.gossip_scale != 1.0:
        gossip.update(lan_gossip(args.gossip_scale))
    settings = {"raft": {"max_voters": 3}, "gossip": gossip}
    cluster = LocalCluster(3, base / f"n{n}", settings=settings)
    victim: subprocess.Popen[bytes] | None = None
    pools: list[subprocess.Popen[bytes]] = []
    procs = max(1, min(args.procs or (n + 99) // 100, n))
    pool_paths = [base / f"n{n}" / f"pool{i}.json" for i in range(procs)]
    victim_stats = base / f"n{n}" / "victim.json"

    def pool_stats() -> dict[str, Any]:
        return read_pools(pool_paths)

    def profile_path(name: str) -> Path | None:
        return Path(args.profile) / f"n{n}-{name}.txt" if args.profile else None

    try:
        cluster.start(timeout=60)
        leader = cluster.node(cluster.leader_index() or 1)
        # The bench's own polling (stale reads of every task) goes to the followers, so the
        # leader's profile and CPU are Orion's work, not the observer's.
        followers = [node.api_endpoint for node in cluster.nodes if node is not leader]
        client = Client(followers, timeout=10.0)
        leader_pid = leader.pid
        assert leader_pid is not None
        point["leader"] = leader.node_id
        prefix = cluster.prefix + "-h"
        # One port for every hollow node, claimed as the tests claim theirs: a fixed one (7600)
        # met another run's hollow nodes on the same addresses.
        (port,) = free_ports(1, "127.1.0.1")
        config = hollow_config(
            cluster, base / f"n{n}" / "hollow.toml", SELECTOR, args.packet_budget, args.gossip_scale
        )
        # The victim first, alone among hollow nodes: the first tasks can only go to it.
        victim = start_hollow(
            config, 1, n + 1, prefix, "127.1.0.1", victim_stats, base / f"n{n}" / "victim.log", 0, port
        )
        wait_until("victim joins", lambda: read_stats(victim_stats).get("in_cluster") == 1, 60)
        victim_id = f"{prefix}{n + 1}"
        victim_tasks = submit_burst(cluster.endpoints, VICTIM_TASKS)
        wait_until("victim tasks run", lambda: running_on(client, victim_tasks), 60)

        started = time.monotonic()
        # Nodes 1..n over ``procs`` processes (each one thread: more of them use both cores).
        point["hollow_processes"] = procs
        for i, path in enumerate(pool_paths):
            first, last = 1 + n * i // procs, n * (i + 1) // procs
            pools.append(
                start_hollow(
                    config,
                    last - first + 1,
                    first,
                    prefix,
                    "127.1.0.1",
                    path,
                    base / f"n{n}" / f"pool{i}.log",
                    i + 1,
                    port,
                )
            )

        def joined() -> bool:
            if pool_stats().get("in_cluster") != n:
                return False
            alive = [m for m in client.nodes(stale=True) if m.status == "alive"]
            return len(alive) >= n + 4

        guard = memory_guard([p.pid for p in pools], args.max_rss_mib)
        spies = [profile(pools[0].pid, 30, profile_path("pool-join"))]
        try:
            wait_until(f"{n} hollow nodes join", joined, args.join_deadline, every=1.0, guard=guard)
        finally:
            # What the join cost in traffic, converged or not: every configuration change is
            # an entry holding the whole membership, sent to every member already in it.
            stats = pool_stats()
            point["join_leader_bytes_to_hollow"] = stats.get("bytes_from", {}).get(leader.raft_address, 0)
            point["join_config_changes"] = config_changes(leader.log_path)
            point["join_pools"] = pool_summary(stats, started)
        point["join_s"] = round(time.monotonic() - started, 1)
        log(f"n={n}: joined in {point['join_s']}s")
        profiles_done(spies)
        if args.settle:
            # The join's gossip goes on after it: every member re-gossips every other's alive
            # (and again with its cluster id), N^2 updates x retransmits, paced by the gossip
            # interval. The idle window measures a cluster at rest, after that.
            def settled() -> bool:
                return pool_stats().get("pending_broadcasts", n + 1) <= n

            try:
                wait_until("gossip settles", settled, args.settle, every=2.0, guard=guard)
                point["gossip_settled_s"] = round(time.monotonic() - started, 1)
            except NotConverged as exc:
                point["gossip_settled_s"] = str(exc)
            point["settle_pools"] = pool_summary(pool_stats(), started)
            log(f"n={n}: gossip settled {point['gossip_settled_s']}")

        # Idle window.
        seconds = min(args.idle - 2, 30)
        spies = [profile(pools[0].pid, seconds, profile_path("pool-idle"))]
        spies.append(profile(leader_pid, seconds, profile_path("leader-idle")))
        before = pool_stats()
        leader_cpu0, t0 = cpu_seconds(leader_pid), time.monotonic()
        time.sleep(args.idle)
        elapsed = time.monotonic() - t0
        after = pool_stats()
        point["idle_s"] = round(elapsed)
        point["leader_idle_cores"] = round((cpu_seconds(leader_pid) - leader_cpu0) / elapsed, 3)
        point["leader_rss_mib"] = rss_bytes(leader_pid) >> 20
        members = n + 1
        pool_cpu = (after["cpu_s"] - before["cpu_s"]) / elapsed
        point["hollow_idle_cores"] = round(pool_cpu, 3)
        # Each hollow member's gossip and Raft (heartbeats) together: a py-spy profile of the
        # hollow process splits them (BENCHMARKS.md).
        point["hollow_cpu_ms_per_member_s"] = round(1000 * pool_cpu / members, 3)
        point["hollow_rss_mib_per_member"] = round(after["rss_bytes"] / members / 2**20, 2)
        dead = [m.id for m in client.nodes(stale=True) if m.status == "dead"]
        # Declared dead during the idle window (not during the join), by the FSM or any hollow node.
        heard_before = before.get("dead_events", {})
        heard_dead = {
            k: v - heard_before.get(k, 0)
            for k, v in after.get("dead_events", {}).items()
            if k != victim_id and v > heard_before.get(k, 0)
        }
        point["false_dead"] = {"fsm": dead, "heard_by_hollow": heard_dead}
        profiles_done(spies)

        # Steady submits: API latency, leader CPU, bytes per committed entry.
        commit0 = _leader_commit(cluster)
        before = pool_stats()
        spies = [profile(leader_pid, args.steady - 2, profile_path("leader-steady"))]
        leader_cpu0, t0 = cpu_seconds(leader_pid), time.monotonic()
        latencies, failures = submit_paced(cluster.endpoints, args.rate, args.steady)
        elapsed = time.monotonic() - t0
        after = pool_stats()
        commit1 = _leader_commit(cluster)
        leader_address = leader.raft_address
        sent = after["bytes_from"].get(leader_address, 0) - before["bytes_from"].get(leader_address, 0)
        entries = max(1, commit1 - commit0)
        point["steady"] = {
            "rate": args.rate,
            "seconds": round(elapsed),
            "submits": len(latencies),
            "failures": failures,
            "p50_ms": round(1000 * p50(latencies), 1) if latencies else None,
            "p99_ms": round(1000 * p99(latencies), 1) if latencies else None,
            "leader_cores": round((cpu_seconds(leader_pid) - leader_cpu0) / elapsed, 3),
            "committed": commit1 - commit0,
            "leader_bytes_to_hollow_per_entry": round(sent / entries),
            "per_hollow_node": round(sent / entries / members, 1),
        }
        log(f"n={n}: steady {point['steady']}")
        profiles_done(spies)

        # Placement burst.
        burst = args.burst or 10 * n
        spies = [profile(leader_pid, 20, profile_path("leader-burst"))]
        spies.append(profile(pools[0].pid, 20, profile_path("pool-burst")))
        t0 = time.monotonic()
        if args.burst_via == "services":
            with Client(cluster.endpoints, timeout=10.0) as creator:
                services = create_burst_services(creator, burst)

            def burst_runs() -> bool:
                return services_running(client, services)
        else:
            ids = submit_burst(cluster.endpoints, burst)

            def burst_runs() -> bool:
                return running_on(client, ids)

        submitted = time.monotonic() - t0
        try:
            wait_until("burst runs", burst_runs, args.join_deadline, 1.0, guard)
            took = time.monotonic() - t0
            point["placement"] = {
                "via": args.burst_via,
                "tasks": burst,
                "submit_s": round(submitted, 1),
                "all_running_s": round(took, 1),
                "tasks_per_s": round(burst / took, 1),
            }
        except NotConverged as exc:
            point["placement"] = {"tasks": burst, "submit_s": round(submitted, 1), "error": str(exc)}
        log(f"n={n}: placement {point['placement']}")
        profiles_done(spies)

        # Node loss, in parts: the leader's FSM holds the victim dead; each of its tasks is
        # placed on another node; each is Running there.
        killed_at = time.time()
        victim.kill()
        victim.wait(5)
        t0 = time.monotonic()
        parts = LossParts(victim_id, victim_tasks)
        try:
            wait_until("victim's tasks move", lambda: parts.look(client, t0), args.join_deadline, every=0.2)
            point["loss_to_replaced_s"] = round(time.monotonic() - t0, 1)
        except NotConverged as exc:
            point["loss_to_replaced_s"] = str(exc)
        point["loss_parts_s"] = parts.seen
        try:
            point["loss_history_s"] = parts.from_history(client, killed_at)
        except Unavailable as exc:
            point["loss_history_s"] = str(exc)
        history = point["loss_history_s"]
        log(f"n={n}: loss {point['loss_to_replaced_s']} s, seen {parts.seen}, by history {history}")
        final = pool_stats()
        point["hollow_rss_mib"] = final.get("rss_bytes", 0) >> 20
        point["hollow_reports"] = {
            k: final.get(k) for k in ("reports_sent", "entries_sent", "reports_ok", "report_failures")
        }
        point["hollow_dropped_frames"] = final.get("dropped")
        stall_keys = ("loop_max_ever_s", "gc_s", "gc_max_s", "gc_full", "gc_cpu_s", "gc_collections", "cpu_s")
        stall_keys += ("clock_lag_s", "holding_passes")
        point["hollow_stalls"] = {k: final.get(k) for k in stall_keys}
    except NotConverged as exc:
        point["not_converged"] = str(exc)
        stats = pool_stats()
        keys = ("in_cluster", "members_seen_min", "applied_min", "applied_max", "cpu_s", "rss_bytes")
        keys += ("loop_max_ever_s", "gc_s", "gc_max_s", "gc_full", "dead_events")
        keys += ("pending_broadcasts", "gc_cpu_s", "gc_collections")
        point["at_deadline"] = {k: stats.get(k) for k in keys}
        point["leader_log_tail"] = leader_log_tail(cluster)
        with_leader = cluster.leader_index()
        if with_leader is not None and cluster.node(with_leader).pid:
            point["leader_rss_mib"] = rss_bytes(cluster.node(with_leader).pid) >> 20
    finally:
        point["uptime_end"] = os.getloadavg()
        for process in pools:
            stop_process(process)
        stop_process(victim)
        cluster.close()
    return point


def leader_log_tail(cluster: LocalCluster, lines: int = 12) -> list[str]:
    """The leader's last Raft lines and warnings: why a join stalled."""
    index = cluster.leader_index() or 1
    try:
        text = cluster.node(index).log_path.read_text(errors="replace")
    except OSError:
        return []
    wanted = [line for line in text.splitlines() if "raft:" in line or "WARNING" in line]
    return wanted[-lines:]


def config_changes(log_path: Path) -> int:
    """Configuration changes the leader made (adds, removals), from its log."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(
        1 for line in text.splitlines() if "as a non-voter" in line or "from the configuration" in line
    )


def config_entry_bytes(members: int) -> int:
    """The size of one configuration entry holding 3 voters and ``members - 3`` non-voters."""
    voters = {f"n{i}": f"127.0.0.{i}:7100" for i in range(1, 4)}
    others = {f"hollow{i}": f"127.1.{i // 250}.{i % 250}:7600" for i in range(members - 3)}
    incarnations = {node: uuid.uuid4().hex for node in [*voters, *others]}
    membership = Membership(
        voters=voters, non_voters=others, cluster_id=uuid.uuid4().hex, incarnations=incarnations
    )
    return len(encode_membership(membership))


def _leader_commit(cluster: LocalCluster) -> int:
    index = cluster.leader_index()
    return cluster.raft_status(index or 1).commit_index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,100,300,1000", help="hollow node counts, comma separated")
    parser.add_argument("--short", action="store_true", help="10 nodes, short windows (CI)")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of steady submits")
    parser.add_argument("--rate", type=float, default=50.0, help="steady submits per second")
    parser.add_argument("--burst", type=int, default=0, help="tasks in the placement burst (10 per node)")
    parser.add_argument(
        "--burst-via",
        choices=("submits", "services"),
        default="submits",
        help="the burst's tasks as one submit each, or as the replicas of services of up to 1,000",
    )
    parser.add_argument("--join-deadline", type=float, default=300.0, help="seconds a point may take to join")
    parser.add_argument("--procs", type=int, default=0, help="hollow processes (default: one per 100 nodes)")
    parser.add_argument(
        "--lan-voters",
        action="store_true",
        help="the real nodes probe as the hollow ones do (1 s / 500 ms) instead of the node default",
    )
    parser.add_argument("--max-rss-mib", type=int, default=8192, help="give up a point past this hollow RSS")
    parser.add_argument("--out", help="write the result JSON here too")
    parser.add_argument("--profile", help="py-spy the leader and the first hollow pool into this directory")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (node and pool logs)")
    parser.add_argument(
        "--packet-budget",
        type=int,
        default=1200,
        help="[gossip] packet_budget of every node: bytes of updates per gossip message",
    )
    parser.add_argument(
        "--gossip-scale",
        type=float,
        default=1.0,
        help="every node, real and hollow, gossips on memberlist's LAN timing with every period this many "
        "times longer (probe 1 s, timeout 500 ms, rounds 200 ms at 1): a slow-motion protocol the rig's "
        "cores can keep up with, reported as such",
    )
    parser.add_argument(
        "--settle", type=float, default=0.0, help="after the join, wait up to this long for its gossip to end"
    )
    args = parser.parse_args(argv)
    if args.short:
        args.nodes, args.idle, args.steady, args.burst, args.join_deadline = "10", 3.0, 4.0, 50, 45.0
    counts = [int(x) for x in args.nodes.split(",") if x]
    base = Path(tempfile.mkdtemp(prefix="orion-scale-"))
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"args": vars(args), "points": []}
    try:
        for n in counts:
            log(f"point n={n} (load {os.getloadavg()})")
            point = measure_point(n, args, base)
            result["points"].append(point)
            print(json.dumps(point), flush=True)
            if "not_converged" in point:
                log(f"n={n} did not converge: {point['not_converged']}; larger points skipped")
                break
    finally:
        if args.keep:
            log(f"run directory kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), **result}, indent=2))
    if not args.short and not args.out:  # --out names where this run's result goes instead
        save_result("scale_curve", result)
    return 0 if all("not_converged" not in p for p in result["points"]) else 1


if __name__ == "__main__":
    sys.exit(main())
