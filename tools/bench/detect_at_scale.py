"""How long a crashed member takes to be declared dead at N members, in the simulator (issue 20).

The issue's goal "a lost node's tasks placed elsewhere within 10 s" at 1,000 nodes starts with
gossip: the leader's scheduler moves a node's tasks once the leader's own gossip core holds the
node dead. The live 1,000-node rig can only run the gossip in slow motion (two shared cores for
1,000 hollow nodes), so this measures the protocol itself at real timing: the deterministic
simulator (orion/sim/gossip_cluster.py; virtual time, every member with a CPU of its own) runs
N real ``SwimCore``s with exactly the gossip configuration an ``orion node`` with no [gossip]
section runs (``gossip_config_from`` of the default config: 500 ms probes, 250 ms probe timeout,
suspicion_mult 4, Lifeguard on, 200 ms gossip rounds); ``--suspicion-mult`` tries another.

Per cluster (a seed): N members join through n000, converge, and run until every broadcast
queue is empty (steady state); that state is pickled. Per trial (a victim): the snapshot is
restored, runs ``--idle`` seconds plus a random phase below one probe interval, then the victim
crashes (stops sending and answering) and the cluster runs until every running member holds it
dead. n000 plays the Raft leader. Measured from the crash:

- first suspicion (any member), first dead declaration (any member), the leader holding it dead,
  every running member holding it dead;
- the suspicion timeout each member that declared the victim dead on its own timer actually
  applied, with the Lifeguard confirmations it had by then (k = suspicion_mult - 2 wanted: the
  timeout starts at 6x the minimum and falls to the minimum as they arrive), and when the first
  declarer's confirmations arrived;
- false suspicions and false dead declarations: any member other than the victim marked suspect
  or dead, by any observer, over the whole trial (idle window included).

Trials of one cluster share its converged state and the idle window before the crash (the same
simulated seconds replayed: a false suspicion there is counted in each of them); each has its
own victim and crash phase, and everything after the crash follows from those.

    python -m tools.bench.detect_at_scale --sizes 100 300 1000 --clusters 2 --victims 10 \\
        --loss 0 0.01 --out benchmarks/results/detect_at_scale.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from orion.actors.gossip_actor import gossip_config_from
from orion.config import parse_config
from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.suspicion import Suspicion
from orion.gossip.timing import suspicion_timeout
from orion.sim.gossip_cluster import GossipCluster, ObservedEvent

LEADER = "n000"  # the member playing the Raft leader (also every member's join seed)
TRIAL_LIMIT_S = 120.0  # a victim not held dead by everyone this long after its crash is "undetected"


def node_gossip_config() -> GossipConfig:
    """The GossipConfig of an ``orion node`` whose config file has no [gossip] section."""
    return gossip_config_from(parse_config('[node]\nid = "n000"\n'))


class DetectCluster(GossipCluster):
    """The simulator, also noting each member's suspicion of the victim as it changes.

    After every call into a core (a tick or a delivered datagram) the core's open suspicion of
    the victim, if any, is looked at: a new one is noted with its time, and each change of its
    confirmation count with the time it happened.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.victim: str | None = None
        # member -> (its suspicion of the victim, [(time, confirmations)]), the latest one
        self.suspicions: dict[str, tuple[Suspicion, list[tuple[float, int]]]] = {}

    def _run_core(self, node_id: str, action: Callable[[SwimCore], None]) -> None:
        super()._run_core(node_id, action)
        if self.victim is None:
            return
        # The core's open suspicions are not part of its API; the benchmark reads them.
        suspicion = self.cores[node_id]._suspicions.get(self.victim)
        if suspicion is None:
            return
        noted = self.suspicions.get(node_id)
        if noted is None or noted[0] is not suspicion:
            self.suspicions[node_id] = (suspicion, [(self.now, suspicion.n)])
        elif noted[1][-1][1] != suspicion.n:
            noted[1].append((self.now, suspicion.n))


def converged_snapshot(size: int, config: GossipConfig, loss: float, seed: int) -> tuple[bytes, dict]:
    """N members joined through the leader, converged and settled (every broadcast queue empty)."""
    wall = time.perf_counter()
    cluster = DetectCluster(size, config, seed, loss=loss, record_events=False)
    cluster.join_all(LEADER)
    if not cluster.run_until_true(cluster.converged, timeout=900, step=2.0):
        raise SystemExit(f"{size} members (seed {seed}, loss {loss:g}) did not converge")
    converged_at = cluster.now
    settled = cluster.run_until_true(
        lambda: all(core.pending_broadcasts == 0 for core in cluster.cores.values()), 900, 2.0
    )
    if not settled or not cluster.converged():
        raise SystemExit(f"{size} members (seed {seed}, loss {loss:g}) did not settle")
    settled_at = cluster.now
    cluster.run_for(5.0)
    info = {"converged_s": converged_at, "settled_s": settled_at, "join_wall_s": time.perf_counter() - wall}
    return pickle.dumps(cluster, protocol=pickle.HIGHEST_PROTOCOL), info


def trial(snapshot: bytes, victim: str, phase: float, idle: float) -> dict:
    cluster: DetectCluster = pickle.loads(snapshot)
    config = cluster.config
    started_at = cluster.now
    crashed_at: float | None = None
    first: dict[tuple[str, str], float] = {}  # (observer, kind) -> first time, for the victim
    false_events = {"suspect": 0, "dead": 0}
    false_targets: set[str] = set()
    dead_holders: set[str] = set()

    def observe(observed: ObservedEvent) -> None:
        event = observed.event
        if crashed_at is not None and event.node_id == victim:
            first.setdefault((observed.observer, event.kind), observed.at - crashed_at)
            if event.kind == "dead":
                dead_holders.add(observed.observer)
        elif event.kind in false_events:
            false_events[event.kind] += 1
            false_targets.add(event.node_id)

    cluster.on_event = observe
    cluster.run_for(idle + phase)
    crashed_at = cluster.now
    cluster.victim = victim
    cluster.crash(victim)
    observers = cluster.running()
    size = len(cluster.cores)
    everyone = cluster.run_until_true(
        lambda: len(dead_holders) >= len(observers), timeout=TRIAL_LIMIT_S, step=0.05
    )
    cluster.run_for(1.0)  # a false declaration the crash set off shows up here, not after

    def earliest(kind: str) -> float | None:
        times = [at for (_, k), at in first.items() if k == kind]
        return min(times) if times else None

    # Members whose own timer declared the victim dead: the dead event came at their deadline.
    own: list[dict] = []
    for observer, (suspicion, counts) in cluster.suspicions.items():
        dead_at = first.get((observer, "dead"))
        if dead_at is not None and abs(crashed_at + dead_at - suspicion.deadline) < 1e-9:
            own.append(
                {
                    "observer": observer,
                    "suspected": suspicion.started - crashed_at,
                    "timeout": suspicion.deadline - suspicion.started,
                    "confirmations": suspicion.n,
                    "k": suspicion.k,
                    "confirmed_after": [at - suspicion.started for at, n in counts if n > 0],
                }
            )
    own.sort(key=lambda row: row["suspected"] + row["timeout"])
    first_dead = earliest("dead")
    first_suspect = earliest("suspect")
    minimum = suspicion_timeout(config.suspicion_mult, size, config.probe_interval)
    return {
        "victim": victim,
        "phase_s": phase,
        "first_suspect_s": first_suspect,
        "leader_suspect_s": first.get((LEADER, "suspect")),
        "first_dead_s": first_dead,
        "leader_dead_s": first.get((LEADER, "dead")),
        "all_dead_s": max((first.get((obs, "dead"), float("inf")) for obs in observers), default=None)
        if everyone
        else None,
        "undetected": not everyone,
        "own_timer_declarers": len(own),
        "first_declarer": own[0] if own else None,
        "own_timeouts": sorted({round(row["timeout"], 3) for row in own}),
        "own_confirmations": sorted({row["confirmations"] for row in own}),
        "suspicion_min_s": minimum,
        "suspicion_max_s": config.suspicion_max_timeout_mult * minimum,
        "false_suspect": false_events["suspect"],
        "false_dead": false_events["dead"],
        "false_targets": sorted(false_targets),
        "simulated_s": cluster.now - started_at,
    }


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def pick(q: float) -> float:  # nearest rank
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "p50": statistics.median(ordered),
        "p90": pick(0.9),
        "max": ordered[-1],
        "min": ordered[0],
        "n": len(ordered),
    }


def summarise(trials: list[dict], probe_interval: float) -> dict:
    def column(key: str) -> list[float]:
        return [t[key] for t in trials if t[key] is not None]

    declarers = [t["first_declarer"] for t in trials if t["first_declarer"]]
    # Where the time to the leader goes, per trial that has every part.
    parts: dict[str, list[float]] = {
        "to_first_failed_probe": [],  # crash -> the probe that will fail starts
        "probe": [],  # that probe's window (one probe interval, longer under local health)
        "suspicion_to_declarer": [],  # first suspicion -> the first declarer's own suspicion
        "declarer_timeout": [],  # the first declarer's suspicion timeout
        "dead_to_leader": [],  # first dead declaration -> the leader holds it dead
    }
    for t in trials:
        d = t["first_declarer"]
        if d is None or t["leader_dead_s"] is None or t["first_suspect_s"] is None:
            continue
        probe_start = max(0.0, t["first_suspect_s"] - probe_interval)
        parts["to_first_failed_probe"].append(probe_start)
        parts["probe"].append(t["first_suspect_s"] - probe_start)
        parts["suspicion_to_declarer"].append(d["suspected"] - t["first_suspect_s"])
        parts["declarer_timeout"].append(d["timeout"])
        parts["dead_to_leader"].append(t["leader_dead_s"] - t["first_dead_s"])
    timeouts = [x for t in trials for x in t["own_timeouts"]]
    confirmations = [x for t in trials for x in t["own_confirmations"]]
    return {
        "trials": len(trials),
        "undetected": sum(t["undetected"] for t in trials),
        "first_suspect_s": _stats(column("first_suspect_s")),
        "first_dead_s": _stats(column("first_dead_s")),
        "leader_dead_s": _stats(column("leader_dead_s")),
        "all_dead_s": _stats(column("all_dead_s")),
        "parts": {name: _stats(values) for name, values in parts.items()},
        "declarer_first_confirmation_s": _stats(
            [d["confirmed_after"][0] for d in declarers if d["confirmed_after"]]
        ),
        "declarer_k_confirmations_s": _stats(
            [
                d["confirmed_after"][d["k"] - 1]
                for d in declarers
                if d["k"] and len(d["confirmed_after"]) >= d["k"]
            ]
        ),
        "own_timer_declarers": _stats([float(t["own_timer_declarers"]) for t in trials]),
        "timeout_applied": {"min": min(timeouts), "max": max(timeouts)} if timeouts else None,
        "confirmations_at_expiry": {"min": min(confirmations), "max": max(confirmations)}
        if confirmations
        else None,
        "suspicion_min_s": trials[0]["suspicion_min_s"] if trials else None,
        "suspicion_max_s": trials[0]["suspicion_max_s"] if trials else None,
        "false_suspect": sum(t["false_suspect"] for t in trials),
        "false_dead": sum(t["false_dead"] for t in trials),
        "simulated_s": sum(t["simulated_s"] for t in trials),
    }


def measure(
    sizes: list[int],
    losses: list[float],
    clusters: int,
    victims: int,
    idle: float,
    config: GossipConfig | None = None,
    first_seed: int = 1,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """One row per (size, loss): ``clusters`` seeds x ``victims`` crashes each."""
    config = config or node_gossip_config()
    rows = []
    for size in sizes:
        for loss in losses:
            trials: list[dict] = []
            joins: list[dict] = []
            for seed in range(first_seed, first_seed + clusters):
                snapshot, info = converged_snapshot(size, config, loss, seed)
                joins.append({"seed": seed, **info, "snapshot_mib": len(snapshot) / 2**20})
                plan = random.Random(seed * 7919 + size)
                chosen = plan.sample([f"n{i:03d}" for i in range(1, size)], victims)
                for victim in chosen:
                    wall = time.perf_counter()
                    result = trial(snapshot, victim, plan.uniform(0, config.probe_interval), idle)
                    result["seed"] = seed
                    result["wall_s"] = time.perf_counter() - wall
                    trials.append(result)
                    if log:
                        log(
                            f"  {size} members, loss {loss:g}, seed {seed}, {victim}: suspect "
                            f"{result['first_suspect_s']}, first dead {result['first_dead_s']}, leader "
                            f"{result['leader_dead_s']}, false dead {result['false_dead']} "
                            f"(wall {result['wall_s']:.1f} s)"
                        )
            summary = summarise(trials, config.probe_interval)
            rows.append({"members": size, "loss": loss, "joins": joins, "summary": summary, "trials": trials})
    return rows


def _fmt(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "-"
    return f"{stats['p50']:.2f} / {stats['p90']:.2f} / {stats['max']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 0.01], help="datagram loss rates")
    parser.add_argument("--clusters", type=int, default=2, help="seeds (a join each) per size and loss")
    parser.add_argument("--victims", type=int, default=10, help="crashes per cluster, one per trial")
    parser.add_argument("--idle", type=float, default=5.0, help="healthy seconds before each crash")
    parser.add_argument("--seed", type=int, default=1, help="the first cluster's seed")
    parser.add_argument(
        "--suspicion-mult", type=int, help="an experiment: this [gossip] suspicion_mult instead of the node's"
    )
    parser.add_argument("--out", help="write every trial and the summaries here (JSON)")
    args = parser.parse_args()
    config = node_gossip_config()
    if args.suspicion_mult is not None:
        config = msgspec.structs.replace(config, suspicion_mult=args.suspicion_mult)
    changed = "" if args.suspicion_mult is None else f", suspicion_mult {args.suspicion_mult} instead"
    fields = msgspec.structs.asdict(config)
    print(f"gossip config of an `orion node` (defaults{changed}): {fields}", flush=True)
    load_before = os.getloadavg()
    wall = time.perf_counter()
    rows = measure(
        args.sizes, args.loss, args.clusters, args.victims, args.idle, config, args.seed,
        log=lambda line: print(line, flush=True),
    )  # fmt: skip
    load_after = os.getloadavg()
    print()
    print("seconds from the crash, p50 / p90 / max (simulated time)")
    print(
        f"{'members':>7} {'loss':>5} {'trials':>6} {'first suspect':>20} {'first dead':>20} "
        f"{'leader holds dead':>20} {'all hold dead':>20} {'timeout applied':>15} {'confirmations':>13} "
        f"{'false suspect':>13} {'false dead':>10}"
    )
    for row in rows:
        s = row["summary"]
        applied = s["timeout_applied"] or {"min": float("nan"), "max": float("nan")}
        confirmations = s["confirmations_at_expiry"] or {"min": -1, "max": -1}
        print(
            f"{row['members']:>7} {row['loss']:>5g} {s['trials']:>6} {_fmt(s['first_suspect_s']):>20} "
            f"{_fmt(s['first_dead_s']):>20} {_fmt(s['leader_dead_s']):>20} {_fmt(s['all_dead_s']):>20} "
            f"{applied['min']:>6.2f}-{applied['max']:<8.2f} "
            f"{confirmations['min']:>6}-{confirmations['max']:<6} "
            f"{s['false_suspect']:>13} {s['false_dead']:>10}"
            + (f"  UNDETECTED {s['undetected']}" if s["undetected"] else "")
        )
    print()
    print("where the time to the leader goes, p50 / p90 / max")
    for row in rows:
        parts = ", ".join(f"{name} {_fmt(stats)}" for name, stats in row["summary"]["parts"].items())
        print(f"{row['members']:>7} {row['loss']:>5g}: {parts}")
    elapsed = time.perf_counter() - wall
    print(f"(wall {elapsed:.0f} s; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after)")
    if args.out:
        document = {
            "command": "python -m tools.bench.detect_at_scale "
            + " ".join(
                f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items()
                if k != "out" and v is not None
            ),
            "config": msgspec.structs.asdict(config),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "wall_s": elapsed,
            "rows": rows,
        }
        Path(args.out).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
