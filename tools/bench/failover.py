"""Leader failover, side by side: kill -9 the leader, then time until a write is accepted
by the survivors. Orion vs etcd 3.4 vs PySyncObj 0.3.17, 3 members each on 127.0.0.1,
``--runs`` runs each (the killed member is restarted and the cluster settles between runs).

    .venv/bin/python -m tools.bench.failover [--runs 10]

Election settings are each system's defaults: Orion tick 50 ms x election_ticks 10 (PreVote,
CheckQuorum); etcd heartbeat 100 ms, election 1,000 ms; PySyncObj raftMinTimeout 0.4 s,
raftMaxTimeout 1.4 s. The probe retries a write every <= 0.3 s (a fresh attempt after each
timeout), so figures carry up to that much probe granularity.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from orion.testing.localcluster import LocalCluster
from tools.baselines.etcd_cluster import EtcdCluster, put_once
from tools.baselines.pysyncobj_node import PySyncObjCluster
from tools.bench.common import log, save_result, wait_for, wait_for_index
from tools.stats import summary

PROBE_TIMEOUT_S = 0.3
IMAGE = "orion-busybox:latest"
UNPLACEABLE = {"orion.bench": "never-matches"}


def orion_failover_once(cluster: LocalCluster) -> float:
    """Seconds from kill -9 of the leader until a survivor accepts a write; the killed node is
    then restarted and the cluster left settled for the next run."""
    leader = wait_for(cluster.leader_index, 30, what="an Orion leader")
    survivors = [n.index for n in cluster.nodes if n.index != leader]
    with cluster.client(timeout=5.0) as client:  # a write before: the cluster works
        client.submit(IMAGE, node_selectors=UNPLACEABLE)
    start = time.perf_counter()
    cluster.kill(leader)
    with cluster.client(*survivors, timeout=PROBE_TIMEOUT_S, retries=1) as client:
        while True:
            try:
                client.submit(IMAGE, node_selectors=UNPLACEABLE)
                break
            except Exception:
                continue  # no leader yet, or the dead one's endpoint: a fresh attempt
    elapsed = time.perf_counter() - start
    cluster.start_node(leader)
    cluster.wait_ready(60)
    return elapsed


def orion_failover(base: Path, runs: int) -> list[float]:
    samples = []
    with LocalCluster(3, base / "orion") as cluster:
        cluster.start()
        for run in range(runs):
            samples.append(orion_failover_once(cluster))
            log(f"orion run {run + 1}: {samples[-1]:.3f} s")
    return samples


def etcd_failover(base: Path, runs: int) -> list[float]:
    samples = []
    with EtcdCluster(base / "etcd") as etcd:
        etcd.start()
        for run in range(runs):
            leader = wait_for_index(etcd.leader_index, 30, what="an etcd leader")
            survivors = [m.url for i, m in enumerate(etcd.members) if i != leader]
            assert put_once(survivors[0], "before", 5.0)
            start = time.perf_counter()
            etcd.kill(leader)
            attempt = 0
            while not put_once(survivors[attempt % 2], f"probe-{uuid.uuid4().hex}", PROBE_TIMEOUT_S):
                attempt += 1
            samples.append(time.perf_counter() - start)
            log(f"etcd run {run + 1}: {samples[-1]:.3f} s")
            etcd.start_member(leader)
            wait_for(
                lambda i=leader: etcd.leader_index() is not None and put_once(etcd.members[i].url, "up", 1.0),
                60,
                what="the etcd member to rejoin",
            )
    return samples


def pysyncobj_failover(base: Path, runs: int) -> list[float]:
    samples = []
    with PySyncObjCluster(base / "pysyncobj", "default") as cluster:
        cluster.start()
        for run in range(runs):
            leader = wait_for_index(cluster.leader_index, 30, what="a PySyncObj leader")
            survivor = next(i for i in range(cluster.size) if i != leader)
            cluster.ask(survivor, "probe 5")
            start = time.time()
            cluster.kill(leader)
            answer = cluster.ask(survivor, f"probe {PROBE_TIMEOUT_S}")
            samples.append(answer["at"] - start)
            log(f"pysyncobj run {run + 1}: {samples[-1]:.3f} s")
            cluster.start_member(leader)
            wait_for(
                lambda i=leader: cluster.leader_index() is not None and cluster.ask(i, "probe 1"),
                60,
                what="the PySyncObj member to rejoin",
            )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--systems", default="orion,etcd,pysyncobj")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="orion-bench-failover-"))
    systems = args.systems.split(",")
    results: dict[str, Any] = {}
    if "orion" in systems:
        results["orion"] = orion_failover(base, args.runs)
    if "etcd" in systems:
        results["etcd 3.4"] = etcd_failover(base, args.runs)
    if "pysyncobj" in systems:
        results["pysyncobj (defaults, in memory)"] = pysyncobj_failover(base, args.runs)
    rows = {name: {"seconds": summary(s), "samples": [round(x, 3) for x in s]} for name, s in results.items()}
    save_result("failover", {"runs": args.runs, "probe_timeout_s": PROBE_TIMEOUT_S, "systems": rows})
    print("| system | runs | p50 s | p90 s | min s | max s |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        s = r["seconds"]
        print(f"| {name} | {s['n']} | {s['p50']:.2f} | {s['p90']:.2f} | {s['min']:.2f} | {s['max']:.2f} |")


if __name__ == "__main__":
    main()
