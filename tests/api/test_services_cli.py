"""``orion service ...`` and ``orion apply -f`` in a subprocess, against the real API actor and
state machine (tests/api/service_stack.py)."""

from __future__ import annotations

import json
from pathlib import Path

from orion.cli import EXIT_CLUSTER_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from orion.fsm.commands import AssignTasks, ReportTaskState, ServiceStep
from orion.model import Task, TaskState
from orion.services.spec import slot_name
from tests.api.service_stack import Stack, stack_fixture  # noqa: F401 (the stack fixture)
from tests.api.test_cli import orion


def service(stack: Stack, *args: str) -> tuple[int, str, str]:
    done = orion(*args, endpoint=stack.endpoint)
    return done.returncode, done.stdout, done.stderr


def test_create_with_every_flag(stack: Stack) -> None:
    code, out, err = service(
        stack,
        "--json",
        "service",
        "create",
        "web",
        "nginx:1",
        "--replicas",
        "3",
        "-p",
        "8080:80/tcp",
        "--memory",
        "64MiB",
        "--cpu",
        "0.5",
        "--env",
        "MODE=prod",
        "--constraint",
        "zone=a",
        "--spread",
        "zone",
        "--health-http",
        "80:/health",
        "--health-interval",
        "2s",
        "--update-parallelism",
        "2",
        "--update-delay",
        "10s",
        "--update-order",
        "stop-first",
        "--update-failure-action",
        "pause",
        "--",
        "nginx",
        "-g",
        "daemon off;",
    )
    assert (code, err) == (EXIT_OK, "")
    created = json.loads(out)
    spec = created["spec"]
    assert (created["name"], created["version"], spec["replicas"]) == ("web", 1, 3)
    assert spec["ports"] == [{"published": 8080, "target": 80, "protocol": "tcp"}]
    template = spec["template"]
    assert (template["memory"], template["cpu"], template["env"]) == (64 << 20, 0.5, {"MODE": "prod"})
    assert template["command"] == ["nginx", "-g", "daemon off;"]
    assert template["health"]["kind"] == "http" and template["health"]["path"] == "/health"
    assert template["health"]["interval"] == 2.0
    assert spec["placement"]["constraints"] == {"zone": "a"} and spec["placement"]["spread"] == "zone"
    assert spec["update"] == {
        "parallelism": 2,
        "delay": 10.0,
        "order": "stop-first",
        "monitor": 5.0,
        "maxFailureRatio": 0.0,
        "failureAction": "pause",
    }
    assert stack.client.service("web").spec.template.health.port == 80  # type: ignore[union-attr]


def test_update_scale_rollback_pause_resume_inspect_rm(stack: Stack) -> None:
    assert service(stack, "service", "create", "web", "nginx:1", "--env", "A=1")[0] == EXIT_OK
    code, out, _ = service(stack, "service", "update", "web", "--image", "nginx:2", "--env", "B=2")
    assert (code, out.strip()) == (EXIT_OK, "web  updated (version 2)")
    updated = stack.client.service("web")
    assert updated.spec.template.env == {"A": "1", "B": "2"}  # --env adds to what is there
    assert service(stack, "service", "update", "web", "--image", "nginx:2")[1].strip() == "web  unchanged"
    assert service(stack, "service", "scale", "web", "4")[1].strip() == "web  scaled to 4"
    assert service(stack, "service", "pause", "web")[1].strip() == "web  paused"
    assert service(stack, "service", "resume", "web")[1].strip() == "web  updating"
    code, out, _ = service(stack, "service", "inspect", "web")
    assert code == EXIT_OK
    assert (
        "Image:       nginx:2" in out
        and "Previous:    v1 nginx:1" in out
        and "Status:      updating 1->2" in out
    )
    code, out, _ = service(stack, "service", "rollback", "web")
    assert (code, out.strip()) == (EXIT_OK, "web  rolling back to version 1")
    assert stack.client.service("web").spec.template.image == "nginx:1"
    code, out, _ = service(stack, "service", "ls")
    assert out.splitlines()[0].split() == ["NAME", "REPLICAS", "IMAGE", "PORTS", "VERSION", "UPDATE"]
    assert out.splitlines()[1].split()[:5] == ["web", "0/4", "nginx:1", "-", "6"]
    assert service(stack, "service", "rm", "web")[1].strip() == "web  removed"
    code, _, err = service(stack, "service", "inspect", "web")
    assert (code, err.strip()) == (EXIT_NOT_FOUND, "orion: no service named web")


def test_ps_lists_the_tasks_of_a_service(stack: Stack) -> None:
    web = stack.client.create_service("web", "nginx", replicas=1)
    task = Task(id="t1", name=slot_name("web", 1), image="nginx", service="web", slot=1, version=1)
    stack.raft.commit(ServiceStep(at=5.0, name="web", expected_version=web.version, add=[task])).get()
    stack.raft.commit(AssignTasks(at=6.0, assignments=[("t1", "n1")])).get()
    stack.raft.commit(ReportTaskState(at=7.0, task_id="t1", node_id="n1", state=TaskState.RUNNING)).get()
    code, out, _ = service(stack, "service", "ps", "web")
    assert code == EXIT_OK
    assert out.splitlines()[1].split()[:6] == ["web.1", "t1", "Running", "-", "n1", "1"]
    assert service(stack, "service", "ls")[1].splitlines()[1].split()[1] == "1/1"
    code, out, _ = service(stack, "--json", "service", "ps", "web")
    assert [t["name"] for t in json.loads(out)] == ["web.1"]


def test_bad_flags_and_refusals_are_clear(stack: Stack) -> None:
    code, _, err = service(stack, "service", "create", "web", "nginx", "--replicas", "-1")
    assert (code, err.strip()) == (EXIT_USAGE, "orion: invalid request: replicas: must be >= 0")
    code, _, err = service(stack, "service", "create", "web", "nginx", "--update-order", "sideways")
    assert code == EXIT_USAGE and "invalid choice: 'sideways'" in err
    code, _, err = service(stack, "service", "create", "web", "nginx", "-p", "8080")
    assert code == EXIT_USAGE and "ports: expected PUBLISHED:TARGET[/tcp]" in err
    code, _, err = service(stack, "service", "create", "web", "nginx", "--health-interval", "5s")
    assert code == EXIT_USAGE and "--health-interval: give a check too" in err
    code, _, err = service(
        stack, "service", "create", "web", "nginx", "--health-tcp", "80", "--health-cmd", "true"
    )
    assert code == EXIT_USAGE and "not allowed with argument" in err
    assert service(stack, "service", "create", "web", "nginx", "-p", "8080:80")[0] == EXIT_OK
    code, _, err = service(stack, "service", "create", "api", "api", "-p", "8080:81")
    assert code == EXIT_CLUSTER_ERROR
    assert "published port 8080/tcp is taken by service web" in err
    code, _, err = service(stack, "service", "rollback", "web")
    assert (code, err.strip()) == (
        EXIT_USAGE,
        "orion: invalid request: service web has no previous version to roll back to",
    )
    code, _, err = service(stack, "service", "scale", "nope", "2")
    assert (code, err.strip()) == (EXIT_NOT_FOUND, "orion: no service named nope")
    code, _, err = service(stack, "service", "ls", "--", "x")
    assert code == EXIT_USAGE and "only accepted by" in err


def test_apply_creates_updates_and_is_idempotent(stack: Stack, tmp_path: Path) -> None:
    manifest = tmp_path / "web.toml"
    manifest.write_text(
        '[service.web]\nreplicas = 2\nports = ["8080:80"]\n\n[service.web.template]\nimage = "nginx:1"\n'
        'memory = "64MiB"\n\n[service.worker.template]\nimage = "worker:1"\n'
    )
    code, out, _ = service(stack, "apply", "-f", str(manifest), "--dry-run")
    assert code == EXIT_OK
    assert "+ service web: create" in out and "+ replicas: 2" in out and "dry run: nothing changed" in out
    assert stack.client.services() == []
    code, out, _ = service(stack, "apply", "-f", str(manifest))
    assert code == EXIT_OK
    assert out.splitlines()[-1] == "applied: web created (version 1), worker created (version 1)"
    assert [s.name for s in stack.client.services()] == ["web", "worker"]
    code, out, _ = service(stack, "apply", "-f", str(manifest))
    assert (code, out.strip()) == (EXIT_OK, f"no changes: every service in {manifest} matches the cluster")
    manifest.write_text(manifest.read_text().replace('"nginx:1"', '"nginx:2"'))
    code, out, _ = service(stack, "apply", "-f", str(manifest), "--dry-run")
    assert (
        "~ service web: update (from version 1)" in out and "~ template.image: 'nginx:1' -> 'nginx:2'" in out
    )
    assert "  service worker: unchanged" in out
    assert stack.client.service("web").spec.template.image == "nginx:1"
    code, out, _ = service(stack, "--json", "apply", "-f", str(manifest))
    result = json.loads(out)
    assert result["dryRun"] is False
    assert [(s["service"], s["action"], s.get("version")) for s in result["services"]] == [
        ("web", "update", 2),
        ("worker", "unchanged", None),
    ]
    assert stack.client.service("web").update.state == "updating"


def test_apply_refuses_a_bad_file_naming_the_field(stack: Stack, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.toml"
    manifest.write_text('[service.web]\nreplicas = -1\n[service.web.template]\nimage = "x"\n')
    code, _, err = service(stack, "apply", "-f", str(manifest))
    assert (code, err.strip()) == (EXIT_USAGE, f"orion: {manifest}: service.web.replicas: must be >= 0")
    code, _, err = service(stack, "apply", "-f", str(tmp_path / "missing.toml"))
    assert code == EXIT_USAGE and "No such file" in err
