"""Restart policy per task, on real `orion node` processes and a real Docker
engine. The restart budget resets after its interval, `no` and `always` do what they say,
delay mode keeps trying, ended tasks keep their (stopped) containers until removed, and a
container removed behind Orion's back is a restart in the task's history."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orion.model import Task
from orion.testing.localcluster import wait_for
from tests.integration.conftest import IMAGE, SLEEP, containers_of

pytestmark = [pytest.mark.cluster, pytest.mark.docker]


def task_where(client: Any, task_id: str, condition: Any, timeout: float, what: str) -> Task:
    def check() -> Task | None:
        task = client.task(task_id)
        return task if condition(task) else None

    return wait_for(check, timeout, what=what)


def never_failed(task: Task) -> bool:
    return task.state != "Failed" and all(event.state != "Failed" for event in task.history)


def only_container(engine: Any, task_id: str) -> Any:
    (container,) = containers_of(engine, task_id, running_only=False)
    return container


def test_the_restart_budget_resets_after_its_interval(make_cluster, docker_engine):
    # Four kills, each after the last restart left the 3 s interval: 2 attempts are never used up.
    cluster = make_cluster(3)
    policy = {"policy": "on-failure", "attempts": 2, "interval": "3s", "delay": "100ms"}
    with cluster.client() as client:
        task = client.submit(IMAGE, name="kill-me", command=SLEEP, restart=policy)
        for kill in range(1, 5):
            running = task_where(
                client,
                task.id,
                lambda t, k=kill: t.state == "Running" and t.restarts == k - 1,
                60,
                f"Running before kill {kill}",
            )
            if running.restart_times:
                last = running.restart_times[-1]
                wait_for(lambda last=last: time.time() - last > 3.2, 10, what="the interval to pass")
            containers_of(docker_engine, task.id)[0].kill()
            task_where(client, task.id, lambda t, k=kill: t.restarts == k, 60, f"restart after kill {kill}")
        final = task_where(client, task.id, lambda t: t.state == "Running" and t.restarts == 4, 60, "Running")
    assert never_failed(final)
    restarts = [e.reason for e in final.history if "; restart 1/2 in 0.1s" in e.reason]
    assert len(restarts) == 4 and all(r.startswith("exited with code 137") for r in restarts)


def test_policy_no_fails_at_once_and_keeps_the_container_until_the_task_is_removed(
    make_cluster, docker_engine
):
    cluster = make_cluster(3)
    with cluster.client() as client:
        task = client.submit(IMAGE, name="once", command=["sh", "-c", "exit 3"], restart="no")
        failed = task_where(client, task.id, lambda t: t.state == "Failed", 60, "Failed")
        assert (failed.restarts, failed.exit_code) == (0, 3)
        assert failed.reason == "exited with code 3 (restart policy: no)"
        assert failed.restart is not None and failed.restart.policy == "no"
        kept = only_container(docker_engine, task.id)
        kept.reload()
        assert kept.status == "exited" and kept.attrs["State"]["ExitCode"] == 3
        client.remove(task.id)
    wait_for(lambda: not containers_of(docker_engine, task.id, running_only=False), 30, what="removal")


def test_always_restarts_a_clean_exit_until_the_attempts_are_used(make_cluster, docker_engine):
    cluster = make_cluster(3)
    policy = {"policy": "always", "attempts": 2, "interval": "1m", "delay": "100ms", "mode": "fail"}
    with cluster.client() as client:
        task = client.submit(IMAGE, name="done", command=["true"], restart=policy)
        failed = task_where(client, task.id, lambda t: t.state == "Failed", 60, "Failed")
    assert failed.restarts == 2 and failed.exit_code == 0
    assert failed.reason == "exited with code 0; gave up after 2 restart(s) in 1m"


def test_delay_mode_keeps_trying_after_the_attempts_are_used(make_cluster, docker_engine):
    cluster = make_cluster(3)
    # Rounds run every 2 s (reconcile_interval), so the interval is a few rounds long.
    policy = {"policy": "on-failure", "attempts": 1, "interval": "6s", "delay": "100ms", "mode": "delay"}
    with cluster.client() as client:
        task = client.submit(IMAGE, name="crashy", command=["sh", "-c", "exit 1"], restart=policy)
        later = task_where(client, task.id, lambda t: t.restarts >= 3, 60, "three restarts")
    assert never_failed(later)
    assert any("1 restart(s) in 6s: next in" in e.reason for e in later.history)


def test_a_container_removed_behind_orions_back_is_a_restart_in_the_history(make_cluster, docker_engine):
    cluster = make_cluster(3)
    with cluster.client() as client:
        task = client.submit(IMAGE, name="victim", command=SLEEP)
        for removal in (1, 2):  # the second one after a restart too
            task_where(
                client,
                task.id,
                lambda t, n=removal: t.state == "Running" and t.restarts == n - 1,
                60,
                "Running",
            )
            only_container(docker_engine, task.id).remove(force=True)
        back = task_where(
            client, task.id, lambda t: t.state == "Running" and t.restarts == 2, 60, "Running again"
        )
    reasons = [e.reason for e in back.history]
    # docker rm -f kills the container first: Docker may report that exit, or only the removal.
    noticed = [
        r for r in reasons if r.startswith(("container removed outside Orion", "exited with code 137"))
    ]
    assert len(noticed) == 2
    assert len(containers_of(docker_engine, task.id)) == 1


def test_a_stopped_task_keeps_its_stopped_container_until_removed(make_cluster, docker_engine):
    cluster = make_cluster(3)
    with cluster.client() as client:
        task = client.submit(IMAGE, name="stopme", command=SLEEP)
        task_where(client, task.id, lambda t: t.state == "Running", 60, "Running")
        client.stop(task.id)

        def stopped_and_kept() -> bool:
            (container,) = containers_of(docker_engine, task.id, running_only=False)
            return container.status == "exited"

        wait_for(stopped_and_kept, 30, what="the container stopped and kept")
        client.remove(task.id)
    wait_for(lambda: not containers_of(docker_engine, task.id, running_only=False), 30, what="removal")
