"""CPU cost of the gossip core per member per second, in the deterministic simulator.

For each cluster size, members join through one seed and converge; then the cluster runs for a
measured period of simulated time (steady state, default LAN config with Lifeguard, 1% loss so
the indirect-probe and suspicion paths run too). Only CPU time spent inside the cores is counted
(``tick``, ``receive``, ``drain_*``, ``next_deadline``; measured with ``time.process_time`` around
each call, so the figure includes that call's own overhead, roughly 1 µs per core call).

    python -m tools.bench.gossip [--sizes 64 512] [--seconds 120] [--loss 0.01]
"""

from __future__ import annotations

import argparse
import time

from orion.gossip.config import GossipConfig
from orion.sim.gossip_cluster import GossipCluster


def bench(size: int, seconds: float, loss: float, seed: int) -> tuple[float, float, float, int]:
    cluster = GossipCluster(size, GossipConfig(), seed, loss=loss, record_events=False, measure_cpu=True)
    cluster.join_all()
    if not cluster.run_until_true(cluster.converged, timeout=300, step=5.0):
        raise SystemExit(f"{size} members did not converge")
    converged_at = cluster.now
    # Steady state: wait until the join's broadcasts have all been piggybacked away.
    cluster.run_until_true(lambda: all(c.pending_broadcasts == 0 for c in cluster.cores.values()), 600, 5.0)
    cluster.run_for(10.0)
    cpu_before, delivered_before = cluster.core_seconds, cluster.delivered
    cluster.run_for(seconds)
    cpu = cluster.core_seconds - cpu_before
    messages = cluster.delivered - delivered_before
    per_member_second = cpu / (size * seconds)
    return (
        per_member_second,
        messages / (size * seconds),
        converged_at,
        sum(1 for core in cluster.cores.values() for m in core.members() if m.status != "alive"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated seconds measured")
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"gossip core CPU per member per second (default config, Lifeguard on, loss {args.loss:g})")
    print(f"{'members':>7} {'CPU us/member/s':>15} {'% of a core':>11} {'msgs/member/s':>13} {'join s':>6}")
    for size in args.sizes:
        wall = time.perf_counter()
        per_member, msgs, converged_at, not_alive = bench(size, args.seconds, args.loss, args.seed)
        print(
            f"{size:>7} {per_member * 1e6:>15.1f} {per_member * 100:>11.4f} {msgs:>13.1f} "
            f"{converged_at:>6.1f}"
            f"   (wall {time.perf_counter() - wall:.1f} s; {not_alive} non-alive views at end)"
        )


if __name__ == "__main__":
    main()
