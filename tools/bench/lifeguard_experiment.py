"""Reproduce the Lifeguard result in the deterministic simulator: SWIM alone versus SWIM + Lifeguard.

N members (default 64) run for a simulated period. Some are impaired the way the paper impairs
them: a slow member processes every incoming message late (as if CPU-starved), by a delay drawn
uniformly from --delay. A few healthy members crash at spread-out times, to measure detection
latency. The same seeds (same impaired members, same crash times) run under both configurations.

Counted, summed over the observers' event streams:
- false suspicions / false deaths at healthy members: a member that is neither impaired nor
  crashed is marked suspect / dead in some member's view (each observer's mark counts once);
- impaired marked dead: the same for impaired members (slow, but not failed either);
- detection latency: from a crash to the first dead declaration, and to the last healthy member's.

    python -m tools.bench.lifeguard_experiment [--members 64] [--impaired 8] [--seeds 4] [--duration 420]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass, field

from orion.config import GossipSection
from orion.gossip.config import GossipConfig
from orion.sim.gossip_cluster import GossipCluster, ObservedEvent
from orion.units import parse_duration


@dataclass
class RunResult:
    false_suspicions: int = 0
    false_deaths: int = 0
    false_deaths_by_healthy: int = 0  # of false_deaths, those declared by a healthy observer
    impaired_deaths: int = 0
    first_detection: list[float] = field(default_factory=list)
    full_detection: list[float] = field(default_factory=list)
    undetected: int = 0
    max_local_health: int = 0
    core_seconds: float = 0.0


def run_once(config: GossipConfig, args: argparse.Namespace, seed: int) -> RunResult:
    cluster = GossipCluster(args.members, config, seed, loss=args.loss, record_events=False)
    plan = random.Random(seed * 7919 + 1)
    ids = cluster.ids
    impaired = set(plan.sample(ids[1:], args.impaired))  # the seed member stays healthy
    healthy_pool = [node for node in ids[1:] if node not in impaired]
    victims = plan.sample(healthy_pool, args.crashes)
    active = args.duration - args.warmup - args.settle
    crash_times = {
        victim: args.warmup + active * (index + plan.random()) / args.crashes
        for index, victim in enumerate(victims)
    }
    result = RunResult()
    crashed_at: dict[str, float] = {}
    dead_seen: dict[str, set[str]] = {victim: set() for victim in victims}

    def observe(observed: ObservedEvent) -> None:
        if observed.at < args.warmup:
            return  # joining: not part of the measurement
        event = observed.event
        target = event.node_id
        if target in crashed_at:
            if (
                event.kind == "dead"
                and observed.observer not in impaired
                and observed.observer not in crashed_at
            ):
                seen = dead_seen[target]
                if not seen:
                    result.first_detection.append(observed.at - crashed_at[target])
                seen.add(observed.observer)
                if len(seen) == len(healthy_observers) - len(crashed_at):
                    result.full_detection.append(observed.at - crashed_at[target])
            return
        if target in impaired:
            if event.kind == "dead":
                result.impaired_deaths += 1
        elif event.kind == "suspect":
            result.false_suspicions += 1
        elif event.kind == "dead":
            result.false_deaths += 1
            if observed.observer not in impaired:
                result.false_deaths_by_healthy += 1

    healthy_observers = [node for node in ids if node not in impaired]
    cluster.on_event = observe
    cluster.join_all()
    cluster.run_until(args.warmup / 2)
    for node in impaired:
        cluster.set_slow(node, (args.delay[0], args.delay[1]))
    cluster.run_until(args.warmup)
    for victim, at in sorted(crash_times.items(), key=lambda item: item[1]):
        cluster.run_until(at)
        cluster.crash(victim)
        crashed_at[victim] = at
    cluster.run_until(args.duration)
    result.undetected = sum(
        1 for victim in victims if len(dead_seen[victim]) < len(healthy_observers) - len(victims)
    )
    result.max_local_health = max(cluster.cores[node].local_health for node in impaired) if impaired else 0
    result.core_seconds = cluster.core_seconds
    return result


def summarise(name: str, results: list[RunResult]) -> dict[str, object]:
    first = [x for r in results for x in r.first_detection]
    full = [x for r in results for x in r.full_detection]
    return {
        "name": name,
        "false_suspicions": sum(r.false_suspicions for r in results),
        "false_deaths": sum(r.false_deaths for r in results),
        "by_healthy": sum(r.false_deaths_by_healthy for r in results),
        "impaired_deaths": sum(r.impaired_deaths for r in results),
        "first": statistics.mean(first) if first else float("nan"),
        "full": statistics.mean(full) if full else float("nan"),
        "full_p99": max(full) if full else float("nan"),
        "undetected": sum(r.undetected for r in results),
        "crashes": sum(len(r.first_detection) for r in results),
        "health": max(r.max_local_health for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--impaired", type=int, default=8, help="slow members (CPU-starved)")
    parser.add_argument(
        "--delay", type=float, nargs=2, default=(1.0, 12.0), metavar=("MIN", "MAX"),
        help="late processing of each incoming message at a slow member, seconds (uniform)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=420.0, help="simulated seconds per run")
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=120.0, help="no crashes in the last part of a run")
    parser.add_argument("--crashes", type=int, default=3, help="healthy members crashed per run")
    parser.add_argument("--loss", type=float, default=0.0, help="datagram loss rate")
    node = GossipSection()  # the probe settings default to an `orion node`'s
    parser.add_argument("--probe-interval", default=str(node.probe_interval), help="[gossip] probe_interval")
    parser.add_argument("--probe-timeout", default=str(node.probe_timeout), help="[gossip] probe_timeout")
    parser.add_argument(
        "--suspicion-mult", type=int, default=node.suspicion_mult, help="[gossip] suspicion_mult"
    )
    args = parser.parse_args()

    wall = time.perf_counter()
    base = GossipConfig(
        probe_interval=parse_duration(args.probe_interval, "--probe-interval"),
        probe_timeout=parse_duration(args.probe_timeout, "--probe-timeout"),
        suspicion_mult=args.suspicion_mult,
    )
    configs = {"swim": base.without_lifeguard(), "lifeguard": base}
    rows = []
    for name, config in configs.items():
        results = [run_once(config, args, seed) for seed in range(1, args.seeds + 1)]
        rows.append(summarise(name, results))

    print(
        f"Lifeguard experiment: {args.members} members, {args.impaired} slow "
        f"(incoming messages processed {args.delay[0]:g}-{args.delay[1]:g} s late), "
        f"{args.crashes} crashes per run, {args.seeds} seeds x {args.duration:g} s simulated, "
        f"loss {args.loss:g}; probe {base.probe_interval:g} s, timeout {base.probe_timeout:g} s, "
        f"suspicion_mult {base.suspicion_mult}"
    )
    header = (
        f"{'config':<10} {'false suspicions':>16} {'false deaths':>12} {'by healthy':>10} "
        f"{'slow marked dead':>16} "
        f"{'detect first s':>14} {'detect all s':>12} {'all max s':>9} {'undetected':>10} {'max health':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['name']:<10} {row['false_suspicions']:>16} {row['false_deaths']:>12} "
            f"{row['by_healthy']:>10} "
            f"{row['impaired_deaths']:>16} {row['first']:>14.2f} {row['full']:>12.2f} "
            f"{row['full_p99']:>9.2f} "
            f"{row['undetected']:>10} {row['health']:>10}"
        )
    elapsed = time.perf_counter() - wall
    print(
        "(false suspicions/deaths: healthy members marked suspect/dead, summed over observers; "
        f"by healthy: marked dead by a healthy observer; wall time {elapsed:.1f} s)"
    )
    swim, lifeguard = rows[0]["false_deaths"], rows[1]["false_deaths"]
    reduction = int(swim) / max(1, int(lifeguard))  # type: ignore[call-overload]
    print(f"false positives: swim={swim} lifeguard={lifeguard} reduction={reduction:.1f}x")


if __name__ == "__main__":
    main()
