"""CPU per replicated write on each node of a local 3-node cluster, split by thread.

    .venv/bin/python -m benchmarks.flames.threads_cpu [--count 3000] [-c 16] [--rate-limit R]

``tools.bench.write_cpu`` with the split: each node's threads are named by ``py-spy dump``
(Python thread names: RaftActor-3, api-..., transport-...; native ones keep their kernel
name: ZMQbg/IO/0, and ``python`` for DuckDB's and other unnamed threads), and their
user+system time is read from ``/proc/<pid>/task/<tid>/stat`` before and after
``tools/loadgen.py`` submits ``--count`` tasks that stay Pending at concurrency ``-c`` to the
leader. Also prints committed entries per write (the leader's commit index before and after).
``--rate-limit``: the nodes' ``[security] client_rate_limit`` (default: the node's default).
Needs ptrace rights for py-spy (root).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from orion.client import Client
from orion.testing.localcluster import LocalCluster

PY_SPY = Path(sys.executable).with_name("py-spy")
_THREAD = re.compile(r'Thread (\d+) \([^)]*\): "([^"]*)"')
_DIGITS = re.compile(r"\d+")


def thread_names(pid: int) -> dict[str, str]:
    """Native thread id -> Python thread name, numbers folded (``RaftActor-#``)."""
    dump = subprocess.run(
        [str(PY_SPY), "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True
    ).stdout
    return {tid: _DIGITS.sub("#", name.split(" (")[0]) for tid, name in _THREAD.findall(dump)}


def thread_cpu(pid: int, names: dict[str, str]) -> Counter[str]:
    """CPU seconds of each (named) thread of ``pid`` so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        fields = stat.rsplit(")", 1)[1].split()
        kernel_name = stat[stat.index("(") + 1 : stat.rindex(")")]
        name = names.get(task.name) or _DIGITS.sub("#", kernel_name)
        out[name] += (int(fields[11]) + int(fields[12])) / ticks
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--rate-limit", type=float, default=None)
    args = parser.parse_args()
    settings = {} if args.rate_limit is None else {"security": {"client_rate_limit": args.rate_limit}}
    with (
        tempfile.TemporaryDirectory(prefix="orion-cpu-") as tmp,
        LocalCluster(3, Path(tmp), settings=settings) as cluster,
    ):
        cluster.start()
        time.sleep(3)  # let joins and promotions settle: they are not writes
        leader = cluster.leader_index()
        assert leader is not None
        order = [leader] + [i for i in (1, 2, 3) if i != leader]
        pids = {i: cluster.node(i).pid for i in order}
        names = {i: thread_names(pid) for i, pid in pids.items() if pid is not None}
        env = dict(os.environ, ORION_TOKEN_FILE=str(cluster.token_path))
        os.environ["ORION_TOKEN_FILE"] = str(cluster.token_path)
        with Client([cluster.node(leader).api_endpoint]) as client:
            committed = client.raft().commit_index
            before = {i: thread_cpu(pid, names[i]) for i, pid in pids.items() if pid is not None}
            endpoint = cluster.node(leader).api_endpoint
            loadgen = ["-c", str(args.concurrency), "--count", str(args.count), "--json", "--quiet"]
            out = subprocess.run(
                [sys.executable, "-m", "tools.loadgen", "--endpoints", endpoint, *loadgen],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            after = {i: thread_cpu(pid, names[i]) for i, pid in pids.items() if pid is not None}
            entries = client.raft().commit_index - committed
    load: dict[str, Any] = json.loads(out.splitlines()[-1])
    nodes = []
    for role, i in zip(("leader", "follower", "follower"), order, strict=True):
        per_thread = {
            name: round((after[i][name] - before[i].get(name, 0.0)) / args.count * 1000, 3)
            for name in after[i]
        }
        busy = {name: ms for name, ms in sorted(per_thread.items(), key=lambda kv: -kv[1]) if ms > 0}
        nodes.append({"role": role, "cpu_ms_per_write": round(sum(busy.values()), 3), "threads": busy})
    print(
        json.dumps(
            {
                "tree": os.getcwd(),
                "writes": args.count,
                "concurrency": args.concurrency,
                "entries_per_write": round(entries / args.count, 3),
                "ops_per_s": load["throughput_per_s"],
                "p50_ms": load.get("p50_ms"),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "nodes": nodes,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
