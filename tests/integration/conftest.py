"""Real clusters of `orion node` processes on 127.0.0.1 (and a real Docker engine).

Every cluster is closed by the fixture, even when the test fails: its processes are ended by
PID and its containers removed by label. On failure the tail of each node's log is printed.
Clusters are secured (CURVE, client token) unless a test asks for ``insecure=True``; after
each test the fixture fails it if a cluster key or client token appears in any node log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from orion.testing.localcluster import LocalCluster

IMAGE = "orion-busybox:latest"
SLEEP = ["sleep", "3600"]


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """The real engine; a test that needs it fails (never skips) when it does not answer."""
    engine = docker.from_env()
    engine.ping()
    engine.images.get(IMAGE)  # built by tools/docker_setup.py (make test runs it first)
    yield engine
    engine.close()


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalCluster]]:
    clusters: list[LocalCluster] = []

    def make(size: int, start: bool = True, **kwargs: Any) -> LocalCluster:
        cluster = LocalCluster(size, tmp_path / f"cluster{len(clusters)}", **kwargs)
        clusters.append(cluster)
        if start:
            cluster.start(timeout=60)
        return cluster

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    leaks: list[str] = []
    for cluster in clusters:
        if failed:
            print(cluster.logs(80))
        cluster.close()
        leaks += cluster.leaked_secrets()
    if leaks:  # secrets stay out of logs: a key or a token in a log is a failure, whatever the test checked
        pytest.fail("secrets in node logs: " + "; ".join(leaks))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def containers_of(engine: docker.DockerClient, task_id: str, running_only: bool = True) -> list[Any]:
    return engine.containers.list(all=not running_only, filters={"label": f"orion.task.id={task_id}"})
