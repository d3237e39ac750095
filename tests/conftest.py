"""Suite-wide: the CLI remembers the endpoint that answered last in the user's cache dir;
tests keep that file in a temporary dir of their own, never in the real home. And the two
phases of ``make test``: tests that start node processes, containers or fault injection are
marked ``isolated`` and run after the rest, a few test files at a time."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Folders whose every test starts node processes or real actors on real sockets.
ISOLATED_DIRS = ("integration", "nemesis", "actors")
ISOLATED_MARKS = ("docker", "cluster", "nemesis")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests_dir).parts[0] if item.path.is_relative_to(tests_dir) else ""
        if folder in ISOLATED_DIRS or any(item.get_closest_marker(m) for m in ISOLATED_MARKS):
            item.add_marker(pytest.mark.isolated)


@pytest.fixture(autouse=True, scope="session")
def _private_cli_cache() -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="orion-test-cache-") as cache:
        previous = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = cache
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = previous
