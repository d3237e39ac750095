"""Replicated write throughput and latency, side by side on one machine in one run:
Orion submits vs etcd 3.4 puts vs PySyncObj 0.3.17 dict sets, 3 members each on 127.0.0.1,
closed loop at concurrency 1, 16 and 64, all requests sent to the leader.

    .venv/bin/python -m tools.bench.write_throughput [--duration 5] [--levels 1,16,64]

- Orion: tools/loadgen.py's workers (``--mode`` threads or asyncio) against the leader's API;
  tasks carry a node selector no node matches, so they stay Pending and Docker is not
  involved. Durable: each Raft append is committed to DuckDB (WAL fsync) before it counts.
- etcd: Debian's etcd-server, puts of 200 B through the JSON gateway (/v3/kv/put) with an
  aiohttp client; durable (WAL fsync before the ack).
- PySyncObj: sync set() from C threads in the leader's process, with the stock config (a call
  waits for the 100 ms append tick) and with batching off; plus async calls with 5,000
  outstanding. Not durable (in-memory log; its journal file is never fsynced either).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from orion.testing.localcluster import LocalCluster
from tools import loadgen
from tools.baselines.etcd_cluster import EtcdCluster, put_load
from tools.baselines.pysyncobj_node import PySyncObjCluster
from tools.bench.common import log, save_result
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


def orion_rows(base: Path, levels: list[int], duration: float, modes: list[str]) -> list[dict[str, Any]]:
    rows = []
    with LocalCluster(3, base / "orion") as cluster:
        cluster.start()
        leader = cluster.leader_index()
        assert leader is not None
        endpoint = cluster.node(leader).api_endpoint
        for mode in modes:
            for concurrency in levels:
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
                recorder_result = loadgen.run(args)
                log(f"orion {mode} c={concurrency}: {recorder_result['throughput_per_s']}/s")
                rows.append(
                    {
                        "system": f"orion ({mode} client)",
                        "concurrency": concurrency,
                        "ops_per_s": recorder_result["throughput_per_s"],
                        "latency_ms": {k: recorder_result[f"{k}_ms"] for k in ("p50", "p90", "p99", "max")},
                        "errors": recorder_result["errors_by_kind"],
                        "client_cpu_ms_per_1k": recorder_result["client_cpu_ms_per_1k"],
                        "durable": "yes: DuckDB WAL fsync per Raft append, leader and followers",
                    }
                )
    return rows


def etcd_rows(base: Path, levels: list[int], duration: float) -> list[dict[str, Any]]:
    rows = []
    with EtcdCluster(base / "etcd") as etcd:
        etcd.start()
        leader = etcd.leader_index()
        assert leader is not None
        url = etcd.members[leader].url
        asyncio.run(put_load(url, 4, 1.0))  # warm up connections and the leader
        for concurrency in levels:
            result = asyncio.run(put_load(url, concurrency, duration))
            rows.append(row("etcd 3.4", concurrency, result, "yes: WAL fsync before the ack"))
            log(f"etcd c={concurrency}: {rows[-1]['ops_per_s']}/s")
    return rows


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
    print("| system | concurrency | ops/s | p50 ms | p99 ms | errors | durable |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        lat = r["latency_ms"]
        print(
            f"| {r['system']} | {r['concurrency']} | {r['ops_per_s']:,.0f} | {lat.get('p50', 0):.2f} "
            f"| {lat.get('p99', 0):.2f} | {sum(r['errors'].values())} | {r['durable']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per level")
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--modes", default="threads,asyncio", help="Orion client modes")
    parser.add_argument("--systems", default="orion,etcd,pysyncobj")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    systems = args.systems.split(",")
    base = Path(tempfile.mkdtemp(prefix="orion-bench-write-"))
    rows: list[dict[str, Any]] = []
    if "orion" in systems:
        rows += orion_rows(base, levels, args.duration, args.modes.split(","))
    if "etcd" in systems:
        rows += etcd_rows(base, levels, args.duration)
    if "pysyncobj" in systems:
        rows += pysyncobj_rows(base, levels, args.duration)
    save_result("write_throughput", {"duration_s": args.duration, "rows": rows})
    print_table(rows)


if __name__ == "__main__":
    main()
