"""Run the nemesis: faults against a live local cluster under client load, then the checker.

    .venv/bin/python -m tools.nemesis --seed 1 --seeds 3 --duration 120
    .venv/bin/python -m tools.nemesis --duration 1800 --seed 1000   # the long run
    .venv/bin/python -m tools.nemesis --seed 7 --big-state --faults wipe,kill,partition
    .venv/bin/python -m tools.nemesis --seed 3 --hosts     # on a bed of real hosts (root)

``--duration`` is the time of faults per seed; each seed also spends ~30 s on start,
settling and checking. ``--big-state`` grows the state past 50 MB with ~500 KB entries
during the run; ``--faults`` picks the fault kinds (default: all, ``wipe`` included).
Exit code 1 if any seed found a violation. A violation prints the seed and the history
around it; the full history is in BASE_DIR/seed-N/history.jsonl.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from orion.nemesis.faults import FAULT_KINDS
from orion.nemesis.run import RunResult, run_seed


def fault_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {unknown or [text]}; choose from {', '.join(FAULT_KINDS)}"
        )
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds, from --seed on")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of faults per seed")
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (3 to 5); 0: 3 or 5 by seed")
    parser.add_argument("--clients", type=int, default=3, help="client threads")
    parser.add_argument("--base-dir", type=Path, default=Path("/tmp/orion-nemesis"))
    parser.add_argument("--keep", action="store_true", help="keep data dirs and logs of passing seeds")
    parser.add_argument(
        "--big-state",
        action="store_true",
        help="grow the state past 50 MB with ~500 KB entries during the run",
    )
    parser.add_argument(
        "--faults",
        type=fault_kinds,
        default=FAULT_KINDS,
        help=f"comma-separated fault kinds (default: all of {','.join(FAULT_KINDS)})",
    )
    parser.add_argument(
        "--hosts",
        action="store_true",
        help="run on a bed of real hosts in miniature (network namespaces, a dockerd each; needs root)",
    )
    args = parser.parse_args(argv)
    first = args.seed if args.seed is not None else random.randrange(1_000_000)
    results: list[RunResult] = []
    started = time.monotonic()
    for seed in range(first, first + args.seeds):
        base = args.base_dir / f"seed-{seed}"
        shutil.rmtree(base, ignore_errors=True)
        nodes = args.nodes or random.Random(seed).choice((3, 5))
        result = run_seed(
            seed,
            args.duration,
            base,
            nodes=nodes,
            clients=args.clients,
            big_state=args.big_state,
            faults=args.faults,
            hosts=args.hosts,
        )
        print(result.report(), flush=True)
        results.append(result)
        if result.ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        elif not result.ok:
            print(f"kept {base} (node logs, data, history.jsonl)", flush=True)
    print(summary(results, time.monotonic() - started), flush=True)
    return 0 if all(r.ok for r in results) else 1


def summary(results: list[RunResult], elapsed: float) -> str:
    faults: Counter[str] = Counter()
    ops: Counter[tuple[str, str]] = Counter()
    for result in results:
        faults.update(result.faults)
        ops.update(result.ops)
    outcomes: Counter[str] = Counter()
    for (_, outcome), count in ops.items():
        outcomes[outcome] += count
    violations = sum(len(r.violations) for r in results)
    lines = [
        f"=== nemesis summary: {len(results)} seed(s) {[r.seed for r in results]}, {elapsed / 60:.1f} min",
        f"faults injected ({sum(faults.values())}): "
        + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())),
        f"operations ({sum(ops.values())}): " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        "  by kind: " + ", ".join(f"{k}/{o} {v}" for (k, o), v in sorted(ops.items())),
        f"violations: {violations}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
