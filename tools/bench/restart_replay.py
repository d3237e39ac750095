"""What a crashed node's restart costs once its state is big: the log it replays after its
snapshot, and the time until it serves again (the price of ``raft.snapshot_log_ratio``).

    .venv/bin/python -m tools.bench.restart_replay [--tasks 20000,60000] [--trees before=PATH,after=PATH]
    .venv/bin/python -m tools.bench.restart_replay --short      # CI: 300 tasks, one tree

For each tree and each count: a fresh 3-node LocalCluster (write benchmarks' settings) is
filled with that many unplaceable tasks (loadgen's shape, through all three endpoints); then a
follower is killed (``kill -9``) and, while it is down, its store is read: the snapshot's index
and the entries after it, which its restart applies again. It is started again and timed:

- ``serving_s``: from the start until its Raft status answers with its applied index at the
  commit index the leader had before the restart (the whole state loaded and replayed);
- ``snapshots``: how many snapshots the killed node had taken, from its log's lines.

Results: benchmarks/results/<--name>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from orion.raft.duckdb_store import DuckDBStore
from orion.testing.localcluster import LocalCluster
from tools.bench.common import WRITE_BENCH_SETTINGS, loadavg, log, save_result, wait_for
from tools.bench.node_footprint import fill
from tools.bench.trees import parse_trees, started_from


def stored_log(data_dir: Path) -> dict[str, int]:
    """The snapshot index of a stopped node's store and the entries after it."""
    store = DuckDBStore(data_dir / "raft.duckdb")
    try:
        stored = store.load()
    finally:
        with contextlib.suppress(Exception):
            store.close()
    snapshot_index = stored.snapshot.meta.index if stored.snapshot is not None else 0
    after = sum(1 for entry in stored.entries if entry.index > snapshot_index)
    return {"snapshot_index": snapshot_index, "entries_after_snapshot": after}


def one_run(tree: Path | None, tasks: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="orion-restart-") as base,
        started_from(tree),
        LocalCluster(3, Path(base), settings=WRITE_BENCH_SETTINGS) as cluster,
    ):
        cluster.start(timeout=60)
        filled = fill(cluster.endpoints, tasks, 32)
        leader = cluster.leader_index()
        assert leader is not None, "no leader after the fill"
        victim = next(n.index for n in cluster.nodes if n.index != leader)
        node = cluster.node(victim)
        commit = cluster.raft_status(leader).commit_index
        wait_for(
            lambda: cluster.raft_status(victim).applied_index >= commit,
            120,
            what="the victim to apply the fill",
        )
        cluster.kill(victim)
        snapshots = node.log_path.read_text(errors="replace").count("log compacted)")
        on_disk = stored_log(node.data_dir)
        started = time.monotonic()
        cluster.start_node(victim)

        def serving() -> bool:
            with contextlib.suppress(Exception):
                return cluster.raft_status(victim).applied_index >= commit
            return False

        wait_for(serving, 300, what="the restarted node to serve its whole state")
        serving_s = time.monotonic() - started
    return {
        "tasks": tasks,
        "fill": filled,
        "snapshots_logged": snapshots,
        **on_disk,
        "serving_s": round(serving_s, 2),
        "load": loadavg(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="20000,60000", help="state sizes, comma-separated")
    parser.add_argument("--trees", default="", help="NAME=PATH,... (git worktrees) side by side")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="300 tasks, one run (CI)")
    parser.add_argument("--name", default="restart_replay")
    args = parser.parse_args(argv)
    counts = [300] if args.short else [int(c) for c in args.tasks.split(",")]
    trees: dict[str, Path | None] = dict(parse_trees(args.trees)) if args.trees else {"this": None}
    runs: list[dict[str, Any]] = []
    for repeat in range(1, (1 if args.short else args.repeats) + 1):
        for tasks in counts:
            for name, tree in trees.items():
                run = {"tree": name, "repeat": repeat, **one_run(tree, tasks)}
                log(
                    f"{name} {tasks} tasks: serving again {run['serving_s']} s after the start, "
                    f"{run['entries_after_snapshot']} entries replayed after snapshot "
                    f"{run['snapshot_index']} ({run['snapshots_logged']} snapshots logged)"
                )
                runs.append(run)
    print("| tree | tasks | snapshot index | entries replayed | serving again s | load |")
    print("|---|---:|---:|---:|---:|---|")
    for run in runs:
        print(
            f"| {run['tree']} | {run['tasks']:,} | {run['snapshot_index']:,} | "
            f"{run['entries_after_snapshot']:,} | {run['serving_s']} | {run['load']} |"
        )
    result = {"runs": runs, "pid": os.getpid()}
    save_result(args.name, result)
    return result


if __name__ == "__main__":
    main()
