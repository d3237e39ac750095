"""Nemesis tests: real ``orion node`` processes under injected faults."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here so the nemesis suite does not depend on the shared pyproject.toml.
    config.addinivalue_line("markers", "nemesis: fault-injection runs against a live local cluster")
