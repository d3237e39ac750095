"""tools/bench/node_footprint.py in its short mode: a real 3-node cluster is measured idle and
after a small fill, and every figure the benchmark promises is there and plausible."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tools.bench import node_footprint


def test_proc_readers_see_this_process() -> None:
    mine = node_footprint.memory(os.getpid())
    assert mine.rss_kib > 0 and 0 < mine.uss_kib <= mine.rss_kib and mine.pss_kib > 0
    assert mine.threads >= 1
    assert node_footprint.cpu_seconds(os.getpid()) > 0


def test_bad_task_counts_are_refused() -> None:
    with pytest.raises(SystemExit):
        node_footprint.parse_args(["--tasks", "ten"])
    with pytest.raises(SystemExit):
        node_footprint.parse_args(["--tasks", "0"])


@pytest.mark.cluster
def test_short_mode_measures_idle_nodes_and_a_filled_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_footprint, "save_result", lambda name, result: tmp_path / f"{name}.json")
    result = node_footprint.main(["--short", "--hold", "1", "--native-stats"])
    json.dumps(result)  # what save_result writes
    assert result["fsm"]["bytes_per_task"] > 0
    roles = {"leader", "follower1", "follower2"}
    assert roles <= result["idle"].keys()
    for role in roles:
        idle = result["idle"][role]
        assert idle["rss_mib"] >= idle["uss_mib"] > 0 and idle["threads"] > 1
        assert idle["cpu_pct"] >= 0
    [state] = result["states"]
    assert state["tasks"] == 300 and state["fill"]["acked"] >= 300
    for role in roles:
        assert state[role]["rss_mib"] > 0 and "bytes_per_task" in state[role]
    assert "etcd" not in result  # the short mode never starts etcd
    held = result["held"]  # read again a second after the fill settled
    assert held["tasks"] == 300 and held["after_s"] == 1
    for role in roles:
        assert held[role]["rss_mib"] > 0 and "bytes_per_task" in held[role]
        native = held["native"][role]  # what the anonymous memory is made of, after the last reading
        assert native["pymalloc_live_mib"] > 0 and native["glibc_in_use_mib"] > 0
