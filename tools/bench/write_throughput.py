"""Replicated write throughput and latency, side by side on one machine in one run:
Orion submits vs etcd 3.4 puts vs PySyncObj 0.3.17 dict sets, 3 members each on 127.0.0.1,
closed loop at concurrency 1, 16 and 64, all requests sent to the leader.

    .venv/bin/python -m tools.bench.write_throughput [--duration 8] [--levels 1,16,64] [--repeats 2]
    [--systems orion,etcd,pysyncobj]

- Orion: tools/loadgen.py's workers (``--mode`` threads or asyncio) against the leader's API;
  tasks carry a node selector no node matches, so they stay Pending and Docker is not
  involved. Durable: each Raft append is committed to DuckDB (WAL fsync) before it counts.
- etcd: Debian's etcd-server, puts of 200 B through the JSON gateway (/v3/kv/put) with a raw
  keep-alive HTTP client, one connection per worker thread (``--etcd-client aiohttp``: the
  older client, which costs etcd about a third of its rate at c >= 16); durable (WAL fsync
  before the ack).
- PySyncObj: sync set() from C threads in the leader's process, with the stock config (a call
  waits for the 100 ms append tick) and with batching off; plus async calls with 5,000
  outstanding. Not durable (in-memory log; its journal file is never fsynced either).

Orion and etcd run side by side: both clusters up, each level run on one then the other,
``--repeats`` times. ``--trees before=/tmp/w-before,after=/tmp/w-after`` compares revisions in
the same minutes: one Orion cluster per tree, all up at once, each level run on every one.
Every row has the servers' CPU per 1,000 writes (user + system time of
all three members over the level, /proc), each member's share (the leader first) and the
client's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from orion.testing.localcluster import LocalCluster
from tools import loadgen
from tools.baselines.etcd_cluster import EtcdCluster, put_load, put_load_raw
from tools.baselines.pysyncobj_node import PySyncObjCluster
from tools.bench.common import WRITE_BENCH_SETTINGS, log, save_result
from tools.bench.trees import parse_trees, started_from
from tools.bench.write_cpu import cpu_seconds
from tools.stats import summary


def row(system: str, concurrency: int | str, result: dict[str, Any], durable: str) -> dict[str, Any]:
    latencies = result["latencies"]
    return {
        "system": system,
        "concurrency": concurrency,
        "ops_per_s": round(len(latencies) / result["elapsed"], 1),
        "latency_ms": summary(latencies, 1e3),
        "errors": result["errors"],
        "durable": durable,
    }


def per_member(pids: list[int], before: list[float], writes: int) -> list[float]:
    """Each member's CPU ms per 1,000 writes since ``before`` (``cpu_seconds`` of each pid),
    in the order of ``pids``: the leader first. What bounds a rate on shared cores is the sum;
    what each member spends shows which role pays for it."""
    spent = [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
    return [round(seconds * 1e6 / writes, 1) for seconds in spent]


def orion_row(cluster: LocalCluster, concurrency: int, duration: float, mode: str) -> dict[str, Any]:
    leader = cluster.leader_index()
    assert leader is not None
    endpoint = cluster.node(leader).api_endpoint
    args = loadgen.parse_args(
        [
            "--endpoints",
            endpoint,
            "-c",
            str(concurrency),
            "--duration",
            str(duration),
            "--mode",
            mode,
            "--quiet",
        ]
    )
    args.endpoints = [endpoint]
    pids = [n.pid for n in sorted(cluster.nodes, key=lambda n: n.index != leader) if n.pid]
    before = [cpu_seconds(pid) for pid in pids]
    result = loadgen.run(args)
    writes = max(1, round(result["throughput_per_s"] * duration))
    members = per_member(pids, before, writes)
    log(f"orion {mode} c={concurrency}: {result['throughput_per_s']}/s")
    return {
        "system": f"orion ({mode} client)",
        "concurrency": concurrency,
        "ops_per_s": result["throughput_per_s"],
        "latency_ms": {k: result[f"{k}_ms"] for k in ("p50", "p90", "p99", "max")},
        "errors": result["errors_by_kind"],
        "server_cpu_ms_per_1k": round(sum(members), 1),
        "member_cpu_ms_per_1k": members,  # the leader first
        "client_cpu_ms_per_1k": result["client_cpu_ms_per_1k"],
        "durable": "yes: DuckDB WAL fsync per Raft append, leader and followers",
    }


def etcd_row(etcd: EtcdCluster, concurrency: int, duration: float, client: str) -> dict[str, Any]:
    leader = etcd.leader_index()
    assert leader is not None
    url = etcd.members[leader].url
    members = sorted(range(len(etcd.members)), key=lambda i: i != leader)
    pids = [p.pid for i in members if (p := etcd.members[i].process) is not None]
    before, client_cpu = [cpu_seconds(pid) for pid in pids], time.process_time()
    if client == "raw":
        result = put_load_raw(url, concurrency, duration)
    else:
        result = asyncio.run(put_load(url, concurrency, duration))
    client_cpu = time.process_time() - client_cpu
    name = "etcd 3.4 (raw keep-alive client)" if client == "raw" else "etcd 3.4 (aiohttp client)"
    out = row(name, concurrency, result, "yes: WAL fsync before the ack")
    writes = max(1, len(result["latencies"]))
    out["member_cpu_ms_per_1k"] = per_member(pids, before, writes)  # the leader first
    out["server_cpu_ms_per_1k"] = round(sum(out["member_cpu_ms_per_1k"]), 1)
    out["client_cpu_ms_per_1k"] = round(client_cpu * 1e6 / writes, 1)
    log(f"{name} c={concurrency}: {out['ops_per_s']}/s")
    return out


def side_by_side(
    base: Path, levels: list[int], duration: float, systems: list[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Orion and etcd up at once, their runs interleaved level by level, ``--repeats`` times,
    so both see the same machine (the load of other work moves both alike)."""
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        etcd = None
        clusters: dict[str, LocalCluster] = {}
        if "orion" in systems:
            trees: dict[str, Path | None] = parse_trees(args.trees) if args.trees else {"": None}
            for name, tree in trees.items():
                cluster = stack.enter_context(
                    LocalCluster(3, base / f"orion{name}", settings=WRITE_BENCH_SETTINGS)
                )
                with started_from(tree):
                    cluster.start()
                clusters[name] = cluster
        if "etcd" in systems:
            etcd = stack.enter_context(EtcdCluster(base / "etcd"))
            etcd.start()
            leader = etcd.leader_index()
            assert leader is not None
            put_load_raw(etcd.members[leader].url, 4, 1.0)  # warm up the leader
        for repeat in range(1, args.repeats + 1):
            for concurrency in levels:
                # The machine may be shared: each row says how loaded it was when it ended.
                for name, cluster in clusters.items():
                    for mode in args.modes.split(","):
                        measured = orion_row(cluster, concurrency, duration, mode)
                        if name:
                            measured["system"] += f" [{name}]"
                        rows.append({**measured, "repeat": repeat, "load_avg": os.getloadavg()})
                if etcd is not None:
                    measured = etcd_row(etcd, concurrency, duration, args.etcd_client)
                    rows.append({**measured, "repeat": repeat, "load_avg": os.getloadavg()})
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per concurrency and repeat: Orion's rate over etcd's, and its p50 latency over etcd's."""
    out = []
    for r in rows:
        if not r["system"].startswith("orion"):
            continue
        peer = next(
            (
                e
                for e in rows
                if e["system"].startswith("etcd")
                and e["concurrency"] == r["concurrency"]
                and e.get("repeat") == r.get("repeat")
            ),
            None,
        )
        if peer is None or not peer["ops_per_s"]:
            continue
        out.append(
            {
                "concurrency": r["concurrency"],
                "repeat": r.get("repeat"),
                "orion": r["system"],
                "throughput_ratio": round(r["ops_per_s"] / peer["ops_per_s"], 3),
                "p50_latency_ratio": round(r["latency_ms"]["p50"] / max(peer["latency_ms"]["p50"], 1e-9), 2),
                "server_cpu_ratio": round(
                    r["server_cpu_ms_per_1k"] / max(peer["server_cpu_ms_per_1k"], 1e-9), 2
                ),
            }
        )
    return out


def pysyncobj_rows(base: Path, levels: list[int], duration: float) -> list[dict[str, Any]]:
    rows = []
    durable = "no: in-memory log (a journal file would not be fsynced either)"
    for mode in ("default", "nobatch"):
        with PySyncObjCluster(base / f"pysyncobj-{mode}", mode) as cluster:
            cluster.start()
            leader = cluster.leader_index()
            assert leader is not None
            for concurrency in levels:
                result = cluster.ask(leader, f"bench sync {concurrency} {duration}")
                rows.append(row(f"pysyncobj {mode} (sync calls)", concurrency, result, durable))
                log(f"pysyncobj {mode} c={concurrency}: {rows[-1]['ops_per_s']}/s")
            result = cluster.ask(leader, f"bench async 5000 {duration}")
            rows.append(row(f"pysyncobj {mode} (async)", "5000 outstanding", result, durable))
            log(f"pysyncobj {mode} async: {rows[-1]['ops_per_s']}/s")
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| system | concurrency | ops/s | p50 ms | p99 ms | server CPU ms/1k (leader; followers) "
        "| client CPU ms/1k | errors | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lat = r["latency_ms"]
        load = f"{r['load_avg'][0]:.1f}" if "load_avg" in r else "-"
        members = r.get("member_cpu_ms_per_1k")
        split = f" ({members[0]}; {', '.join(str(m) for m in members[1:])})" if members else ""
        print(
            f"| {r['system']} | {r['concurrency']} | {r['ops_per_s']:,.0f} | {lat.get('p50', 0):.2f} "
            f"| {lat.get('p99', 0):.2f} | {r.get('server_cpu_ms_per_1k', '-')}{split} "
            f"| {r.get('client_cpu_ms_per_1k', '-')} | {sum(r['errors'].values())} | {load} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per level")
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--repeats", type=int, default=1, help="Orion and etcd interleaved, this many times")
    parser.add_argument("--modes", default="threads", help="Orion client modes (threads, asyncio)")
    parser.add_argument("--etcd-client", choices=("raw", "aiohttp"), default="raw")
    parser.add_argument("--systems", default="orion,etcd", help="orion, etcd, pysyncobj")
    parser.add_argument(
        "--trees",
        default="",
        help="NAME=PATH,...: one Orion cluster per source tree (e.g. git worktrees of two commits), "
        "all up at once and interleaved with etcd level by level",
    )
    parser.add_argument(
        "--name", default="write_throughput", help="results file: benchmarks/results/<name>.json"
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    systems = args.systems.split(",")
    base = Path(tempfile.mkdtemp(prefix="orion-bench-write-"))
    log(f"load average at start: {os.getloadavg()}")
    try:
        rows = (
            side_by_side(base, levels, args.duration, systems, args)
            if {"orion", "etcd"} & set(systems)
            else []
        )
        if "pysyncobj" in systems:
            rows += pysyncobj_rows(base, levels, args.duration)
    finally:
        shutil.rmtree(base, ignore_errors=True)  # the clusters' data dirs, closed by now
    compared = ratios(rows)
    save_result(
        args.name,
        {"duration_s": args.duration, "load_avg_end": os.getloadavg(), "rows": rows, "ratios": compared},
    )
    print_table(rows)
    for r in compared:
        print(
            f"c={r['concurrency']} repeat {r['repeat']} {r['orion']}: "
            f"Orion/etcd throughput {r['throughput_ratio']}x, "
            f"p50 latency {r['p50_latency_ratio']}x etcd's, server CPU per write {r['server_cpu_ratio']}x"
        )


if __name__ == "__main__":
    main()
