"""The short nemesis run on a bed: the faults are whole hosts killed and rebooted, frozen, and
cut off by nftables rules in their namespaces; the checker counts containers in every host's
own engine. The kinds that only differ from the plain nemesis in being slower here (restarting
every host, a wipe) are left to ``python -m tools.nemesis --hosts``."""

from __future__ import annotations

from pathlib import Path

import pytest

from orion.nemesis.history import OpKind
from orion.nemesis.run import ops_of_kind, run_seed

pytestmark = [pytest.mark.hosts, pytest.mark.nemesis, pytest.mark.cluster, pytest.mark.docker]

SEED = 301
FAULT_SECONDS = 20.0
FAULTS = ("kill", "pause", "partition")


def test_nemesis_on_the_bed_finds_nothing_lost(tmp_path: Path) -> None:
    result = run_seed(
        SEED, FAULT_SECONDS, tmp_path, nodes=3, clients=2, services=1, log=False, hosts=True, faults=FAULTS
    )
    report = result.report()
    print(report)
    assert sum(result.faults.values()) > 0, report
    assert ops_of_kind(result, OpKind.SUBMIT) > 0 and ops_of_kind(result, OpKind.READ) > 0, report
    assert ops_of_kind(result, OpKind.SERVICE_CREATE) > 0, report
    assert result.ok, report
