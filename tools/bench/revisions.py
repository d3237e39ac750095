#!/usr/bin/env python3
"""Write throughput of two revisions of Orion, side by side in one run: a change must not cost
writes beyond noise.

Each revision is checked out into its own git worktree (under a temporary directory) and
measured with *its own* load generator, ``tools/loadgen.py --local 3`` (a fresh 3-node
cluster per point, tasks that stay Pending so Docker is not involved), interleaved A, B, A, B at each
concurrency so drifts in the machine's load hit both alike. Reports submits/s and p50/p99 per
point and the B/A ratios, with the load average taken before each point.

Run: ``.venv/bin/python -m tools.bench.revisions BASE [HEAD] [--levels 1,16,64] [--duration 8]
[--repeat 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.bench.common import ROOT, save_result


def checkout(rev: str, into: Path) -> Path:
    path = into / rev.replace("/", "_")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
        check=True,
        capture_output=True,
    )
    return path


def loadgen_command(tree: Path) -> list[str]:
    """How ``tree`` runs its load generator: a module of the tools package, or in revisions
    older than that package a script of its own."""
    if (tree / "tools" / "__init__.py").exists():
        return [sys.executable, "-m", "tools.loadgen"]
    return [sys.executable, "tools/loadgen.py"]


def measure(tree: Path, concurrency: int, duration: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [
            *loadgen_command(tree),
            "--local",
            "3",
            "-c",
            str(concurrency),
            "--duration",
            str(duration),
            "--json",
            "--quiet",
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen in {tree} failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("head", nargs="?", default="HEAD")
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="orion-revs-") as tmp:
        trees = {rev: checkout(rev, Path(tmp)) for rev in (args.base, args.head)}
        try:
            for repetition in range(args.repeat):
                for concurrency in levels:
                    for rev, tree in trees.items():
                        load = os.getloadavg()[0]
                        result = measure(tree, concurrency, args.duration)
                        row = {
                            "rev": rev,
                            "repetition": repetition,
                            "concurrency": concurrency,
                            "load_avg_1m": round(load, 2),
                            "ops_per_s": result["throughput_per_s"],
                            "p50_ms": result["p50_ms"],
                            "p99_ms": result["p99_ms"],
                            "errors": result["errors"],
                        }
                        rows.append(row)
                        print(row, flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True
                )
    print(
        f"\n{'rep':>3} {'c':>3} {'base/s':>8} {'head/s':>8} {'ratio':>6} {'base p50':>9} {'head p50':>9} "
        f"{'load':>5}"
    )
    for repetition in range(args.repeat):
        for concurrency in levels:
            a, b = (
                next(
                    r
                    for r in rows
                    if r["rev"] == rev and r["repetition"] == repetition and r["concurrency"] == concurrency
                )
                for rev in (args.base, args.head)
            )
            print(
                f"{repetition:>3} {concurrency:>3} {a['ops_per_s']:>8} {b['ops_per_s']:>8} "
                f"{b['ops_per_s'] / a['ops_per_s']:>6.2f} {a['p50_ms']:>9} {b['p50_ms']:>9} "
                f"{a['load_avg_1m']:>5}"
            )
    save_result("revisions", {"base": args.base, "head": args.head, "rows": rows})


if __name__ == "__main__":
    main()
