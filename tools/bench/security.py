"""The cost of security, side by side in one run: the same 3-node local cluster secured
(CURVE between nodes, client token) and with ``[security] insecure = true``.

    .venv/bin/python -m tools.bench.security [--rounds 2] [--duration 8] [--failovers 3]

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
from pathlib import Path
from typing import Any

from orion.security.keys import ClusterKey
from orion.testing.localcluster import LocalCluster
from tools import loadgen
from tools.bench import transport
from tools.bench.common import log, save_result
from tools.bench.failover import orion_failover_once
from tools.stats import p50, p99, summary

FRAME_BYTES = 300
MODES = ("secure", "insecure")


def throughput(cluster: LocalCluster, duration: float, concurrency: int) -> dict[str, Any]:
    args = loadgen.parse_args(["-c", str(concurrency), "--duration", str(duration), "--quiet", "--json"])
    args.endpoints = cluster.endpoints
    return loadgen.run(args)


def transport_cost(secure: bool, frames: int = 50_000, pings: int = 2_000) -> dict[str, float]:
    """One-way frames/s and round-trip latency of 300-byte frames, with CURVE when ``secure``."""
    key = ClusterKey.generate() if secure else None
    # A window under the Raft DEALER's SNDHWM (1000) so nothing is dropped.
    rate, _ = transport.one_way(frames, FRAME_BYTES, window=500, batch=100, curve=key)
    rtts = transport.round_trip(pings, FRAME_BYTES, curve=key)
    return {
        "one_way_frames_per_s": round(rate),
        "rtt_p50_us": round(p50(rtts) * 1e6, 1),
        "rtt_p99_us": round(p99(rtts) * 1e6, 1),
    }


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
    links: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for round_number in range(args.rounds):
        order = MODES if round_number % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            links[mode].append(transport_cost(mode == "secure"))
            log(f"round {round_number + 1} transport {mode}: {links[mode][-1]}")
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
                    failovers[mode].append(orion_failover_once(cluster))
                    log(f"round {round_number + 1} {mode}: failover {failovers[mode][-1]:.3f} s")
    result: dict[str, Any] = {"settings": vars(args)}
    for mode in MODES:
        result[mode] = {
            "transport_one_way_frames_per_s": [t["one_way_frames_per_s"] for t in links[mode]],
            "transport_rtt_p50_us": [t["rtt_p50_us"] for t in links[mode]],
            "transport_rtt_p99_us": [t["rtt_p99_us"] for t in links[mode]],
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
