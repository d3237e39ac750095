"""Benchmark (a): committed entries/s of a 3-node Raft cluster on a perfect in-memory network.

Measures the pure CPU cost of the sans-I/O core plus the shell loop the production node runs
(MemoryStore writes, message hand-off, applying committed entries by counting them): no
encoding, no sockets, no fsync. The leader proposes in batches; every Ready is processed in
the production order (persist, send, apply, advance). An entry counts once all three nodes
have applied it.

Run: ``.venv/bin/python tools/bench_raft_core.py [--entries N] [--batch B] [--profile]``
"""

from __future__ import annotations

import argparse
import random
import time

from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.types import Membership


def _cluster(config: RaftConfig) -> tuple[dict[str, RaftCore], dict[str, MemoryStore]]:
    ids = ["n1", "n2", "n3"]
    membership = Membership(voters={i: f"bench:{i}" for i in ids})
    stores = {i: MemoryStore() for i in ids}
    cores = {
        i: RaftCore(i, stores[i].load(), config, random.Random(k), bootstrap=membership)
        for k, i in enumerate(ids)
    }
    return cores, stores


def _pump(cores: dict[str, RaftCore], stores: dict[str, MemoryStore], applied: dict[str, int]) -> None:
    """Process Readies and deliver messages until the cluster is quiet."""
    inbox: list = []
    while True:
        busy = False
        for node_id, core in cores.items():
            if core.has_ready():
                busy = True
                rd = core.ready()
                if rd.entries or rd.hard_state is not None:
                    stores[node_id].save(rd.hard_state, rd.entries)
                inbox.extend(rd.messages)
                if rd.committed:
                    applied[node_id] = rd.committed[-1].index
                core.advance(rd)
        if inbox:
            busy = True
            batch, inbox = inbox, []
            for msg in batch:
                cores[msg.dst].step(msg)
        if not busy:
            return


def bench_core(entries: int, batch: int = 512, payload: int = 64) -> dict:
    """Commit ``entries`` entries of ``payload`` bytes, proposed in batches of ``batch``;
    returns the figures (entries/s, elapsed s, Readies processed, store writes)."""
    config = RaftConfig(max_append_entries=1024, max_inflight=64)
    cores, stores = _cluster(config)
    applied = {i: 0 for i in cores}
    # Elect a leader (ticks are virtual; the clock is not part of the measurement).
    for _ in range(100):
        for core in cores.values():
            core.tick()
        _pump(cores, stores, applied)
        if any(c.role == LEADER for c in cores.values()):
            break
    leader = next(c for c in cores.values() if c.role == LEADER)
    data = b"x" * payload
    items = [data] * batch
    saves0 = sum(s.saves for s in stores.values())
    began = time.perf_counter()
    proposed = 0
    target = 0
    while proposed < entries:
        n = min(batch, entries - proposed)
        target = leader.propose_batch(items[:n])[-1]
        proposed += n
        _pump(cores, stores, applied)
    while min(applied.values()) < target:
        for core in cores.values():
            core.tick()
        _pump(cores, stores, applied)
    elapsed = time.perf_counter() - began
    return {
        "entries": entries,
        "batch": batch,
        "payload_bytes": payload,
        "elapsed_s": round(elapsed, 4),
        "entries_per_s": round(entries / elapsed),
        "store_writes": sum(s.saves for s in stores.values()) - saves0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true", help="profile one run with cProfile")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(bench_core, args.entries)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return
    print(f"{'batch':>6} {'entries':>9} {'seconds':>8} {'entries/s':>10} {'store writes':>13}")
    for batch in (1, 16, 128, 512, 1024):
        n = args.entries if batch >= 16 else min(args.entries, 20_000)
        r = bench_core(n, batch=batch)
        print(f"{batch:>6} {n:>9} {r['elapsed_s']:>8.3f} {r['entries_per_s']:>10,} {r['store_writes']:>13}")


if __name__ == "__main__":
    main()
