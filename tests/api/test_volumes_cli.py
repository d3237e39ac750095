"""``orion volume ...`` and ``-v NAME:/path[:ro]`` in a subprocess, against the real API actor and
state machine (tests/api/service_stack.py): output, --json, and the exit codes of bad input (2),
a missing volume (4) and a refusal (1)."""

from __future__ import annotations

import json

from orion.cli import EXIT_CLUSTER_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from tests.api.service_stack import Stack, stack_fixture  # noqa: F401 (the stack fixture)
from tests.api.test_cli import orion


def run(stack: Stack, *args: str) -> tuple[int, str, str]:
    done = orion(*args, endpoint=stack.endpoint)
    return done.returncode, done.stdout, done.stderr


def test_create_ls_inspect_rm(stack: Stack) -> None:
    code, out, err = run(
        stack,
        "--json",
        "volume",
        "create",
        "data",
        "--opt",
        "type=tmpfs",
        "--node",
        "n1",
        "--access",
        "multi",
    )
    assert (code, err) == (EXIT_OK, "")
    created = json.loads(out)
    assert (created["name"], created["state"], created["nodeId"]) == ("data", "pending", "n1")
    assert created["spec"] == {
        "name": "data",
        "driver": "local",
        "options": {"type": "tmpfs"},
        "node": "n1",
        "access": "multi",
    }
    assert run(stack, "volume", "create", "logs")[:2] == (EXIT_OK, "logs  created (single-writer, on -)\n")

    code, out, _ = run(stack, "volume", "ls")
    lines = out.splitlines()
    assert code == EXIT_OK and lines[0].split() == ["NAME", "DRIVER", "ACCESS", "NODE", "STATE", "USED", "BY"]
    assert [line.split() for line in lines[1:]] == [
        ["data", "local", "multi", "n1", "pending", "-"],
        ["logs", "local", "single-writer", "-", "pending", "-"],
    ]
    code, out, _ = run(stack, "--json", "volume", "ls")
    assert code == EXIT_OK and [v["volume"]["name"] for v in json.loads(out)] == ["data", "logs"]

    code, out, _ = run(stack, "volume", "inspect", "data")
    assert code == EXIT_OK
    assert "Name:     data" in out and "Access:   multi" in out and "Options:  type=tmpfs" in out
    assert "Used by:  -" in out
    code, out, _ = run(stack, "volume", "inspect", "data", "--json")
    assert code == EXIT_OK and json.loads(out)["volume"]["spec"]["options"] == {"type": "tmpfs"}

    code, out, err = run(stack, "volume", "rm", "logs")
    assert (code, out, err) == (EXIT_OK, "logs  removed\n", "")  # never made on a node: gone at once
    assert [info.volume.name for info in stack.client.volumes()] == ["data"]


def test_task_submit_mounts_and_rm_is_refused_while_in_use(stack: Stack) -> None:
    stack.client.create_volume("data")
    stack.client.create_volume("conf", access="multi")
    code, out, err = run(
        stack,
        "--json",
        "task",
        "submit",
        "busybox",
        "--name",
        "app",
        "-v",
        "data:/data",
        "-v",
        "conf:/etc/app:ro",
    )
    assert (code, err) == (EXIT_OK, "")
    assert json.loads(out)["volumes"] == [
        {"volume": "data", "target": "/data", "readOnly": False},
        {"volume": "conf", "target": "/etc/app", "readOnly": True},
    ]
    assert stack.client.volume("data").users == ["app"]
    assert "Used by:  app" in run(stack, "volume", "inspect", "conf")[1]

    code, out, err = run(stack, "volume", "rm", "data")
    assert (code, out) == (EXIT_CLUSTER_ERROR, "")
    assert err.startswith("orion: ") and "volume data is in use by 1 task" in err
    assert stack.client.volume("data").volume.state == "pending"


def test_service_create_and_update_take_mounts(stack: Stack) -> None:
    stack.client.create_volume("db")
    stack.client.create_volume("seed", access="multi")
    code, out, err = run(stack, "--json", "service", "create", "db", "busybox", "-v", "db:/var/lib/db")
    assert (code, err) == (EXIT_OK, "")
    assert json.loads(out)["spec"]["template"]["volumes"] == [
        {"volume": "db", "target": "/var/lib/db", "readOnly": False}
    ]
    code, _, err = run(stack, "service", "update", "db", "-v", "db:/data", "-v", "seed:/seed:ro")
    assert (code, err) == (EXIT_OK, "")
    mounts = stack.client.service("db").spec.template.volumes
    assert [(m.volume, m.target, m.read_only) for m in mounts] == [
        ("db", "/data", False),
        ("seed", "/seed", True),
    ]


def test_bad_input_and_missing_volumes(stack: Stack) -> None:
    code, _, err = run(stack, "volume", "create", "x", "--driver", "ceph")
    assert code == EXIT_USAGE and "driver: unknown volume driver 'ceph' (known: local)" in err
    code, _, err = run(stack, "volume", "create", "x", "--opt", "type")
    assert code == EXIT_USAGE and "--opt: expected KEY=VALUE, got 'type'" in err
    code, _, err = run(stack, "volume", "create", "x", "--access", "shared")
    assert code == EXIT_USAGE and "invalid choice: 'shared'" in err
    code, _, err = run(stack, "volume", "create", "-bad-")
    assert code == EXIT_USAGE
    stack.client.create_volume("taken")
    code, _, err = run(stack, "volume", "create", "taken")
    assert code == EXIT_CLUSTER_ERROR and "volume taken already exists" in err

    assert run(stack, "volume", "inspect", "nosuch")[::2] == (
        EXIT_NOT_FOUND,
        "orion: no volume named nosuch\n",
    )
    assert run(stack, "volume", "rm", "nosuch")[0] == EXIT_NOT_FOUND

    code, _, err = run(stack, "task", "submit", "busybox", "-v", "data")
    assert code == EXIT_USAGE and "volumes: 'data' is not NAME:/path[:ro]" in err
    code, _, err = run(stack, "task", "submit", "busybox", "-v", "taken:/d:rx")
    assert code == EXIT_USAGE and "the mode must be ro or rw" in err
    code, _, err = run(stack, "task", "submit", "busybox", "-v", "nosuch:/data")
    assert code == EXIT_USAGE and "volume nosuch does not exist (orion volume create nosuch)" in err
    code, _, err = run(stack, "service", "create", "web", "busybox", "-v", "taken:relative")
    assert code == EXIT_USAGE and "template.volumes[0].target: 'relative' must be an absolute path" in err
    assert stack.client.tasks() == [] and stack.client.services() == []
