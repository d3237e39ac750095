"""The first hour of a new user: the client and the CLI (endpoints, local mistakes,
the command field, wait, reused ids, Stopping, messages), against in-process API servers in
front of the in-memory node or the real state machine (tests/api/fsm_raft.py), and the
``orion`` console script in subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from orion.actors.api_actor import ApiActor
from orion.api.endpoints import EndpointMemory
from orion.api.http import HttpApi
from orion.api.server import ApiServer
from orion.client import (
    DEFAULT_ENDPOINTS,
    Client,
    Conflict,
    InvalidEndpoint,
    InvalidRequest,
    default_endpoints,
    shown_state,
)
from orion.fsm.commands import AssignTasks, ReleasePorts, ReportTaskState, UpsertNode
from orion.model import NodeMeta, TaskState
from tests.api.fsm_raft import FsmRaft
from tests.api.memory_node import MemoryNode
from tests.api.test_http import call

ORION = str(Path(sys.executable).parent / "orion")
ROOT = Path(__file__).resolve().parents[2]


def orion(*args: str, timeout: float = 60.0, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script with only the client variables given here (XDG_CACHE_HOME comes from
    the autouse fixture in conftest.py)."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("ORION_ENDPOINTS", "ORION_TOKEN", "ORION_TOKEN_FILE")
    }
    environment.update(env)
    return subprocess.run(
        [ORION, *args], capture_output=True, text=True, timeout=timeout, env=environment, check=False
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


class SilentListener:
    """A port that accepts TCP connections and never says a word (a hung or firewalled node),
    counting the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.sock.settimeout(0.05)  # so the accepting thread sees ``close`` soon
        self.accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()


def closed_endpoint() -> str:
    """A loopback port nothing listens on (the kernel refuses connections at once)."""
    probe = socket.create_server(("127.0.0.1", 0))
    endpoint = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    return endpoint


# ---------------------------------------------------------------------- endpoints


def test_default_endpoints_are_the_api_ports_of_the_shipped_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = sorted((ROOT / "config").glob("node*.toml"))
    assert len(configs) == 3
    shipped = [f"127.0.0.1:{tomllib.loads(path.read_text())['ports']['api']}" for path in configs]
    monkeypatch.delenv("ORION_ENDPOINTS", raising=False)
    assert list(DEFAULT_ENDPOINTS) == shipped == default_endpoints()
    with Client(token="") as client:
        assert client.endpoints == shipped


@pytest.mark.parametrize(
    ("given", "named", "reason"),
    [
        ("127.0.0.1", "127.0.0.1", "expected host:port"),
        ("http://127.0.0.1:7301", "http://127.0.0.1:7301", "not a URL"),
        ("127.0.0.1:99999", "127.0.0.1:99999", "1-65535"),
        ("127.0.0.1:7301,:7302", ":7302", "expected host:port"),
    ],
)
def test_malformed_endpoints_are_one_line_usage_errors(given: str, named: str, reason: str) -> None:
    done = orion("task", "ls", ORION_ENDPOINTS=given)
    line = one_line(done.stderr)
    assert done.returncode == 2 and "ORION_ENDPOINTS" in line and named in line and reason in line, line
    flag = orion("--endpoints", given, "task", "ls")
    assert flag.returncode == 2 and "--endpoints" in one_line(flag.stderr)
    with pytest.raises(InvalidEndpoint, match=reason):
        Client(given.split(","), token="")


def test_a_rest_port_given_as_endpoint_is_named_at_once(node: MemoryNode) -> None:
    rest = HttpApi("127.0.0.1", 0, node, api_port=7301)
    rest.start()
    try:
        endpoint = f"127.0.0.1:{rest.port}"
        # The 30 s attempt timeout is never waited for: the subprocess deadline is shorter.
        done = orion("--timeout", "30", "task", "ls", timeout=20, ORION_ENDPOINTS=endpoint)
        line = one_line(done.stderr)
        assert done.returncode == 2
        assert line == f"orion: {endpoint} is the REST port of node1; the API port is 127.0.0.1:7301"
        with Client([endpoint], timeout=30, token="") as client, pytest.raises(InvalidEndpoint, match="REST"):
            client.tasks()
        assert node.submits_seen == []
    finally:
        rest.stop()


def test_a_closed_first_endpoint_costs_no_timeout(api: ApiServer) -> None:
    good = f"127.0.0.1:{api.port}"
    # With a 60 s attempt timeout and a 20 s deadline, this passes only if the closed port is
    # skipped without waiting for an answer from it.
    done = orion("--timeout", "60", "task", "ls", timeout=20, ORION_ENDPOINTS=f"{closed_endpoint()},{good}")
    assert done.returncode == 0, done.stderr


def test_the_cli_starts_where_the_last_command_got_an_answer(api: ApiServer, silent: SilentListener) -> None:
    endpoints = f"{silent.endpoint},127.0.0.1:{api.port}"
    first = orion("--timeout", "1", "task", "ls", ORION_ENDPOINTS=endpoints)
    assert first.returncode == 0, first.stderr
    assert len(silent.accepted) == 1  # the first command tried the silent node once
    for _ in range(3):
        again = orion("--timeout", "1", "task", "ls", ORION_ENDPOINTS=endpoints)
        assert again.returncode == 0, again.stderr
    assert len(silent.accepted) == 1  # later commands went straight to the one that answered
    memory = EndpointMemory()
    assert memory.recall(endpoints.split(",")) == f"127.0.0.1:{api.port}"


def test_an_unwritable_endpoint_memory_is_not_fatal(
    api: ApiServer, silent: SilentListener, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    endpoints = f"{silent.endpoint},127.0.0.1:{api.port}"
    done = orion("--timeout", "1", "task", "ls", ORION_ENDPOINTS=endpoints, XDG_CACHE_HOME=str(not_a_dir))
    assert done.returncode == 0 and done.stderr == ""


def test_the_client_keeps_the_endpoint_that_answered(api: ApiServer, silent: SilentListener) -> None:
    with Client([silent.endpoint, f"127.0.0.1:{api.port}"], timeout=0.5, token="") as client:
        for _ in range(3):
            client.tasks()
        assert client.last_answered == f"127.0.0.1:{api.port}"
    assert len(silent.accepted) == 1


# ---------------------------------------------------------------------- local mistakes


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["task", "ls"], {"ORION_TOKEN_FILE": "/nonexistent"}, "ORION_TOKEN_FILE /nonexistent: no such file"),
        (["--token-file", "/nonexistent", "task", "ls"], {}, "--token-file /nonexistent: no such file"),
        (["--timeout", "0", "task", "ls"], {}, "--timeout: must be more than 0 seconds"),
        (["task", "ls", "--timeout", "-1"], {}, "--timeout: must be more than 0 seconds"),
        (["--timeout", "soon", "task", "ls"], {}, "--timeout: expected seconds"),
        (["task", "ls", "--bogus"], {}, "unrecognized arguments: --bogus"),
        (["task", "frobnicate"], {}, "invalid choice: 'frobnicate'"),
        (["task", "submit", "nginx", "--cpu", "many"], {}, "--cpu: invalid float value"),
    ],
)
def test_local_mistakes_are_one_line_and_exit_2(args: list[str], env: dict[str, str], expected: str) -> None:
    done = orion(*args, **env)
    assert done.returncode == 2 and expected in one_line(done.stderr), done.stderr


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    done = orion("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"orion {version('orion')}"


def test_each_thing_is_said_once(api: ApiServer, node: MemoryNode) -> None:
    node.no_quorum = True
    done = orion("task", "submit", "nginx", ORION_ENDPOINTS=f"127.0.0.1:{api.port}")
    line = one_line(done.stderr)
    assert done.returncode == 1
    assert line.startswith("orion: no quorum: the cluster cannot commit writes") and "no_quorum" not in line


# ---------------------------------------------------------------------- command, wait


def test_command_as_a_string_is_refused_by_the_client_as_by_rest(api: ApiServer, node: MemoryNode) -> None:
    rest = HttpApi("127.0.0.1", 0, node)
    rest.start()
    try:
        status, body = call(
            rest, "POST", "/tasks", json.dumps({"image": "busybox", "command": "sleep 100"}).encode()
        )
    finally:
        rest.stop()
    with Client([f"127.0.0.1:{api.port}"], token="") as client, pytest.raises(InvalidRequest) as info:
        client.submit("busybox", command="sleep 100")  # type: ignore[arg-type]
    assert status == 400 and body["field"] == "command"
    assert info.value.message == body["error"]
    assert body["error"].startswith('command: must be a list of arguments like ["sleep", "100"]')
    assert node.submits_seen == []
    with Client([f"127.0.0.1:{api.port}"], token="") as client:  # a tuple is a list of arguments
        assert client.submit("busybox", command=("sleep", "100")).command == ["sleep", "100"]  # type: ignore[arg-type]


def test_wait_rejects_an_unknown_state_at_once_and_ignores_case(api: ApiServer) -> None:
    with Client([f"127.0.0.1:{api.port}"], token="") as client:
        task = client.submit("busybox")
        with pytest.raises(InvalidRequest) as info:
            client.wait(task.id, "Runing", timeout=600)  # polled for 10 minutes before
        assert info.value.message == (
            "state: unknown state 'Runing'; expected one of Pending, Scheduled, Running, Failed, Stopped"
        )
        assert client.wait(task.id, "pending", timeout=600).state == TaskState.PENDING
        assert client.wait(task.id, TaskState.PENDING, timeout=600).id == task.id


# ---------------------------------------------------------------------- the real state machine


class FsmStack:
    """The real API actor and ClusterState behind the ZeroMQ and REST servers."""

    def __init__(self) -> None:
        self.fatal: list[str] = []
        self.raft_ref = FsmRaft.start()
        self.raft = self.raft_ref.proxy()
        self.api_ref = ApiActor.start(self.raft_ref, 5.0, self.fatal.append)
        handler = self.api_ref.proxy().handler().get()
        self.server = ApiServer("127.0.0.1", 0, handler)
        self.http = HttpApi("127.0.0.1", 0, handler, timeout=5.0)
        self.server.start()
        self.http.start()
        self.endpoint = f"127.0.0.1:{self.server.port}"
        meta = NodeMeta(id="n1", memory_total=1 << 34, cpu_total=4.0, host_ip="127.0.0.1", port_space="e1")
        self.raft.commit(UpsertNode(at=1.0, meta=meta)).get()

    def close(self) -> None:
        self.server.stop()
        self.http.stop()
        pykka.ActorRegistry.stop_all()


@pytest.fixture
def fsm() -> Iterator[FsmStack]:
    stack = FsmStack()
    try:
        yield stack
    finally:
        stack.close()
    assert stack.fatal == []


def test_a_reused_id_with_another_spec_is_a_conflict_and_a_retry_is_not(fsm: FsmStack) -> None:
    with Client([fsm.endpoint], token="") as client:
        first = client.submit("busybox", id="web-1", memory="64MiB", command=["sleep", "100"])
        # The same submit again (what a client retry sends): the existing task, not a second one.
        again = client.submit("busybox", id="web-1", memory="64MiB", command=["sleep", "100"])
        assert again.id == first.id and again.created_at == first.created_at
        with pytest.raises(Conflict) as info:
            client.submit("redis", id="web-1", memory="128MiB", command=["sleep", "100"])
    assert info.value.code == "conflict"
    assert info.value.message.startswith("task web-1 already exists with a different image, memory:")
    status, body = call(fsm.http, "POST", "/tasks", b'{"id": "web-1", "image": "redis"}')
    assert (
        status == 409 and body["code"] == "conflict" and "different image, memory, command" in body["error"]
    )
    done = orion("task", "submit", "redis", "--id", "web-1", ORION_ENDPOINTS=fsm.endpoint)
    line = one_line(done.stderr)
    assert done.returncode == 1 and line.startswith("orion: conflict: task web-1 already exists")
    assert [t.image for t in fsm.raft.tasks().get()] == ["busybox"]


def test_stop_shows_stopping_until_the_container_is_seen_gone(fsm: FsmStack) -> None:
    with Client([fsm.endpoint], token="") as client:
        task = client.submit("busybox", name="web", ports={"80/tcp": "8080"})
        fsm.raft.commit(
            AssignTasks(at=2.0, assignments=[(task.id, "n1")], host_ports={task.id: {"80/tcp": 8080}})
        ).get()
        fsm.raft.commit(ReportTaskState(at=3.0, task_id=task.id, node_id="n1", state=TaskState.RUNNING)).get()
        stopped = orion("task", "stop", task.id, ORION_ENDPOINTS=fsm.endpoint)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == f"{task.id}  Stopping"
        record = client.task(task.id)
        assert record.state == TaskState.STOPPED and shown_state(record) == "Stopping"  # stored vs shown
        inspect = orion("task", "inspect", task.id, ORION_ENDPOINTS=fsm.endpoint)
        assert (
            "State:      Stopping (desired: stop; the container on n1 is not yet seen stopped)"
            in inspect.stdout
        )
        listing = orion("task", "ls", ORION_ENDPOINTS=fsm.endpoint)
        assert listing.stdout.splitlines()[1].split()[3] == "Stopping"
        # The node reports the container gone (the reconciler's ReleasePorts).
        fsm.raft.commit(ReleasePorts(node_id="n1", task_ids=[task.id], at=4.0)).get()
        assert shown_state(client.task(task.id)) == "Stopped"
        listing = orion("task", "ls", ORION_ENDPOINTS=fsm.endpoint)
        assert listing.stdout.splitlines()[1].split()[3] == "Stopped"
        assert (
            json.loads(orion("--json", "task", "inspect", task.id, ORION_ENDPOINTS=fsm.endpoint).stdout)[
                "state"
            ]
            == "Stopped"
        )
