"""tools/bench/detect_at_scale.py in its short mode: a small cluster at the node's gossip timing,
a few crashed victims; the outcomes are checked (each victim declared dead by everyone, nobody
else suspected or declared dead, the Lifeguard timeout within its bounds), not the timings."""

from __future__ import annotations

import json

import pytest

from orion.config import GossipSection
from orion.units import parse_duration
from tools.bench import detect_at_scale


def test_the_benchmark_runs_the_gossip_config_an_orion_node_runs() -> None:
    config = detect_at_scale.node_gossip_config()
    section = GossipSection()
    assert config.probe_interval == parse_duration(section.probe_interval, "probe_interval")
    assert config.probe_timeout == parse_duration(section.probe_timeout, "probe_timeout")
    assert config.gossip_interval == parse_duration(section.gossip_interval, "gossip_interval")
    assert config.suspicion_mult == section.suspicion_mult
    assert config.lifeguard_probe and config.lifeguard_suspicion and config.lifeguard_buddy


@pytest.mark.parametrize("loss", [0.0, 0.01])
def test_every_victim_is_declared_dead_and_nobody_else(loss: float) -> None:
    rows = detect_at_scale.measure(sizes=[40], losses=[loss], clusters=1, victims=3, idle=2.0)
    assert len(rows) == 1
    row = rows[0]
    summary = row["summary"]
    assert summary["trials"] == 3 and summary["undetected"] == 0
    for trial in row["trials"]:
        assert trial["victim"] != detect_at_scale.LEADER
        assert trial["leader_dead_s"] is not None and trial["all_dead_s"] is not None
        assert 0 < trial["first_suspect_s"] <= trial["first_dead_s"] <= trial["leader_dead_s"]
        assert trial["leader_dead_s"] <= trial["all_dead_s"]
        # Somebody's own suspicion timer declared the victim dead, within Lifeguard's bounds.
        assert trial["own_timer_declarers"] >= 1
        declarer = trial["first_declarer"]
        assert trial["suspicion_min_s"] - 1e-9 <= declarer["timeout"] <= trial["suspicion_max_s"] + 1e-9
        assert 0 <= declarer["confirmations"] <= declarer["k"] == 2
        assert trial["false_dead"] == 0
        if loss == 0:
            assert trial["false_suspect"] == 0 and trial["false_targets"] == []
    assert summary["false_dead"] == 0
    assert summary["leader_dead_s"]["n"] == 3
    json.dumps(rows)  # what --out writes
