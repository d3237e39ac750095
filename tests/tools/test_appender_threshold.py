"""tools/bench/appender_threshold.py runs (a short mode); its figures are not checked."""

from __future__ import annotations

import sys

import pytest

import orion.raft.duckdb_store as duckdb_store
from tools.bench import appender_threshold


def test_both_paths_are_measured_and_the_threshold_is_put_back(monkeypatch, capsys) -> None:
    threshold = duckdb_store._APPENDER_MIN_ROWS
    monkeypatch.setattr(appender_threshold, "WARMUP_SAVES", 1)
    argv = ["appender_threshold", "--runs", "2", "--saves", "3", "--rows", "3", "4"]
    monkeypatch.setattr(sys, "argv", argv)
    appender_threshold.main()
    assert threshold == duckdb_store._APPENDER_MIN_ROWS
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rows", "appender", "ms", "VALUES", "ms", "ratio"]
    rows = {int(line.split()[0]): [float(v) for v in line.split()[1:]] for line in lines[1:]}
    assert set(rows) == {3, 4}
    for appender_ms, values_ms, ratio in rows.values():
        assert appender_ms > 0 and values_ms > 0
        assert ratio == pytest.approx(appender_ms / values_ms, abs=0.01)
