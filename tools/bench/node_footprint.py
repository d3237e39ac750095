"""What an idle ``orion node`` costs, and what each stored task adds (issue 16 item 5).

    .venv/bin/python -m tools.bench.node_footprint [--tasks 10000,100000] [--cpu-seconds 60]
    .venv/bin/python -m tools.bench.node_footprint --short     # CI: a few hundred tasks, seconds

A 3-node LocalCluster is started and left until every node is idle (its CPU over one
``--settle-window`` below ``--idle-threshold``); then, per node: RSS (VmRSS), USS and PSS
(/proc/PID/smaps_rollup: USS is the private pages, what the process alone holds; PSS adds its
share of the shared ones), the thread count, and CPU as a share of one core from /proc/PID/stat over
``--cpu-seconds``. An etcd 3.4 member (tools/baselines/etcd_cluster.py, a 3-member cluster)
is sampled over the same window as the baseline (skipped, and said so, when etcd is absent:
``--short`` never installs it).

Then the state is filled with unplaceable tasks (tools/loadgen.py's shape: they stay Pending,
Docker is not involved) through all three API endpoints, up to each count of ``--tasks`` in
turn; after each, the nodes are left to settle and RSS is read again on the leader and the
followers: bytes per stored task = (RSS now - idle RSS) / tasks, and between two counts the
marginal figure. ``--hold S`` reads them once more S seconds after the last fill: right after
it a snapshot of the new state may still be under way. The same task shape applied to a bare
``ClusterState`` in this process gives the FSM's own share (tracemalloc, ``--fsm-tasks``).
``--native-stats`` adds, after the last reading, what each node's anonymous memory is made of
(glibc's bytes in use and free, Python's small-object arenas: orion/memory_trace.py's
``ORION_MEMORY_STATS`` report, asked for by SIGUSR2). Only after the last, so that whatever
writing the report costs never counts in a reading.

CPU on a shared machine is noisy: the load average is saved with each figure (``/proc/loadavg``
at the start and end of each window). Results: benchmarks/results/node_footprint.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orion import memory_trace
from orion.testing.localcluster import LocalCluster
from tools import loadgen
from tools.bench.common import loadavg, log, save_result, wait_for

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    uss_kib: int  # Private_Clean + Private_Dirty
    pss_kib: int
    anon_kib: int
    threads: int

    def as_mib(self) -> dict[str, float | int]:
        return {
            "rss_mib": round(self.rss_kib / 1024, 1),
            "uss_mib": round(self.uss_kib / 1024, 1),
            "pss_mib": round(self.pss_kib / 1024, 1),
            "anon_mib": round(self.anon_kib / 1024, 1),
            "threads": self.threads,
        }


def _kib_fields(path: str) -> dict[str, int]:
    fields: dict[str, int] = {}
    with open(path) as source:
        for line in source:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[key] = int(parts[0])
    return fields


def memory(pid: int) -> Memory:
    """RSS, USS, PSS and threads of ``pid`` from /proc (smaps_rollup: Linux 4.14+)."""
    status = _kib_fields(f"/proc/{pid}/status")
    rollup = _kib_fields(f"/proc/{pid}/smaps_rollup")
    return Memory(
        rss_kib=status["VmRSS"],
        uss_kib=rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0),
        pss_kib=rollup.get("Pss", 0),
        anon_kib=status.get("RssAnon", 0),
        threads=status.get("Threads", 0),
    )


def rss_by_mapping(pid: int, top: int = 8) -> dict[str, float]:
    """The ``top`` largest parts of ``pid``'s RSS in MiB, from /proc/PID/smaps: each mapped file
    by its name (a library's pages count, shared or not), ``[heap]`` (glibc's main arena) and
    ``[anon]`` (thread arenas, other allocators' mappings, Python's arenas, stacks)."""
    sizes: dict[str, int] = {}
    name = ""
    with open(f"/proc/{pid}/smaps") as source:
        for line in source:
            first, _, rest = line.partition(" ")
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                fields = rest.split()
                path = fields[4] if len(fields) > 4 else ""
                name = os.path.basename(path) if path.startswith("/") else (path or "[anon]")
            elif first == "Rss:":
                sizes[name] = sizes.get(name, 0) + int(rest.split()[0])
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:top]
    return {key: round(kib / 1024, 1) for key, kib in largest}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as source:
        stat = source.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def cpu_percent(pids: Iterable[int], seconds: float) -> dict[int, float]:
    """Each pid's CPU over ``seconds`` of wall time, in % of one core."""
    pids = list(pids)
    before = {pid: cpu_seconds(pid) for pid in pids}
    started = time.monotonic()
    time.sleep(seconds)  # the measuring window itself
    elapsed = time.monotonic() - started
    return {pid: round(100 * (cpu_seconds(pid) - before[pid]) / elapsed, 2) for pid in pids}


def wait_idle(pids: list[int], threshold: float, timeout: float, window: float = 2.0) -> float:
    """Until every pid used less than ``threshold`` % of a core over one ``window``; the
    seconds it took. Raises TimeoutError (a node that never calms down is a finding)."""
    started = time.monotonic()

    def idle() -> bool:
        return all(pct < threshold for pct in cpu_percent(pids, window).values())

    wait_for(idle, timeout, interval=0.0, what=f"every node below {threshold}% of a core")
    return time.monotonic() - started


FILL_ROUNDS = 5  # a loaded machine loses a few submits to elections: top up this many times


def native_stats(roles: dict[str, int], directory: Path | None) -> dict[str, Any]:
    """Each node's native report (``memory_trace.write_native_report``, written on SIGUSR2),
    its totals by role; {} without ``--native-stats``."""
    if directory is None:
        return {}
    for old in directory.glob("native-*.txt"):
        old.unlink()
    for pid in roles.values():
        os.kill(pid, signal.SIGUSR2)
    figures = {}
    for role, pid in roles.items():
        path = directory / f"native-{pid}.txt"
        wait_for(path.exists, 30, what=f"{role}'s native memory report")
        figures[role] = memory_trace.native_figures(path.read_text())
    return figures


def fill(endpoints: list[str], count: int, concurrency: int) -> dict[str, Any]:
    """At least ``count`` acknowledged unplaceable submits through ``endpoints``. Failed ones
    (an election under load) are made up for in further rounds; their number is reported, as
    a timed-out submit may still have been applied."""
    acked, errors, seconds = 0, 0, 0.0
    for _ in range(FILL_ROUNDS):
        options = ["--count", str(count - acked), "-c", str(concurrency), "--timeout", "15"]
        args = loadgen.parse_args([*options, "--mode", "asyncio", "--quiet"])
        args.endpoints = endpoints
        result = loadgen.run(args)
        acked += result["acked"]
        errors += result["errors"]
        seconds += result["elapsed_s"]
        if acked >= count:
            return {
                "acked": acked,
                "errors": errors,
                "seconds": round(seconds, 1),
                "per_s": round(acked / seconds),
            }
        log(f"fill: {result['errors']} submits failed ({result['error_examples']}); topping up")
    raise RuntimeError(f"fill: only {acked} of {count} submits acknowledged after {FILL_ROUNDS} rounds")


def fsm_bytes_per_task(count: int) -> dict[str, Any]:
    """The FSM's own memory per stored task: ``count`` SubmitTask entries shaped as loadgen's,
    applied to a bare ClusterState under tracemalloc (the node's other per-task costs are not
    in it: the Raft log, events, DuckDB)."""
    from orion.fsm.commands import SubmitTask, UpsertNode, encode_command
    from orion.fsm.state import ClusterState
    from orion.model import NodeMeta, Task

    state = ClusterState()
    state.apply(1, encode_command(UpsertNode(at=0.0, meta=NodeMeta(id="n1"))))
    entries = []
    for i in range(count):
        task_id = uuid.uuid4().hex
        task = Task(
            id=task_id,
            name=f"loadgen-{task_id[:8]}",
            image="orion-busybox:latest",
            node_selectors=dict(loadgen.UNPLACEABLE),
            command=["sleep", "3600"],
        )
        reason = "no node matches the node selectors"
        entries.append(encode_command(SubmitTask(at=1.0 + i, task=task, reason=reason, judged_at=i + 1)))
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i, data in enumerate(entries):
            state.apply(i + 2, data)
        state.take_events()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"tasks": count, "bytes_per_task": round((after - before) / count)}


def etcd_member() -> tuple[Any, list[int]] | None:
    """A started 3-member etcd cluster and its pids, or None when no etcd binary is installed."""
    if shutil.which("etcd") is None:
        return None
    from tools.baselines.etcd_cluster import EtcdCluster

    cluster = EtcdCluster(Path(tempfile.mkdtemp(prefix="orion-bench-etcd-")))
    try:
        cluster.start()
    except BaseException:
        cluster.close()
        raise
    return cluster, [m.process.pid for m in cluster.members if m.process is not None]


def _roles(cluster: LocalCluster) -> dict[str, int]:
    leader = wait_for(cluster.leader_index, 30, what="a leader")
    roles = {"leader": cluster.node(leader).pid or 0}
    followers = [n for n in cluster.nodes if n.index != leader and n.pid]
    for number, node in enumerate(followers, 1):
        roles[f"follower{number}"] = node.pid or 0
    return roles


def measure(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "settings": {
            "tasks": args.tasks,
            "cpu_seconds": args.cpu_seconds,
            "state_cpu_seconds": args.state_cpu_seconds,
            "idle_threshold_pct": args.idle_threshold,
            "settle_window_s": args.settle_window,
            "concurrency": args.concurrency,
        }
    }
    if args.fsm_tasks:
        result["fsm"] = fsm_bytes_per_task(args.fsm_tasks)
        log(f"FSM alone: {result['fsm']['bytes_per_task']} bytes per task ({args.fsm_tasks} tasks)")
    base = Path(tempfile.mkdtemp(prefix="orion-bench-footprint-"))
    stats_dir = base / "native" if args.native_stats else None
    if stats_dir is not None:
        stats_dir.mkdir()
        os.environ[memory_trace.STATS_ENV_VAR] = str(stats_dir)  # the nodes inherit it
    etcd = None
    try:
        with LocalCluster(3, base / "orion") as cluster:
            cluster.start()
            roles = _roles(cluster)
            pids = list(roles.values())
            settled = wait_idle(pids, args.idle_threshold, args.settle_timeout, args.settle_window)
            log(f"orion nodes idle after {settled:.1f} s")
            if not args.no_etcd:
                etcd = etcd_member()
                if etcd is None:
                    log("etcd not installed: no baseline in this run")
            etcd_pids = etcd[1] if etcd else []
            load_start = loadavg()
            cpu = cpu_percent(pids + etcd_pids, args.cpu_seconds)
            idle_memory = {role: memory(pid) for role, pid in roles.items()}
            idle_rss_kib = {role: m.rss_kib for role, m in idle_memory.items()}
            idle: dict[str, Any] = {
                role: {**m.as_mib(), "cpu_pct": cpu[roles[role]]} for role, m in idle_memory.items()
            }
            idle["loadavg"] = [load_start, loadavg()]
            idle["mappings"] = {role: rss_by_mapping(pid) for role, pid in roles.items()}
            result["idle"] = idle
            log("idle: " + ", ".join(f"{r} {v['rss_mib']} MiB {v['cpu_pct']}%" for r, v in _nodes(idle)))
            save_result(args.name, result)
            if etcd:
                result["etcd"] = {
                    f"member{number}": {**memory(pid).as_mib(), "cpu_pct": cpu[pid]}
                    for number, pid in enumerate(etcd_pids, 1)
                }
                etcd[0].close()
                etcd = None
            result["states"] = []
            stored = 0
            previous = dict(idle_rss_kib)
            for count in args.tasks:
                filled = fill(cluster.endpoints, count - stored, args.concurrency)
                stored = count
                wait_idle(pids, args.idle_threshold, args.settle_timeout, args.settle_window)
                load_start = loadavg()
                cpu = cpu_percent(pids, args.state_cpu_seconds)
                state: dict[str, Any] = {"tasks": count, "fill": filled}
                for role, pid in roles.items():
                    now = memory(pid)
                    state[role] = {
                        **now.as_mib(),
                        "cpu_pct": cpu[pid],
                        "bytes_per_task": round((now.rss_kib - idle_rss_kib[role]) * 1024 / count),
                        "marginal_bytes_per_task": round(
                            (now.rss_kib - previous[role]) * 1024 / (filled["acked"] or 1)
                        ),
                    }
                    previous[role] = now.rss_kib
                state["loadavg"] = [load_start, loadavg()]
                state["mappings"] = {role: rss_by_mapping(pid) for role, pid in roles.items()}
                result["states"].append(state)
                save_result(args.name, result)  # a later, bigger fill may fail on a loaded machine
                log(
                    f"{count} tasks: "
                    + ", ".join(
                        f"{r} {v['rss_mib']} MiB ({v['bytes_per_task']} B/task) {v['cpu_pct']}%"
                        for r, v in _nodes(state)
                    )
                )
            if args.hold:
                result["held"] = held(roles, idle_rss_kib, stored, args.hold)
            last = result["held"] if args.hold else result["states"][-1]
            last["native"] = native_stats(roles, stats_dir)
            save_result(args.name, result)
    finally:
        if etcd:
            etcd[0].close()
        if stats_dir is not None:
            os.environ.pop(memory_trace.STATS_ENV_VAR, None)
        shutil.rmtree(base, ignore_errors=True)
    return result


def held(roles: dict[str, int], idle_rss_kib: dict[str, int], tasks: int, seconds: float) -> dict[str, Any]:
    """The nodes read again ``seconds`` after the last fill settled: right after it, a snapshot
    of the new state may still be encoded or written (CPU under the idle threshold does not
    rule that out), and what it allocated is given back in the seconds after."""
    log(f"holding {tasks} tasks for {seconds:.0f} s")
    time.sleep(seconds)
    load_start = loadavg()
    cpu = cpu_percent(list(roles.values()), 10.0)
    figures: dict[str, Any] = {"tasks": tasks, "after_s": seconds}
    for role, pid in roles.items():
        now = memory(pid)
        figures[role] = {
            **now.as_mib(),
            "cpu_pct": cpu[pid],
            "bytes_per_task": round((now.rss_kib - idle_rss_kib[role]) * 1024 / tasks),
        }
    figures["loadavg"] = [load_start, loadavg()]
    figures["mappings"] = {role: rss_by_mapping(pid) for role, pid in roles.items()}
    log(
        f"held {tasks} tasks {seconds:.0f} s: "
        + ", ".join(
            f"{r} {v['rss_mib']} MiB ({v['bytes_per_task']} B/task) {v['cpu_pct']}%"
            for r, v in _nodes(figures)
        )
    )
    return figures


def _nodes(figures: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(role, value) for role, value in figures.items() if role.startswith(("leader", "follower"))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="10000,100000", help="state sizes to fill to, in turn")
    parser.add_argument("--cpu-seconds", type=float, default=60.0, help="idle CPU window")
    parser.add_argument("--state-cpu-seconds", type=float, default=20.0, help="CPU window after each fill")
    parser.add_argument("--idle-threshold", type=float, default=15.0, help="%% of a core: 'idle' below")
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    parser.add_argument(
        "--settle-window",
        type=float,
        default=5.0,
        help="seconds of one window in which every node must stay under --idle-threshold",
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--fsm-tasks", type=int, default=20_000, help="0: skip the in-process FSM figure")
    parser.add_argument("--no-etcd", action="store_true", help="no etcd baseline")
    parser.add_argument(
        "--hold", type=float, default=0.0, help="seconds after the last fill to read the nodes again (0: not)"
    )
    parser.add_argument(
        "--native-stats",
        action="store_true",
        help="after each reading, each node's glibc and pymalloc totals (SIGUSR2; the report costs a few MB)",
    )
    parser.add_argument("--short", action="store_true", help="CI smoke run: 300 tasks, 2 s windows, no etcd")
    parser.add_argument("--name", default="node_footprint", help="result file name")
    args = parser.parse_args(argv)
    if args.short:
        args.tasks, args.cpu_seconds, args.state_cpu_seconds = "300", 2.0, 1.0
        args.fsm_tasks, args.no_etcd, args.idle_threshold = 500, True, 50.0
        args.concurrency, args.settle_window = 8, 2.0
    try:
        args.tasks = sorted({int(t) for t in args.tasks.split(",") if t.strip()})
    except ValueError:
        parser.error(f"--tasks: comma-separated task counts, got {args.tasks!r}")
    if not args.tasks or args.tasks[0] < 1:
        parser.error("--tasks: counts must be >= 1")
    if args.cpu_seconds <= 0 or args.state_cpu_seconds <= 0:
        parser.error("--cpu-seconds and --state-cpu-seconds must be > 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = measure(args)
    save_result(args.name, result)
    return result


if __name__ == "__main__":
    main()
