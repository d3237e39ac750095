"""Client tokens re-read while the API servers run (SIGHUP), a missing token told
apart from a wrong one, and GET /health for load balancers without a token. In process, with
the in-memory node or the real state machine behind the servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from orion.actors.api_actor import ApiActor
from orion.api.http import HttpApi
from orion.api.server import ApiServer
from orion.client import Client, Unauthorized
from orion.config import parse_config
from orion.security.keys import TokenSet, write_cluster_key
from orion.security.settings import load_node_security, reload_all_tokens
from tests.api.fsm_raft import FsmRaft
from tests.api.memory_node import MemoryNode

OLD = "old-token-0123456789"
NEW = "new-token-9876543210"


def get(port: int, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def accepted(endpoint: str, token: str) -> bool:
    with Client([endpoint], timeout=2.0, retries=1, token=token) as client:
        try:
            client.tasks()
        except Unauthorized:
            return False
    return True


class Servers:
    """Both API servers of one node, sharing the node's TokenSet, as orion/node.py wires them."""

    def __init__(self, node: Any, tokens: TokenSet | None, api_port: int = 0) -> None:
        self.api = ApiServer("127.0.0.1", 0, node, tokens=tokens)
        self.api.start()
        self.http = HttpApi("127.0.0.1", 0, node, timeout=5.0, tokens=tokens, api_port=api_port)
        self.http.start()
        self.endpoint = f"127.0.0.1:{self.api.port}"

    def close(self) -> None:
        self.api.stop()
        self.http.stop()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Servers, Path, Any]]:
    write_cluster_key(tmp_path / "secrets")
    token_file = tmp_path / "secrets" / "client.token"
    token_file.write_text(OLD + "\n")
    token_file.chmod(0o600)
    config = parse_config(
        f'[node]\nid = "node1"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[security]\ncluster_key = "{tmp_path / "secrets" / "cluster.key_secret"}"\n'
        f'token_file = "{token_file}"\n'
    )
    security = load_node_security(config)
    servers = Servers(MemoryNode(), security.tokens)
    try:
        yield servers, token_file, security
    finally:
        servers.close()


def test_a_reload_swaps_the_tokens_of_both_servers(secured: tuple[Servers, Path, Any]) -> None:
    servers, token_file, security = secured
    assert accepted(servers.endpoint, OLD) and not accepted(servers.endpoint, NEW)
    # Rotation: both tokens for a while, then the new one alone.
    token_file.write_text(f"{OLD}\n{NEW}\n")
    assert reload_all_tokens() >= 1  # what SIGHUP runs (orion/cli.py)
    assert accepted(servers.endpoint, OLD) and accepted(servers.endpoint, NEW)
    token_file.write_text(f"{NEW}\n")
    assert security.reload_tokens()
    assert accepted(servers.endpoint, NEW) and not accepted(servers.endpoint, OLD)
    assert get(servers.http.port, "/tasks", NEW)[0] == 200
    assert get(servers.http.port, "/tasks", OLD)[0] == 401


def test_a_broken_token_file_keeps_the_tokens_loaded_before(secured: tuple[Servers, Path, Any]) -> None:
    servers, token_file, security = secured
    token_file.write_text("# emptied by mistake during a rotation\n")
    assert not security.reload_tokens()
    token_file.unlink()
    assert not security.reload_tokens()
    assert accepted(servers.endpoint, OLD)  # nobody is locked out by a typo


def test_a_missing_token_and_a_wrong_one_are_told_apart(secured: tuple[Servers, Path, Any]) -> None:
    servers, _, _ = secured
    messages = {}
    for token in ("", "wrong-token"):
        with (
            Client([servers.endpoint], timeout=2.0, retries=1, token=token) as client,
            pytest.raises(Unauthorized) as info,
        ):
            client.tasks()
        messages[token] = info.value.message
    assert messages[""].startswith("unauthorized: no token given (set ORION_TOKEN_FILE")
    assert messages["wrong-token"].startswith("unauthorized: token not accepted")
    assert get(servers.http.port, "/tasks")[1]["error"].startswith("no token given")
    assert get(servers.http.port, "/tasks", "wrong-token")[1]["error"].startswith("token not accepted")

    env = {k: v for k, v in os.environ.items() if not k.startswith("ORION_")}
    env["ORION_ENDPOINTS"] = servers.endpoint
    for extra, expected in (({}, "no token given"), ({"ORION_TOKEN": "wrong-token"}, "token not accepted")):
        done = subprocess.run(
            [sys.executable, "-m", "orion", "task", "ls"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, **extra},
            check=False,
        )
        assert done.returncode == 5 and done.stderr.startswith(f"orion: unauthorized: {expected}"), (
            done.stderr
        )


def test_health_answers_without_a_token_and_says_nothing_else(secured: tuple[Servers, Path, Any]) -> None:
    servers, _, _ = secured
    assert get(servers.http.port, "/tasks")[0] == 401
    status, body = get(servers.http.port, "/health")
    assert status == 200 and body == {"status": "ok", "node": "node1", "role": "leader"}
    assert get(servers.http.port, "/health", "wrong-token")[0] == 200  # a token is not looked at


def test_health_is_503_while_the_node_knows_no_leader() -> None:
    raft_ref = FsmRaft.start()
    fatal: list[str] = []
    api_ref = ApiActor.start(raft_ref, 5.0, fatal.append)
    servers = Servers(api_ref.proxy().handler().get(), TokenSet([OLD]), api_port=7301)
    try:
        assert get(servers.http.port, "/health") == (
            200,
            {"status": "ok", "node": "node1", "role": "leader", "apiPort": 7301},
        )
        raft_ref.proxy().set_leader(False).get()
        assert get(servers.http.port, "/health") == (
            503,
            {"status": "no_leader", "node": "node1", "role": "follower", "apiPort": 7301},
        )
    finally:
        servers.close()
        pykka.ActorRegistry.stop_all()
    assert fatal == []
