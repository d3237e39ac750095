"""tools/loadgen.py against a real local cluster: every submit is acknowledged and counted,
errors are classified, the JSON summary carries the promised keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orion.client import NoQuorum, Unavailable
from orion.testing.localcluster import LocalCluster
from tools import loadgen


def test_pacer_hands_out_exactly_count() -> None:
    pacer = loadgen.Pacer(count=5, duration=None, rate=None)
    assert sum(1 for _ in iter(pacer.next, None)) == 5


def test_errors_are_classified_by_protocol_code() -> None:
    assert loadgen.classify(NoQuorum("no_quorum", "x")) == "no_quorum"
    assert loadgen.classify(Unavailable("unavailable", "x")) == "unavailable"
    assert loadgen.classify(ValueError("x")) == "ValueError"


@pytest.mark.cluster
def test_threads_and_asyncio_runs_ack_every_submit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalCluster(3, tmp_path) as cluster:
        cluster.start()
        endpoints = ",".join(cluster.endpoints)
        for mode in ("threads", "asyncio"):
            code = loadgen.main(
                ["--endpoints", endpoints, "-c", "4", "--count", "40", "--mode", mode, "--json", "--quiet"]
            )
            result = json.loads(capsys.readouterr().out)
            assert code == 0, (result["errors_by_kind"], result["error_examples"])
            assert result["submitted"] == result["acked"] == 40
            assert result["errors"] == 0
            assert result["throughput_per_s"] > 0 and result["p99_ms"] >= result["p50_ms"] > 0
        with cluster.client() as client:
            tasks = client.tasks()
        assert len(tasks) == 80
        assert all(t.state == "Pending" for t in tasks)  # the unplaceable selector kept Docker out
