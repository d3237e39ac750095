"""Regression: a write refused with no_quorum after an earlier attempt went unanswered has an
unknown outcome, not a definite refusal.

The client resends a request to the next endpoint when one stays silent (Lazy Pirate). The
silent node may have appended the write and commit it later; a no_quorum from the next node
only says that *it* appended nothing. Reporting NoQuorum there told the caller "definitely not
applied" for a task that then appeared: the checker's "refused submits never exist" rule.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orion.api.server import ApiServer
from orion.client import Client, NoQuorum, Timeout
from tests.api.memory_node import MemoryNode


@pytest.fixture
def silent_then_no_quorum() -> Iterator[tuple[MemoryNode, list[str]]]:
    silent, minority = MemoryNode("node1"), MemoryNode("node2")
    silent.swallow_next = 1  # applies the submit, never answers it
    minority.no_quorum = True
    servers = [ApiServer("127.0.0.1", 0, silent), ApiServer("127.0.0.1", 0, minority)]
    for server in servers:
        server.start()
    try:
        yield silent, [f"127.0.0.1:{s.port}" for s in servers]
    finally:
        for server in servers:
            server.stop()


def test_no_quorum_after_silence_is_unknown(silent_then_no_quorum: tuple[MemoryNode, list[str]]) -> None:
    silent, endpoints = silent_then_no_quorum
    with Client(endpoints, timeout=0.5, retries=1) as client, pytest.raises(Timeout, match="outcome unknown"):
        client.submit("nginx", id="maybe-applied")
    assert silent.submits_seen == ["maybe-applied"]  # the silent node did take it


def test_no_quorum_on_the_first_answer_is_still_a_refusal(
    silent_then_no_quorum: tuple[MemoryNode, list[str]],
) -> None:
    _, endpoints = silent_then_no_quorum
    with Client(endpoints[1:], timeout=0.5, retries=1) as client, pytest.raises(NoQuorum):
        client.submit("nginx", id="refused")
