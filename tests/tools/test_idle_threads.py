"""tools/bench/idle_threads.py in a short window: a real 3-node cluster, every node measured
thread by thread over one shared window; the figures are not checked, only that they are there."""

from __future__ import annotations

import os

import pytest

from tools.bench import idle_threads


def test_this_process_threads_are_read() -> None:
    threads = idle_threads.thread_cpu(os.getpid())
    assert threads and all(ticks >= 0 and switches >= 0 for _, ticks, switches in threads.values())


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
