"""Suite-wide: the CLI remembers the endpoint that answered last in the user's cache dir;
tests keep that file in a temporary dir of their own, never in the real home."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest


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
