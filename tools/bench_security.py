"""The cost of security, side by side in one run: the same 3-node local cluster secured
(CURVE between nodes, client token) and with ``[security] insecure = true``.

    .venv/bin/python tools/bench_security.py [--rounds 2] [--duration 8] [--failovers 3]

Per round, each mode in turn (order A B B A ... so drift in machine load hits both alike):
- write throughput: tools/loadgen.py, closed loop, 16 threads, unplaceable tasks (replicated
  writes through Raft, no Docker), for ``--duration`` seconds;
- leader failover: kill -9 the leader, time until the survivors accept a write (the probe
  retries every <= 0.3 s), then restart it and wait for the cluster to settle;
and, in the same order each round, the raw transport cost: one-way frames/s and round-trip
latency of 300-byte frames between two PeerTransports in one process, with and without CURVE.
Results go to benchmarks/results/security.json; method and figures to benchmarks/security.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import loadgen
from bench_common import log, save_result, summary, wait_for

from orion.client import Client
from orion.security.keys import ClusterKey
from orion.testing.localcluster import LocalCluster
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport

PROBE_TIMEOUT_S = 0.3
UNPLACEABLE = {"orion.bench": "never-matches"}
MODES = ("secure", "insecure")


def throughput(cluster: LocalCluster, duration: float, concurrency: int) -> dict[str, Any]:
    args = loadgen.parse_args(["-c", str(concurrency), "--duration", str(duration), "--quiet", "--json"])
    args.endpoints = cluster.endpoints
    return loadgen.run(args)


def failover(cluster: LocalCluster) -> float:
    leader = wait_for(cluster.leader_index, 30, what="a leader")
    survivors = [n.api_endpoint for n in cluster.nodes if n.index != leader]
    with cluster.client(timeout=5.0) as client:  # the cluster works before the kill
        client.submit("orion-busybox:latest", node_selectors=UNPLACEABLE)
    start = time.perf_counter()
    cluster.kill(leader)
    with Client(survivors, timeout=PROBE_TIMEOUT_S, retries=1, token=cluster.token or "") as client:
        while True:
            try:
                client.submit("orion-busybox:latest", node_selectors=UNPLACEABLE)
                break
            except Exception:
                continue
    elapsed = time.perf_counter() - start
    cluster.start_node(leader)
    cluster.wait_ready(60)
    return elapsed


def transport_cost(secure: bool, frames: int = 50_000, pings: int = 2_000) -> dict[str, float]:
    key = ClusterKey.generate() if secure else None
    count = [0]
    last_at = [0.0]
    a_inbox: list[bytes] = []
    pong = threading.Event()

    def on_b(channel: Channel, payload: bytes) -> None:
        if payload[:1] == b"p":
            b.send(a.address, Channel.RAFT, payload)
            return
        count[0] += 1
        last_at[0] = time.perf_counter()

    def on_a(channel: Channel, payload: bytes) -> None:
        a_inbox.append(payload)
        pong.set()

    a = PeerTransport("127.0.0.1", 0, on_a, name="bench-a", curve=key)
    b = PeerTransport("127.0.0.1", 0, on_b, name="bench-b", curve=key)
    a.start()
    b.start()
    try:
        payload = b"x" * 300
        for _ in range(20):  # connect both ways before measuring
            pong.clear()
            a.send(b.address, Channel.RAFT, b"p-warm")
            pong.wait(2.0)
        start = time.perf_counter()
        sent = 0
        while sent < frames:  # keep under the Raft DEALER's SNDHWM (1000) so nothing is dropped
            if sent - count[0] < 500:
                a.send_many(b.address, Channel.RAFT, [payload] * 100)
                sent += 100
            else:
                time.sleep(0.0002)
        # A frame can still be dropped on a full queue (by design): rate = what arrived.
        seen = -1
        while count[0] != seen and count[0] < frames:
            seen = count[0]
            time.sleep(0.5)
        one_way = count[0] / (last_at[0] - start)
        rtts = []
        for i in range(pings):
            pong.clear()
            sent = time.perf_counter()
            a.send(b.address, Channel.RAFT, b"p%d" % i)
            if pong.wait(2.0):
                rtts.append(time.perf_counter() - sent)
        rtts.sort()
        return {
            "one_way_frames_per_s": round(one_way),
            "rtt_p50_us": round(rtts[len(rtts) // 2] * 1e6, 1),
            "rtt_p99_us": round(rtts[int(len(rtts) * 0.99)] * 1e6, 1),
        }
    finally:
        a.stop()
        b.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of (secure, insecure), order alternating"
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per throughput run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--failovers", type=int, default=3, help="leader kills per mode per round")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="orion-bench-security-"))
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    failovers: dict[str, list[float]] = {m: [] for m in MODES}
    transport: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for round_number in range(args.rounds):
        order = MODES if round_number % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            transport[mode].append(transport_cost(mode == "secure"))
            log(f"round {round_number + 1} transport {mode}: {transport[mode][-1]}")
        for mode in order:
            where = base / f"r{round_number}-{mode}"
            with LocalCluster(3, where, insecure=mode == "insecure") as cluster:
                cluster.start()
                result = throughput(cluster, args.duration, args.concurrency)
                runs[mode].append(result)
                log(
                    f"round {round_number + 1} {mode}: {result['throughput_per_s']}/s "
                    f"p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms errors {result['errors']}"
                )
                for _ in range(args.failovers):
                    failovers[mode].append(failover(cluster))
                    log(f"round {round_number + 1} {mode}: failover {failovers[mode][-1]:.3f} s")
    result: dict[str, Any] = {"settings": vars(args)}
    for mode in MODES:
        result[mode] = {
            "transport_one_way_frames_per_s": [t["one_way_frames_per_s"] for t in transport[mode]],
            "transport_rtt_p50_us": [t["rtt_p50_us"] for t in transport[mode]],
            "transport_rtt_p99_us": [t["rtt_p99_us"] for t in transport[mode]],
            "throughput_per_s": [r["throughput_per_s"] for r in runs[mode]],
            "throughput_median_per_s": statistics.median(r["throughput_per_s"] for r in runs[mode]),
            "ack_p50_ms": [r["p50_ms"] for r in runs[mode]],
            "ack_p99_ms": [r["p99_ms"] for r in runs[mode]],
            "errors": sum(r["errors"] for r in runs[mode]),
            "failover_s": summary(failovers[mode]),
            "failover_samples_s": [round(s, 3) for s in failovers[mode]],
        }
    save_result("security", result)


if __name__ == "__main__":
    main()
