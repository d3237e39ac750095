"""CPU cost of the gossip core per member per second, in the deterministic simulator.

For each cluster size, members join through one seed and converge; then the cluster runs for a
measured period of simulated time (steady state, default LAN config with Lifeguard, 1% loss so
the indirect-probe and suspicion paths run too). Only CPU time spent inside the cores is counted
(``tick``, ``receive``, ``drain_*``, ``next_deadline``; measured with ``time.process_time`` around
each call, so the figure includes that call's own overhead, roughly 1 µs per core call).

    python -m tools.bench.gossip [--sizes 64 512] [--seconds 120] [--loss 0.01]

``--join`` measures a hollow pool's join instead (issue 20): N members with a hollow node's meta
join through one seed, five every 100 ms as a pool starts them, every message encoded and
decoded through one ``SharedDecoder`` as in a pool; it runs until every queue is empty and
prints when that was (simulated), the messages and updates delivered (deterministic for a seed)
and the CPU it took (rough: the simulator's own work is in it).

    python -m tools.bench.gossip --join --sizes 300 --budgets 1200 8192
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import uuid
from pathlib import Path

from orion.gossip.config import GossipConfig
from orion.gossip.messages import SharedDecoder, encoded_updates, shared_alives
from orion.model import NodeMeta
from orion.sim.gossip_cluster import GossipCluster

JOIN_BATCH, JOIN_GAP_S = 5, 0.1  # as orion/hollow/pool.py starts its nodes


def hollow_like_meta(index: int, cluster_id: str) -> NodeMeta:
    """A hollow node's meta (orion.hollow.pool.hollow_meta): what an alive carries (~390 bytes)."""
    node_id = f"orion-abcdef-h{index}"
    address = f"127.1.{index // 250}.{index % 250 + 1}"
    return NodeMeta(
        id=node_id,
        role="node",
        address=address,
        raft_port=7600,
        gossip_port=7600,
        memory_total=64 << 30,
        cpu_total=64.0,
        disk_total=500 << 30,
        tags={"hollow": "1"},
        version=1,
        host_ip=address,
        port_space=f"hollow:{node_id}",
        raft_incarnation=uuid.UUID(int=index).hex,
        cluster_id=cluster_id,
    )


class PoolJoin(GossipCluster):
    """The simulator with a pool's decoding: one SharedDecoder for every member."""

    def __init__(self, size: int, config: GossipConfig, seed: int, identity_known: bool) -> None:
        super().__init__(0, config, seed, encode=True, record_events=False, delay=(0.0005, 0.002))
        self.decoder = SharedDecoder()
        self.updates_delivered = 0
        encoded_updates.max_entries = max(encoded_updates.max_entries, 256 * size)
        shared_alives.max_entries = max(shared_alives.max_entries, self.decoder.max_entries)  # as a pool
        self.cluster_id = uuid.UUID(int=seed).hex
        for index in range(size):
            # The seed is a voter with the cluster id; a pool's nodes start without one (they
            # take it from Raft or their feed) unless ``identity_known`` (session 6's model).
            known = index == 0 or identity_known
            self.add(hollow_like_meta(index, self.cluster_id if known else ""))

    def _deliver(self, node_id: str, payload: object) -> None:
        self.delivered += 1
        msg = self.decoder.decode(payload)  # type: ignore[arg-type]
        self.updates_delivered += len(getattr(msg, "updates", ()))
        self._run_core(node_id, lambda core: core.receive(msg, self.now))


def join_bench(size: int, budget: int, seed: int, identity_after: float | None) -> dict[str, float]:
    """``identity_after``: seconds from a member's join to the cluster id reaching it from Raft
    (its feed's first answer, for a worker); None: every member has it from the start."""
    config = GossipConfig(probe_interval=1.0, probe_timeout=0.5, packet_budget=budget)  # the pool's
    cluster = PoolJoin(size, config, seed, identity_known=identity_after is None)
    ids = cluster.ids
    identity_due: list[tuple[float, str]] = []  # (when, member), in join order

    def give_identities() -> None:
        while identity_due and identity_due[0][0] <= cluster.now:
            _, node_id = identity_due.pop(0)
            raft_incarnation = cluster.cores[node_id].meta.raft_incarnation
            cluster.set_identity(node_id, cluster.cluster_id, raft_incarnation)

    began = time.process_time()
    for first in range(1, size, JOIN_BATCH):
        for node_id in ids[first : first + JOIN_BATCH]:
            cluster.join(node_id, [ids[0]])
            if identity_after is not None:
                identity_due.append((cluster.now + identity_after, node_id))
        cluster.run_for(JOIN_GAP_S)
        give_identities()
    joined = cluster.now
    while identity_due:
        cluster.run_until(identity_due[0][0])
        give_identities()
    converged = cluster.run_until_true(cluster.converged, timeout=3600, step=1.0)
    converged_at = cluster.now if converged else float("nan")
    settled = cluster.run_until_true(
        lambda: cluster.converged() and all(c.pending_broadcasts == 0 for c in cluster.cores.values()),
        timeout=3600,
        step=1.0,
    )
    return {
        "joined_s": joined,
        "converged_s": converged_at,
        "settled_s": cluster.now if settled else float("nan"),
        "messages": cluster.delivered,
        "updates": cluster.updates_delivered,
        "cpu_s": time.process_time() - began,
        "not_alive": sum(1 for c in cluster.cores.values() for m in c.members() if m.status != "alive"),
    }


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
    parser.add_argument("--join", action="store_true", help="a hollow pool's join instead")
    parser.add_argument("--budgets", type=int, nargs="+", default=[1200], help="packet budgets (--join)")
    parser.add_argument(
        "--identity-after",
        type=float,
        default=2.0,
        help="--join: seconds from a member's join to its cluster id from Raft (< 0: known from the start)",
    )
    parser.add_argument("--out", help="--join: also write the rows here (JSON)")
    args = parser.parse_args()
    if args.join:
        # As a pool runs: no full collections (they would be timed as the join's).
        gc.set_threshold(10_000, 20, 10**9)
        print("a pool's join in the simulator: settled = every member's broadcast queue empty")
        print(
            f"{'members':>7} {'budget':>6} {'converged s':>11} {'settled s':>9} {'messages':>9} "
            f"{'updates':>10} {'CPU s':>6}"
        )
        rows: list[dict[str, float]] = []
        for size in args.sizes:
            for budget in args.budgets:
                identity_after = args.identity_after if args.identity_after >= 0 else None
                r = join_bench(size, budget, args.seed, identity_after)
                rows.append({"members": size, "budget": budget, "identity_after": args.identity_after, **r})
                print(
                    f"{size:>7} {budget:>6} {r['converged_s']:>11.1f} {r['settled_s']:>9.1f} "
                    f"{r['messages']:>9} {r['updates']:>10} {r['cpu_s']:>6.1f}"
                    f"   ({r['not_alive']:.0f} non-alive views at end)"
                )
        if args.out:
            Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
        return
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
