"""Randomized runs over many seeds: invariants on every step, liveness after healing, and
exact replay of a recorded seed. ORION_RAFT_SEEDS sets the number of seeds (default 1000);
``python -m orion.sim.raft_cluster --seeds N --start S`` runs more on demand."""

from __future__ import annotations

import os

from orion.sim.raft_cluster import random_run

SEEDS = int(os.environ.get("ORION_RAFT_SEEDS", "1000"))


def test_random_runs_keep_invariants_and_recover() -> None:
    failures: list[str] = []
    for seed in range(SEEDS):
        try:
            random_run(seed)
        except Exception as exc:  # collect every failing seed, then report them all
            failures.append(f"seed={seed}: {exc!r}")
    assert not failures, "failing seeds (replay with random_run(seed)):\n" + "\n".join(failures[:20])


def test_recorded_seed_replays_identically() -> None:
    first = random_run(4242)
    second = random_run(4242)
    assert first.events > 100
    assert (first.digest, first.events, first.now) == (second.digest, second.events, second.now)
    assert first.checker.committed == second.checker.committed
    other = random_run(4243)
    assert other.digest != first.digest, "the digest must depend on the run"
