"""Benchmark (a): committed entries/s of a 3-node Raft cluster on a perfect in-memory network.

Measures the pure CPU cost of the sans-I/O core plus the shell the production node runs
(``RaftShell``: MemoryStore writes, envelope encoding and decoding of every message, applying
committed entries by counting them): no sockets, no fsync. The leader proposes in batches;
every Ready is processed by the shell in the production order. An entry counts once all
three nodes have applied it.

Run: ``.venv/bin/python -m tools.bench.raft_core [--entries N] [--batch B] [--profile]``
"""

from __future__ import annotations

import argparse
import random
import time

from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.shell import RaftShell
from orion.raft.types import Entry, Membership, Snapshot, SnapshotMeta


class _Host:
    """The shell's host: counts applied entries, queues frames for the in-memory network."""

    def __init__(self, outbox: list[tuple[str, bytes]]) -> None:
        self.outbox = outbox
        self.applied = 0

    def send_frame(self, dst: str, frame: bytes) -> None:
        self.outbox.append((dst, frame))

    def apply(self, entry: Entry) -> bool:
        self.applied = entry.index
        return False

    def restore(self, snapshot: Snapshot) -> None:
        self.applied = snapshot.meta.index

    def snapshot_source(self) -> int:
        return self.applied

    def start_snapshot(self, meta: SnapshotMeta, source: object) -> None:
        raise AssertionError("the benchmark never snapshots")

    def on_read_state(self, context: bytes, index: int) -> None:
        pass

    def on_failed_read(self, context: bytes) -> None:
        pass

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        raise AssertionError(f"dropped a frame from {peer}: {reason}")


def _cluster(config: RaftConfig) -> tuple[dict[str, RaftShell], dict[str, _Host], list[tuple[str, bytes]]]:
    ids = ["n1", "n2", "n3"]
    incarnations = {i: f"{k:032x}" for k, i in enumerate(ids, 1)}
    membership = Membership(
        voters={i: f"bench:{i}" for i in ids}, cluster_id="bench", incarnations=incarnations
    )
    outbox: list[tuple[str, bytes]] = []
    shells, hosts = {}, {}
    for k, i in enumerate(ids):
        store = MemoryStore()
        core = RaftCore(i, store.load(), config, random.Random(k), bootstrap=membership)
        hosts[i] = _Host(outbox)
        shells[i] = RaftShell(core, store, hosts[i], incarnation=incarnations[i], snapshot_threshold=1 << 62)
    return shells, hosts, outbox


def _pump(shells: dict[str, RaftShell], outbox: list[tuple[str, bytes]]) -> None:
    """Drain every shell and deliver frames until the cluster is quiet."""
    while True:
        busy = False
        for shell in shells.values():
            if shell.core.has_ready():
                busy = True
                shell.drain()
        if outbox:
            busy = True
            batch = outbox[:]
            outbox.clear()
            for dst, frame in batch:
                shells[dst].receive(frame)
        if not busy:
            return


def bench_core(entries: int, batch: int = 512, payload: int = 64) -> dict:
    """Commit ``entries`` entries of ``payload`` bytes, proposed in batches of ``batch``;
    returns the figures (entries/s, elapsed s, Readies processed, store writes)."""
    config = RaftConfig(max_append_entries=1024, max_inflight=64)
    shells, hosts, outbox = _cluster(config)
    stores = {i: shell.store for i, shell in shells.items()}
    # Elect a leader (ticks are virtual; the clock is not part of the measurement).
    for _ in range(100):
        for shell in shells.values():
            shell.tick()
        _pump(shells, outbox)
        if any(s.core.role == LEADER for s in shells.values()):
            break
    leader = next(s.core for s in shells.values() if s.core.role == LEADER)
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
        _pump(shells, outbox)
    while min(h.applied for h in hosts.values()) < target:
        for shell in shells.values():
            shell.tick()
        _pump(shells, outbox)
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
