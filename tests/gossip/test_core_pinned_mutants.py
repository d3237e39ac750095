"""SwimCore behaviours pinned after the mutation run (see RELIABILITY.md, "20,000 seeds and the
mutation score"): each test states a rule a surviving mutant broke without any test noticing."""

from __future__ import annotations

from orion.gossip.config import GossipConfig
from tests.gossip.test_core import make, statuses


def test_a_probe_timeout_as_long_as_the_interval_still_ends_in_suspicion() -> None:
    """With probe_timeout >= probe_interval a probe ends before its indirect phase: a silent
    target must still be suspected (and our own health score rise), not crash the prober."""
    config = GossipConfig(probe_timeout=2.0, probe_interval=1.0)
    cores, link = make(2, config)
    link.run(0.0, 1.0)
    assert statuses(cores[0])["n1"] == "alive"
    link.blackholed.add(cores[1].address)
    now = link.run(1.0, 4.0)
    assert statuses(cores[0])["n1"] in ("suspect", "dead"), statuses(cores[0])
    assert cores[0].local_health >= 1
    link.run(now, now + 1.0)
