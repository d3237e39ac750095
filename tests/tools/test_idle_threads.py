"""tools/bench/idle_threads.py in a short window: a real 3-node cluster, every node measured
thread by thread over one shared window; the figures are not checked, only that they are there."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from tools.bench import idle_threads


def test_this_process_threads_are_read() -> None:
    threads = idle_threads.thread_cpu(os.getpid())
    assert threads and all(
        user >= 0 and system >= 0 and switches >= 0 for _, user, system, switches in threads.values()
    )


def test_trees_are_named_label_equals_path_and_must_hold_orion(tmp_path: Path) -> None:
    tree = Path(idle_threads.__file__).resolve().parents[2]
    assert idle_threads.parse_trees(f"before={tree},after={tree}") == {"before": tree, "after": tree}
    with pytest.raises(argparse.ArgumentTypeError, match="label=path"):
        idle_threads.parse_trees(f"{tree}")
    with pytest.raises(argparse.ArgumentTypeError, match="no orion package"):
        idle_threads.parse_trees(f"empty={tmp_path}")


@pytest.mark.cluster
def test_a_short_window_measures_every_node_thread_by_thread() -> None:
    result = idle_threads.measure(seconds=2.0, settle=1.0)
    assert result["seconds"] == 2.0 and len(result["loadavg"]) == 2
    nodes = result["nodes"]
    assert len(nodes) == 3 and sum(name.endswith("-leader") for name in nodes) == 1
    for figures in nodes.values():
        assert figures["cpu_pct"] >= 0
        assert figures["threads"], "an idle node still wakes (Raft ticks, gossip probes)"
        assert all(t["cpu_pct"] >= 0 and t["wakeups_per_s"] >= 0 for t in figures["threads"].values())
        assert all(
            abs(t["user_pct"] + t["system_pct"] - t["cpu_pct"]) < 0.01 for t in figures["threads"].values()
        )


@pytest.mark.cluster
def test_trees_run_a_cluster_of_each_tree_from_inside_it() -> None:
    tree = Path(idle_threads.__file__).resolve().parents[2]
    by_tree = idle_threads.measure_trees({"this": tree}, seconds=2.0, settle=1.0)
    nodes = by_tree["this"]["nodes"]
    assert len(nodes) == 3 and sum(name.endswith("-leader") for name in nodes) == 1
