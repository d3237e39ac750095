"""``orion service ...`` and ``orion apply -f FILE``: the services' part of the console script.

Flags map to the keywords of ``orion.api.requests.service_fields`` (the client's and REST's
builder), so a bad value is refused with the same words everywhere. ``service update`` reads
the service, applies the flags given (``--env`` and ``--constraint`` add to what is there)
and sends it with the version read; the client retries if the service changed meanwhile.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

import msgspec

from orion.api.http import to_camel
from orion.api.manifest import CREATE, UNCHANGED, ManifestError, format_plan, load_manifest, plan
from orion.api.protocol import RequestError
from orion.api.requests import service_fields
from orion.cli_volumes import add_mount_option, mounts
from orion.client import Client, InvalidRequest, shown_state
from orion.model import Desired, Task, TaskState
from orion.services.spec import Service, ServiceSpec
from orion.units import format_size


class ServiceUsageError(Exception):
    """A flag that cannot be read (the console script exits 2 with this message)."""


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    service = commands.add_parser(
        "service", help="create, update, scale, roll back and inspect services", parents=[common]
    )
    actions = service.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create a service",
        parents=[common],
        usage="orion service create NAME IMAGE [options] [-- COMMAND ...]",
    )
    create.add_argument("name")
    create.add_argument("image")
    _spec_flags(create)
    update = actions.add_parser(
        "update",
        help="change a service (a new image or template rolls it)",
        parents=[common],
        usage="orion service update NAME [--image IMAGE] [options] [-- COMMAND ...]",
    )
    update.add_argument("name")
    update.add_argument("--image")
    _spec_flags(update)
    scale = actions.add_parser("scale", help="set the number of replicas", parents=[common])
    scale.add_argument("name")
    scale.add_argument("replicas", type=int)
    for action, text in (
        ("rollback", "go back to the template before the current one"),
        ("inspect", "show a service: spec, versions, update status"),
        ("ps", "list a service's tasks"),
        ("rm", "remove a service and stop its tasks"),
        ("pause", "pause the update (or rollback) in progress"),
        ("resume", "resume a paused update (or rollback)"),
    ):
        actions.add_parser(action, help=text, parents=[common]).add_argument("name")
    actions.add_parser("ls", help="list services", parents=[common])

    apply = commands.add_parser(
        "apply",
        help="create or update services to match a TOML file",
        description="Create or update the services of FILE ([service.NAME] tables) to match it. "
        "Services not in the file are left alone.",
        parents=[common],
    )
    apply.add_argument(
        "-f", "--file", required=True, metavar="FILE", help="TOML file of [service.NAME] tables"
    )
    apply.add_argument("--dry-run", action="store_true", help="print the changes, make none")


def _spec_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", type=int, metavar="N")
    parser.add_argument(
        "-p", "--publish", action="append", default=[], metavar="PUBLISHED:TARGET[/tcp]", help="e.g. 8080:80"
    )
    parser.add_argument("--memory", help='bytes or e.g. "256MiB"')
    parser.add_argument("--cpu", type=float, help="cores, e.g. 0.5")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--constraint", action="append", default=[], metavar="KEY=VALUE", help="node tag required"
    )
    parser.add_argument("--spread", metavar="TAG", help="spread replicas over the values of this node tag")
    add_mount_option(
        parser,
        "mount cluster volume NAME at /PATH (repeatable; ':ro' read only); on "
        "update, the mounts given replace the template's",
    )
    checks = parser.add_mutually_exclusive_group()
    checks.add_argument("--health-http", metavar="PORT:PATH", help="e.g. 80:/health")
    checks.add_argument("--health-tcp", metavar="PORT", type=int)
    checks.add_argument(
        "--health-cmd", metavar="CMD", help="run in the container with sh -c (exit 0 = healthy)"
    )
    parser.add_argument("--health-interval", metavar="DURATION", help='e.g. "5s"')
    parser.add_argument("--update-parallelism", type=int, metavar="N", help="tasks replaced at once (0: all)")
    parser.add_argument("--update-delay", metavar="DURATION", help='between batches, e.g. "10s"')
    parser.add_argument("--update-order", choices=["start-first", "stop-first"])
    parser.add_argument("--update-failure-action", choices=["rollback", "pause", "continue"])


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ServiceUsageError(f"{option}: expected KEY=VALUE, got {value!r}")
        pairs[key] = val
    return pairs


def _health(args: argparse.Namespace, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The health check the flags ask for, over the current one (None: unchanged)."""
    check: dict[str, Any] | None = None
    if args.health_http is not None:
        port, sep, path = args.health_http.partition(":")
        if not port.isdigit():
            raise ServiceUsageError(
                f"--health-http: expected PORT:PATH like 80:/health, got {args.health_http!r}"
            )
        check = {"kind": "http", "port": int(port), "path": path if sep and path else "/"}
    elif args.health_tcp is not None:
        check = {"kind": "tcp", "port": args.health_tcp}
    elif args.health_cmd is not None:
        check = {"kind": "exec", "command": ["sh", "-c", args.health_cmd]}
    if args.health_interval is not None:
        base = check or current
        if base is None:
            raise ServiceUsageError(
                "--health-interval: give a check too (--health-http, --health-tcp or --health-cmd)"
            )
        check = {**base, "interval": args.health_interval}
    return check


def spec_from_flags(
    args: argparse.Namespace, base: ServiceSpec | None, command: list[str] | None
) -> ServiceSpec:
    """``base`` (None: a new service named ``args.name``) with the flags applied."""
    current = msgspec.to_builtins(base) if base is not None else None
    template = current["template"] if current else {}
    placement = current["placement"] if current else {}
    update: dict[str, Any] = {}
    for flag, key in (
        ("update_parallelism", "parallelism"),
        ("update_delay", "delay"),
        ("update_order", "order"),
        ("update_failure_action", "failure_action"),
    ):
        if getattr(args, flag) is not None:
            update[key] = getattr(args, flag)
    changes: dict[str, Any] = {
        "image": getattr(args, "image", None),
        "replicas": args.replicas,
        "ports": list(args.publish) or None,
        "memory": args.memory,
        "cpu": args.cpu,
        "env": {**template.get("env", {}), **_pairs(args.env, "--env")} if args.env else None,
        "constraints": (
            {**placement.get("constraints", {}), **_pairs(args.constraint, "--constraint")}
            if args.constraint
            else None
        ),
        "spread": args.spread,
        "volumes": mounts(args),
        "health": _health(args, template.get("health")),
        "update": update or None,
        "command": command,
    }
    if base is None:
        changes["name"] = args.name
    try:
        return service_fields(base, **changes)
    except RequestError as exc:
        raise InvalidRequest("invalid", str(exc)) from None


# ---------------------------------------------------------------------- output


def _available(task: Task) -> bool:
    healthy = task.health_check is None or task.health == "healthy"
    return task.state == TaskState.RUNNING and healthy and not task.drain_at and task.desired == Desired.RUN


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def _ports(service: Service) -> str:
    return ",".join(f"{p.published}->{p.target}/{p.protocol}" for p in service.spec.ports) or "-"


def _update(service: Service) -> str:
    status = service.update
    if status.state == "completed" and not status.to_version:
        return "-"
    return f"{status.state} {status.from_version}->{status.to_version}"


def format_services(services: list[Service], tasks: list[Task]) -> str:
    available: dict[str, int] = {}
    for task in tasks:
        if task.service and _available(task):
            available[task.service] = available.get(task.service, 0) + 1
    rows = [
        [
            s.name,
            f"{available.get(s.name, 0)}/{s.spec.replicas}",
            s.spec.template.image,
            _ports(s),
            str(s.version),
            _update(s),
        ]
        for s in services
    ]
    return _table(["NAME", "REPLICAS", "IMAGE", "PORTS", "VERSION", "UPDATE"], rows)


def _age(ts: float) -> str:
    seconds = max(0, int(time.time() - ts)) if ts else 0
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s" if ts else "-"


def format_service_tasks(tasks: list[Task]) -> str:
    rows = [
        [
            t.name,
            t.id[:12],
            shown_state(t) + (" (draining)" if t.drain_at and t.state == TaskState.RUNNING else ""),
            t.health or "-",
            t.node_id or "-",
            str(t.version),
            _age(t.updated_at),
            t.reason,
        ]
        for t in sorted(tasks, key=lambda t: (t.slot, t.created_at))
    ]
    return _table(["NAME", "ID", "STATE", "HEALTH", "NODE", "VERSION", "SINCE", "REASON"], rows)


def format_service(service: Service) -> str:
    spec = service.spec
    template = spec.template
    lines = [
        f"Name:        {service.name}",
        f"Version:     {service.version} (template of version {service.template_version})",
        f"Replicas:    {spec.replicas}",
        f"Image:       {template.image}",
    ]
    if template.command:
        lines.append(f"Command:     {shlex.join(template.command)}")
    if template.memory or template.cpu:
        lines.append(f"Resources:   memory {format_size(template.memory)}, cpu {template.cpu:g}")
    if template.env:
        lines.append("Env:         " + ", ".join(f"{k}={v}" for k, v in template.env.items()))
    lines.append(f"Ports:       {_ports(service)}")
    if template.health is not None:
        check = template.health
        target = f"port {check.port} {check.path}" if check.kind == "http" else f"port {check.port}"
        what = shlex.join(check.command) if check.kind == "exec" else target
        lines.append(f"Health:      {check.kind} {what} every {check.interval:g}s, {check.retries} retries")
    placement = spec.placement
    if placement.spread or placement.constraints or placement.max_per_node:
        parts = [f"spread over {placement.spread or 'nodes'}"]
        parts += [f"{k}={v}" for k, v in placement.constraints.items()]
        if placement.max_per_node:
            parts.append(f"at most {placement.max_per_node} per node")
        lines.append("Placement:   " + ", ".join(parts))
    policy = spec.update
    lines.append(
        f"Update:      {policy.parallelism or 'all'} at a time, {policy.order}, delay {policy.delay:g}s, "
        f"on failure {policy.failure_action}"
    )
    status = service.update
    shown = _update(service)
    if shown != "-":
        lines.append(f"Status:      {shown}" + (f": {status.message}" if status.message else ""))
    if service.previous:
        lines.append(
            "Previous:    " + ", ".join(f"v{v.version} {v.template.image}" for v in service.previous)
        )
    return "\n".join(lines)


def _emit(result: Any, as_json: bool, human: str) -> None:
    print(json.dumps(to_camel(result), indent=2) if as_json else human)


# ---------------------------------------------------------------------- commands


def run(client: Client, args: argparse.Namespace, command: list[str] | None) -> None:
    """Carry out ``orion service ...`` or ``orion apply``."""
    if args.command == "apply":
        run_apply(client, args)
        return
    action = args.service_command
    if action == "create":
        service = client.create_service(args.name, spec=spec_from_flags(args, None, command))
        _emit(service, args.json, f"{service.name}  created (version {service.version})")
    elif action == "update":
        before = client.service(args.name)
        service = client.update_service(args.name, change=lambda spec: spec_from_flags(args, spec, command))
        said = "unchanged" if service.version == before.version else f"updated (version {service.version})"
        _emit(service, args.json, f"{service.name}  {said}")
    elif action == "scale":
        service = client.scale_service(args.name, args.replicas)
        _emit(service, args.json, f"{service.name}  scaled to {service.spec.replicas}")
    elif action == "rollback":
        service = client.rollback_service(args.name)
        _emit(service, args.json, f"{service.name}  rolling back to version {service.template_version}")
    elif action in ("pause", "resume"):
        service = client.pause_service(args.name) if action == "pause" else client.resume_service(args.name)
        _emit(service, args.json, f"{service.name}  {service.update.state}")
    elif action == "rm":
        service = client.remove_service(args.name)
        _emit(service, args.json, f"{service.name}  removed")
    elif action == "ls":
        services = client.services()
        _emit(services, args.json, format_services(services, client.tasks() if services else []))
    elif action == "ps":
        tasks = client.service_tasks(args.name)
        _emit(tasks, args.json, format_service_tasks(tasks))
    elif action == "inspect":
        service = client.service(args.name)
        _emit(service, args.json, format_service(service))


def run_apply(client: Client, args: argparse.Namespace) -> None:
    path = Path(args.file)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ServiceUsageError(f"-f {args.file}: {exc.strerror or exc}") from None
    try:
        specs = load_manifest(text, str(path))
    except ManifestError as exc:
        raise ServiceUsageError(str(exc)) from None
    changes = plan(client.services(), specs)
    results = []
    for change in changes:
        entry: dict[str, Any] = {
            "service": change.name,
            "action": change.action,
            "changes": change.differences,
        }
        if not args.dry_run and change.action != UNCHANGED:
            if change.action == CREATE:
                service = client.create_service(change.name, spec=change.spec)
            else:
                service = client.update_service(change.name, spec=change.spec)
            entry["version"] = service.version
        results.append(entry)
    if args.json:
        print(json.dumps({"dryRun": bool(args.dry_run), "services": results}, indent=2))
        return
    if all(change.action == UNCHANGED for change in changes):
        print(f"no changes: every service in {path} matches the cluster")
        return
    print(format_plan(changes))
    if args.dry_run:
        print("dry run: nothing changed")
    else:
        done = [r for r in results if r["action"] != UNCHANGED]
        print(
            "applied: " + ", ".join(f"{r['service']} {r['action']}d (version {r['version']})" for r in done)
        )
