from __future__ import annotations

from collections.abc import Iterator

import pytest

from orion.api.server import ApiServer
from tests.api.memory_node import MemoryNode


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI runs remember their last endpoint under XDG_CACHE_HOME: keep that out of ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def plain_api_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process servers here speak plain TCP: a server key a LocalCluster of this process
    put in the environment (ORION_SERVER_KEY) would make clients insist on CURVE."""
    for name in ("ORION_SERVER_KEY", "ORION_SERVER_KEY_FILE", "ORION_CLIENT_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def node() -> MemoryNode:
    return MemoryNode()


@pytest.fixture
def api(node: MemoryNode) -> Iterator[ApiServer]:
    server = ApiServer("127.0.0.1", 0, node, max_request=64 * 1024)
    server.start()
    try:
        yield server
    finally:
        server.stop()
