"""The ``orion`` console script in a subprocess, against an ApiServer serving the in-memory node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orion.api.protocol import NodeInfo
from orion.api.server import ApiServer
from orion.cli import format_nodes
from tests.api.memory_node import MemoryNode

ORION = str(Path(sys.executable).parent / "orion")


def orion(*args: str, endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ORION_ENDPOINTS", None)
    if endpoint:
        env["ORION_ENDPOINTS"] = endpoint
    return subprocess.run([ORION, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_submit_ls_inspect_stop(api: ApiServer, node: MemoryNode) -> None:
    endpoint = f"127.0.0.1:{api.port}"
    done = orion(
        "--json",
        "task",
        "submit",
        "nginx",
        "--name",
        "web",
        "--memory",
        "256MiB",
        "--cpu",
        "0.5",
        "-p",
        "8080:80/tcp",
        "--selector",
        "zone=a",
        "--env",
        "MODE=prod",
        "--",
        "nginx",
        "-g",
        "daemon off;",
        endpoint=endpoint,
    )
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert task["portBindings"] == {"80/tcp": "8080"} and task["nodeSelectors"] == {"zone": "a"}
    assert task["command"] == ["nginx", "-g", "daemon off;"] and task["memory"] == 256 * 1024**2
    assert node.tasks[task["id"]].name == "web"

    listing = orion("task", "ls", "--endpoints", endpoint)
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "IMAGE", "STATE"]
    assert row.split()[:4] == [task["id"][:12], "web", "nginx", "Pending"]

    inspect = orion("task", "inspect", task["id"], endpoint=endpoint)
    assert inspect.returncode == 0, inspect.stderr
    assert "Reason:     no node has 15.9 GiB of free memory" in inspect.stdout
    assert "History:" in inspect.stdout and "Pending: submitted" in inspect.stdout
    assert "prod" not in inspect.stdout  # env values are not printed

    stopped = orion("task", "stop", task["id"], endpoint=endpoint)
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout


def test_nodes_and_raft(api: ApiServer) -> None:
    endpoint = f"127.0.0.1:{api.port}"
    nodes = orion("nodes", endpoint=endpoint)
    assert nodes.returncode == 0, nodes.stderr
    assert nodes.stdout.splitlines()[1].split()[:5] == ["node1", "127.0.0.1:7100", "alive", "leader", "voter"]
    raft = json.loads(orion("raft", "--json", endpoint=endpoint).stdout)
    assert raft["leaderId"] == "node1" and raft["term"] == 3


def test_exit_codes(api: ApiServer, node: MemoryNode) -> None:
    endpoint = f"127.0.0.1:{api.port}"
    missing = orion("task", "inspect", "nope", endpoint=endpoint)
    assert missing.returncode == 4 and "no task nope" in missing.stderr
    invalid = orion("task", "submit", "nginx", "--memory", "-5", endpoint=endpoint)
    assert invalid.returncode == 2 and "memory" in invalid.stderr
    bad_port = orion("task", "submit", "nginx", "-p", "web:80", endpoint=endpoint)
    assert bad_port.returncode == 2 and "-p" in bad_port.stderr
    node.no_quorum = True
    quorum = orion("task", "submit", "nginx", endpoint=endpoint)
    assert quorum.returncode == 1 and "no quorum" in quorum.stderr
    usage = orion("task", "frobnicate")
    assert usage.returncode == 2
    assert node.tasks == {}


def test_unreachable_cluster_exits_3() -> None:
    probe = ApiServer("127.0.0.1", 0, MemoryNode())
    probe.start()
    dead = f"127.0.0.1:{probe.port}"
    probe.stop()
    done = orion("--timeout", "0.2", "task", "ls", endpoint=dead)
    assert done.returncode == 3 and dead in done.stderr


def test_help_documents_exit_codes() -> None:
    done = orion("--help")
    assert done.returncode == 0
    assert "exit codes:" in done.stdout and "4  not found" in done.stdout


def test_nodes_table_shows_subnets_only_with_the_overlay() -> None:
    plain = format_nodes([NodeInfo(id="n1", address="127.0.0.1"), NodeInfo(id="n2", address="127.0.0.2")])
    assert "SUBNET" not in plain
    overlay = format_nodes([NodeInfo(id="n2", subnet="10.42.1.0/24"), NodeInfo(id="n1", subnet="")])
    header, first, second = overlay.splitlines()[:3]
    assert header.split()[:3] == ["ID", "ADDRESS", "SUBNET"]
    assert first.split()[:3] == ["n1", "-", "-"] and second.split()[:3] == ["n2", "-", "10.42.1.0/24"]
