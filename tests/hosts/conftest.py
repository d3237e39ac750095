"""Beds of real hosts in miniature (orion/testing/hosts): network namespaces, one dockerd and
one ``orion node`` per host. They need root, which CI has; a kernel without netns, veth or
bridge makes the bed's start raise, so these tests fail there, never skip.

One bed per test module (dockerd and the cluster take most of a bed's start); the ``bed``
fixture hands it to each test healed (no partition, every host up, one leader) and the module's
finalizer removes it even when a test failed, printing its logs then. Beds a killed run left
behind are removed before the first bed of a session starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orion.testing.hosts import HostBed, cleanup_stale_beds


def pytest_configure(config: pytest.Config) -> None:
    # Registered here so the bed's tests do not depend on the shared pyproject.toml.
    config.addinivalue_line("markers", "hosts: a test bed of network namespaces with their own dockerd")


@pytest.fixture(scope="session")
def stale_beds_removed() -> list[str]:
    return cleanup_stale_beds()


@pytest.fixture(scope="module")
def make_bed(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, stale_beds_removed: list[str]
) -> Iterator[Callable[..., HostBed]]:
    beds: list[HostBed] = []

    def make(hosts: int = 3, start: bool = True, **kwargs: Any) -> HostBed:
        bed = HostBed(hosts, Path(tmp_path_factory.mktemp("bed")), **kwargs)
        beds.append(bed)
        if start:
            bed.start(timeout=120)
        return bed

    yield make
    failed = any(getattr(item, "bed_failed", False) for item in request.session.items)
    leaks: list[str] = []
    problems: list[str] = []
    for bed in beds:
        if failed:
            print(bed.logs(80))
        leaks += bed.cluster.leaked_secrets()
        try:
            bed.close()
        except Exception as exc:
            problems.append(str(exc))
    if problems:
        pytest.fail("bed teardown: " + "; ".join(problems))
    if leaks:
        pytest.fail("secrets in node logs: " + "; ".join(leaks))


def restore(bed: HostBed) -> None:
    """Undo what a test did to a shared bed: partitions healed, frozen hosts thawed, dead
    hosts booted, and one leader over every node."""
    bed.heal()
    for host in bed.hosts:
        bed.resume_host(host.index)
        if not bed.cluster.node(host.index).running or not host.engine.running:
            bed.restart_host(host.index)
    bed.cluster.wait_ready(90)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "hosts" in item.keywords:
        item.bed_failed = True  # type: ignore[attr-defined]
