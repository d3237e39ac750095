"""orion/actors/reconciler_actor.py keeps a task's restart backoff (orion/worker/restart_policy.py):
after an exit the container is started again only once the policy's delay has passed.

Two crashing tasks on one real cluster: ``hasty`` (10 ms delay) uses up four restarts and fails;
``patient`` (1 h delay) must by then still be waiting for its first restart. A reconciler that
restarted at once would have run ``patient`` a second time, used its only attempt, and failed it.
"""

from __future__ import annotations

import pytest

from orion.testing.localcluster import wait_for
from tests.integration.conftest import IMAGE

pytestmark = [pytest.mark.cluster, pytest.mark.docker]
CRASH = ["sh", "-c", "exit 1"]


def test_a_crashed_task_waits_out_its_restart_delay(make_cluster, docker_engine):
    cluster = make_cluster(3)
    with cluster.client() as client:
        patient = client.submit(
            IMAGE,
            name="patient",
            command=CRASH,
            restart={"policy": "on-failure", "attempts": 1, "interval": "2h", "delay": "1h"},
        )
        first_exit = wait_for(
            lambda: (t := client.task(patient.id)).restarts == 1 and t, 60, what="patient's first exit"
        )
        assert any(e.reason.endswith("restart 1/1 in 1h") for e in first_exit.history), first_exit.history
        hasty = client.submit(
            IMAGE,
            name="hasty",
            command=CRASH,
            restart={"policy": "on-failure", "attempts": 4, "interval": "2h", "delay": "10ms"},
        )
        failed = wait_for(
            lambda: (t := client.task(hasty.id)).state == "Failed" and t,
            120,
            what="hasty to use its restarts",
        )
        assert failed.restarts == 4
        waiting = client.task(patient.id)
    assert waiting.state != "Failed" and waiting.restarts == 1, (waiting.state, waiting.reason)
    assert all(event.state != "Failed" for event in waiting.history)
