"""The scale curve's short mode (what CI runs): 3 real voters, 10 hollow nodes and a victim in
processes of their own; every measurement of the point is made and none is left unfinished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.bench import scale_curve


@pytest.mark.cluster
@pytest.mark.parametrize("burst_via", ["submits", "services"])
def test_short_curve_measures_every_figure(tmp_path: Path, burst_via: str) -> None:
    out = tmp_path / "curve.json"
    assert scale_curve.main(["--short", "--burst-via", burst_via, "--out", str(out)]) == 0
    (point,) = json.loads(out.read_text())["points"]
    assert point["nodes"] == 10
    assert "not_converged" not in point
    assert point["join_s"] > 0
    assert point["leader_rss_mib"] > 0
    assert point["false_dead"] == {"fsm": [], "heard_by_hollow": {}}
    steady = point["steady"]
    assert steady["failures"] == 0 and steady["p99_ms"] is not None
    assert steady["committed"] > 0 and steady["leader_bytes_to_hollow_per_entry"] > 0
    # Every task of the burst (each submitted, or every slot of the burst's services) was
    # reported Running by a hollow node, through the leader.
    assert point["placement"]["via"] == burst_via
    assert point["placement"]["all_running_s"] > 0 and point["placement"]["tasks_per_s"] > 0
    # The victim's tasks ran elsewhere after it was killed (a number, not a deadline message).
    assert isinstance(point["loss_to_replaced_s"], float)
    # ... in parts, seen by polling and by the tasks' histories, in their order.
    seen, history = point["loss_parts_s"], point["loss_history_s"]
    assert seen["declared"] <= seen["placed"] <= seen["running"]
    assert 0 < history["rescheduled"] <= history["placed"] <= history["running"]
    assert point["hollow_reports"]["entries_sent"] <= point["hollow_reports"]["reports_sent"]
