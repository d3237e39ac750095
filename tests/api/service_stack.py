"""The real API actor over the real state machine (tests/api/fsm_raft.py stands in for
consensus), served by the ZeroMQ API and the REST mirror: what the services' client, CLI and
REST tests talk to."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pykka
import pytest

from orion.actors.api_actor import ApiActor
from orion.api.http import HttpApi
from orion.api.server import ApiServer
from orion.client import Client
from orion.fsm.commands import UpsertNode
from orion.model import NodeMeta
from tests.api.fsm_raft import FsmRaft


@dataclass
class Stack:
    raft: pykka.ActorProxy
    client: Client
    endpoint: str
    http: HttpApi


@pytest.fixture(name="stack")
def stack_fixture() -> Iterator[Stack]:
    fatal: list[str] = []
    raft_ref = FsmRaft.start()
    api_ref = ApiActor.start(raft_ref, 5.0, fatal.append)
    handler = api_ref.proxy().handler().get()
    server = ApiServer("127.0.0.1", 0, handler)
    http = HttpApi("127.0.0.1", 0, handler, timeout=5.0)
    server.start()
    http.start()
    raft = raft_ref.proxy()
    raft.commit(UpsertNode(at=1.0, meta=NodeMeta(id="n1", memory_total=1 << 34, cpu_total=4.0))).get()
    endpoint = f"127.0.0.1:{server.port}"
    client = Client([endpoint], timeout=5.0)
    try:
        yield Stack(raft, client, endpoint, http)
    finally:
        client.close()
        http.stop()
        server.stop()
        api_ref.stop()
        raft_ref.stop()
    assert fatal == []
