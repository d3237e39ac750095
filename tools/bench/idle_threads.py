"""Where an idle node's CPU goes, thread by thread (issue 16 item 5).

    .venv/bin/python -m tools.bench.idle_threads [--seconds 60] [--settle 20] [--name idle_threads]
    .venv/bin/python -m tools.bench.idle_threads --trees before=/tmp/wt-before,after=. [--repeats 2]

A 3-node LocalCluster of the tree on ``sys.path`` is started and left ``--settle`` seconds; then,
for every thread of every node, CPU time (utime + stime from /proc/PID/task/TID/stat) and
voluntary context switches (its wakeups, /proc/PID/task/TID/status) over ``--seconds``. Python
threads are named by ``py-spy dump`` (the kernel's name of each is "python"). CPU time per
thread is less sensitive to the machine's load than wall-clock shares, but still inflated by it:
the load average is saved with the figures. Each thread's CPU is also split into user and system
time (a wake-up's own cost is mostly system time; the Python it runs, user time).

``--trees`` compares commits in one window: a cluster of each tree (a git worktree) runs at the
same time, each started and measured by this file's code run from inside that tree (its ``orion``
on ``sys.path``), so both see the same machine; ``--repeats`` runs such windows one after the
other. Results: benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from orion.testing.localcluster import LocalCluster
from tools.bench.common import loadavg, log, save_result
from tools.bench.trees import parse_trees

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A git worktree has no .venv of its own: it runs on the main checkout's interpreter, whose
# bin directory then holds py-spy.
PY_SPY_PLACES = (
    Path(__file__).resolve().parents[2] / ".venv" / "bin" / "py-spy",
    Path(sys.executable).parent / "py-spy",
)


def thread_cpu(pid: int) -> dict[str, tuple[str, int, int, int]]:
    """Thread id -> (kernel name, user clock ticks, system clock ticks, voluntary context switches)."""
    threads: dict[str, tuple[str, int, int, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            switches = 0
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    switches = int(line.split()[1])
        except OSError:
            continue  # the thread ended between listing and reading
        threads[tid] = (name, int(fields[11]), int(fields[12]), switches)
    return threads


def python_thread_names(pid: int) -> dict[str, str]:
    """Thread id -> Python thread name, from ``py-spy dump`` (empty when py-spy cannot)."""
    spy = next((str(place) for place in PY_SPY_PLACES if place.exists()), None) or shutil.which("py-spy")
    if spy is None:
        return {}
    dump = subprocess.run(
        [spy, "dump", "--json", "--pid", str(pid)], capture_output=True, text=True, timeout=60, check=False
    )
    try:
        return {str(t["os_thread_id"]): t.get("thread_name") or "?" for t in json.loads(dump.stdout)}
    except (json.JSONDecodeError, KeyError, TypeError):
        return {}


def per_thread(pid: int, seconds: float) -> dict[str, Any]:
    start = thread_cpu(pid)
    began = time.monotonic()
    time.sleep(seconds)  # the measurement window itself
    end = thread_cpu(pid)
    elapsed = time.monotonic() - began
    names = python_thread_names(pid)
    user: dict[str, float] = defaultdict(float)
    system: dict[str, float] = defaultdict(float)
    wakeups: dict[str, float] = defaultdict(float)
    for tid, (kernel_name, user_ticks, system_ticks, switches) in end.items():
        name = names.get(tid, kernel_name)
        _, user_before, system_before, switches_before = start.get(tid, (kernel_name, 0, 0, 0))
        user[name] += (user_ticks - user_before) / CLOCK_TICKS / elapsed * 100
        system[name] += (system_ticks - system_before) / CLOCK_TICKS / elapsed * 100
        wakeups[name] += (switches - switches_before) / elapsed
    cpu = {name: user[name] + system[name] for name in user}
    return {
        "cpu_pct": round(sum(cpu.values()), 2),
        "user_pct": round(sum(user.values()), 2),
        "system_pct": round(sum(system.values()), 2),
        "threads": {
            name: {
                "cpu_pct": round(cpu[name], 3),
                "user_pct": round(user[name], 3),
                "system_pct": round(system[name], 3),
                "wakeups_per_s": round(wakeups[name], 1),
            }
            for name in sorted(cpu, key=lambda n: -cpu[n])
            if cpu[name] >= 0.01 or wakeups[name] >= 1
        },
    }


def measure(seconds: float, settle: float) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="orion-bench-idle-threads-"))
    try:
        with LocalCluster(3, base) as cluster:
            cluster.start()
            time.sleep(settle)  # past the start's elections, joins and first reconcile rounds
            leader = cluster.leader_index()
            load_start = loadavg()
            # One window for all three nodes: sample them side by side, not one after the other.
            with ThreadPoolExecutor(len(cluster.nodes)) as pool:
                futures = {
                    node.index: pool.submit(per_thread, node.pid or 0, seconds) for node in cluster.nodes
                }
            nodes = {
                f"n{index}-{'leader' if index == leader else 'follower'}": future.result()
                for index, future in futures.items()
            }
            return {"seconds": seconds, "loadavg": [load_start, loadavg()], "nodes": nodes}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def measure_trees(trees: dict[str, Path], seconds: float, settle: float) -> dict[str, Any]:
    """One window, a cluster of each tree at once: this file run inside each tree (``--out``)."""
    out_dir = Path(tempfile.mkdtemp(prefix="orion-bench-idle-trees-"))
    try:
        children = {}
        for label, tree in trees.items():
            command = [sys.executable, str(Path(__file__).resolve()), "--seconds", str(seconds)]
            command += ["--settle", str(settle), "--out", str(out_dir / f"{label}.json")]
            env = {**os.environ, "PYTHONPATH": str(tree)}
            children[label] = subprocess.Popen(command, cwd=tree, env=env)
        for label, child in children.items():
            if child.wait() != 0:
                raise RuntimeError(f"the {label} tree's run failed (exit {child.returncode})")
        return {label: json.loads((out_dir / f"{label}.json").read_text()) for label in trees}
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def report(result: dict[str, Any], label: str = "") -> None:
    for node, figures in result["nodes"].items():
        top = ", ".join(
            f"{name} {value['cpu_pct']}% ({value['wakeups_per_s']}/s)"
            for name, value in list(figures["threads"].items())[:6]
        )
        log(f"{label}{node}: {figures['cpu_pct']}% of a core; {top}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="the measurement window")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds left after the start")
    parser.add_argument("--name", default="idle_threads", help="result file name")
    parser.add_argument(
        "--trees", type=parse_trees, default=None, help="label=path,...: a cluster of each tree at once"
    )
    parser.add_argument("--repeats", type=int, default=1, help="windows one after the other (--trees)")
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)  # --trees' children write here
    args = parser.parse_args(argv)
    if args.trees is None:
        result = measure(args.seconds, args.settle)
        report(result)
        if args.out is not None:
            Path(args.out).write_text(json.dumps(result))
        else:
            save_result(args.name, result)
        return
    runs = []
    for repeat in range(args.repeats):
        by_tree = measure_trees(args.trees, args.seconds, args.settle)
        for label, result in by_tree.items():
            report(result, f"run {repeat + 1} {label} ")
        runs.append(by_tree)
    save_result(args.name, {"trees": {label: str(tree) for label, tree in args.trees.items()}, "runs": runs})


if __name__ == "__main__":
    main()
