from __future__ import annotations

from collections.abc import Iterator

import pytest

from orion.api.server import ApiServer
from tests.api.memory_node import MemoryNode


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
