"""The short nemesis run for CI: fixed seeds, a couple of minutes of faults under load.

Besides tasks, each run creates, updates, scales and rolls back two services, and checks that
they converge. The long run is ``make nemesis`` (tools/nemesis.py); both share orion.nemesis.run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orion.nemesis.history import OpKind
from orion.nemesis.run import ops_of_kind, run_seed

pytestmark = [pytest.mark.nemesis, pytest.mark.cluster, pytest.mark.docker]

SEEDS = (101, 102)
FAULT_SECONDS = 45.0


@pytest.mark.parametrize("seed", SEEDS)
def test_nemesis_finds_nothing_lost(tmp_path: Path, seed: int) -> None:
    result = run_seed(seed, FAULT_SECONDS, tmp_path, nodes=3, clients=3, log=False)
    report = result.report()
    print(report)
    assert sum(result.faults.values()) > 0, report
    assert ops_of_kind(result, OpKind.SUBMIT) > 0 and ops_of_kind(result, OpKind.READ) > 0, report
    assert ops_of_kind(result, OpKind.SERVICE_CREATE) > 0, report  # services were checked too
    assert result.ok, report
