"""The ``orion`` console script: run a node, and talk to a cluster through orion.client."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from orion.api.http import to_camel
from orion.api.protocol import NodeInfo, RaftInfo
from orion.client import (
    Client,
    InvalidRequest,
    NotFound,
    OrionError,
    Timeout,
    Unauthorized,
    Unavailable,
    default_endpoints,
    read_token_file,
)
from orion.model import Task
from orion.units import format_size

EXIT_OK = 0
EXIT_CLUSTER_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_NOT_FOUND = 4
EXIT_UNAUTHORIZED = 5

EPILOG = """\
exit codes:
  0  success
  1  the cluster refused the request (e.g. no quorum, internal error)
  2  usage error: bad arguments or a request the cluster rejected as invalid
  3  unavailable: no endpoint answered, or the request timed out
  4  not found: no task with that id
  5  unauthorized: the cluster wants a valid client token

environment:
  ORION_ENDPOINTS   comma separated API endpoints, e.g. 127.0.0.1:7300,127.0.0.1:7301
  ORION_TOKEN       the client token of a secured cluster
  ORION_TOKEN_FILE  a file holding it (e.g. secrets/client.token from `orion keygen`)
"""
KEYGEN_HELP = """wrote:
  {secret}  the cluster key pair: copy it to every node, keep it private (mode 0600)
  {public}  the cluster public key (not secret)
  {token}  the client token (mode 0600)

Every node's TOML uses them by default (paths relative to where the node starts):

  [security]
  cluster_key = "{secret}"
  token_file = "{token}"

Clients (orion CLI, orion.client, tools/loadgen.py) read the token from the environment:

  export ORION_TOKEN_FILE={token}
"""


class UsageError(Exception):
    pass


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted both before and after the subcommand; the copies on the
    # subparsers use SUPPRESS so they do not overwrite a value given before the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoints", default=argparse.SUPPRESS, help="comma separated host:port list")
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds per attempt (default 5)"
    )
    common.add_argument(
        "--token-file", default=argparse.SUPPRESS, help="file holding the client token (ORION_TOKEN_FILE)"
    )

    parser = argparse.ArgumentParser(
        prog="orion",
        description="Orion: a distributed container orchestrator.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--endpoints", default=None, help="comma separated host:port list (ORION_ENDPOINTS)")
    parser.add_argument("--json", action="store_true", default=False, help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per attempt (default 5)")
    parser.add_argument(
        "--token-file",
        default=None,
        help="file holding the client token (default: ORION_TOKEN, ORION_TOKEN_FILE)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    node = commands.add_parser("node", help="run a node", parents=[common])
    node.add_argument("--config", required=True, help="node TOML file")
    node.add_argument("--bootstrap", action="store_true", default=None, help="start a new cluster")
    node.add_argument(
        "--join", action="append", default=None, metavar="HOST:PORT", help="gossip address to join"
    )

    keygen = commands.add_parser("keygen", help="create a cluster key pair and a client token")
    keygen.add_argument("--dir", default="secrets", help="where to write them (default: ./secrets)")

    task = commands.add_parser("task", help="submit, list, inspect, stop and remove tasks", parents=[common])
    task_commands = task.add_subparsers(dest="task_command", required=True, metavar="ACTION")
    submit = task_commands.add_parser(
        "submit",
        help="submit a task",
        parents=[common],
        usage="orion task submit IMAGE [options] [-- COMMAND ...]",
    )
    submit.add_argument("image")
    submit.add_argument("--name")
    submit.add_argument("--id", help="task id (default: a fresh uuid; reuse it to retry safely)")
    submit.add_argument("--memory", default="0", help='bytes or e.g. "256MiB"')
    submit.add_argument("--cpu", type=float, default=0.0, help="cores, e.g. 0.5")
    submit.add_argument("--disk", default="0", help='bytes or e.g. "1GiB"')
    submit.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[HOST:]CONTAINER[/PROTO]",
        help="e.g. 8080:80/tcp; 0:80 or 80 for any free host port",
    )
    submit.add_argument(
        "--restart",
        choices=["on-failure", "always", "no"],
        help="when to restart the container (default: the node's [docker] restart)",
    )
    submit.add_argument(
        "--restart-attempts", type=int, metavar="N", help="restarts allowed within the interval"
    )
    submit.add_argument(
        "--restart-interval", metavar="DURATION", help='only restarts this recent count, e.g. "5m"'
    )
    submit.add_argument(
        "--restart-delay", metavar="DURATION", help='first wait, doubled per restart, e.g. "1s"'
    )
    submit.add_argument(
        "--restart-mode", choices=["fail", "delay"], help="attempts used: Failed, or wait for the interval"
    )
    submit.add_argument("--selector", action="append", default=[], metavar="KEY=VALUE", help="node selector")
    submit.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    task_commands.add_parser("ls", help="list tasks", parents=[common])
    inspect = task_commands.add_parser(
        "inspect", help="show a task, why it is pending, its history", parents=[common]
    )
    inspect.add_argument("id")
    stop = task_commands.add_parser("stop", help="stop a task", parents=[common])
    stop.add_argument("id")
    remove = task_commands.add_parser(
        "rm",
        help="remove a stopped or failed task from the cluster state",
        description="Remove a Stopped or Failed task. An active task (Pending, Scheduled, Running) "
        "is refused (exit 2) unless --force, which stops and removes it.",
        parents=[common],
    )
    remove.add_argument("id")
    remove.add_argument("-f", "--force", action="store_true", help="stop the task first if it is active")

    commands.add_parser("nodes", help="list cluster members", parents=[common])
    commands.add_parser("raft", help="Raft status of the answering node", parents=[common])
    return parser


def parse_pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{option}: expected KEY=VALUE, got {value!r}")
        pairs[key] = val
    return pairs


def parse_publish(values: list[str]) -> dict[str, str]:
    """``-p 8080:80/tcp`` (Docker's order: host first) -> {"80/tcp": "8080"}; ``-p 0:80`` or
    ``-p 80`` (no host port, as in Docker) asks the cluster for any free host port ("0")."""
    ports: dict[str, str] = {}
    for value in values:
        host, sep, container = value.rpartition(":")
        if not sep:
            host = "0"
        number, _, protocol = container.partition("/")
        if not host.isdigit() or not number.isdigit() or protocol not in ("", "tcp", "udp", "sctp"):
            raise UsageError(
                f"-p: expected [HOST:]CONTAINER[/PROTO] like 8080:80/tcp or 80 (any free host port), "
                f"got {value!r}"
            )
        ports[container if "/" in container else f"{container}/tcp"] = host
    return ports


# ---------------------------------------------------------------------- output


def _age(ts: float) -> str:
    if not ts:
        return "-"
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def restart_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The task's own restart policy from --restart*; None leaves the node's default."""
    given = {
        "policy": args.restart,
        "attempts": args.restart_attempts,
        "interval": args.restart_interval,
        "delay": args.restart_delay,
        "mode": args.restart_mode,
    }
    return {key: value for key, value in given.items() if value is not None} or None


def format_restart(t: Task) -> str:
    """The task's own restart settings; what it leaves out is the node's default."""
    spec = t.restart
    if spec is None:
        return "node default"
    parts = [spec.policy or "node default"]
    if spec.attempts is not None:
        parts.append(f"{spec.attempts} attempt(s)")
    if spec.interval is not None:
        parts.append(f"in {spec.interval:g}s")
    if spec.delay is not None:
        parts.append(f"delay {spec.delay:g}s")
    if spec.mode:
        parts.append(f"then {spec.mode}")
    return ", ".join(parts)


def format_ports(t: Task) -> list[str]:
    """As ``docker ps`` shows them: "127.0.0.1:8080->80/tcp" once the cluster assigned the
    host port, "any->80/tcp" while a dynamic one waits for a node."""
    shown = []
    for container, host in t.port_bindings.items():
        given = t.host_ports.get(container)
        if given:
            shown.append(f"{t.host_ip + ':' if t.host_ip else ''}{given}->{container}")
        else:
            shown.append(f"{host if host.strip('0') else 'any'}->{container}")
    return shown


def format_tasks(tasks: list[Task]) -> str:
    rows = [
        [
            t.id[:12],
            t.name,
            t.image,
            t.state,
            t.node_id or "-",
            format_size(t.memory) if t.memory else "-",
            f"{t.cpu:g}" if t.cpu else "-",
            ",".join(format_ports(t)) or "-",
            _age(t.created_at),
        ]
        for t in sorted(tasks, key=lambda t: (t.created_at, t.id))
    ]
    return table(["ID", "NAME", "IMAGE", "STATE", "NODE", "MEMORY", "CPU", "PORTS", "AGE"], rows)


def format_task(t: Task) -> str:
    lines = [
        f"ID:         {t.id}",
        f"Name:       {t.name}",
        f"Image:      {t.image}",
        f"State:      {t.state}" + (f" (desired: {t.desired})" if t.desired != "run" else ""),
    ]
    if t.reason:
        lines.append(f"Reason:     {t.reason}")
    lines += [
        f"Node:       {t.node_id or '-'}",
        f"Memory:     {format_size(t.memory) if t.memory else '-'}",
        f"CPU:        {t.cpu:g}",
        f"Disk:       {format_size(t.disk) if t.disk else '-'}",
    ]
    if t.port_bindings:
        lines.append("Ports:      " + ", ".join(format_ports(t)))
    if t.node_selectors:
        lines.append("Selectors:  " + ", ".join(f"{k}={v}" for k, v in t.node_selectors.items()))
    if t.command:
        lines.append("Command:    " + " ".join(t.command))
    if t.env:
        lines.append("Env:        " + ", ".join(sorted(t.env)))  # names only: values may be secrets
    lines.append(
        f"Restarts:   {t.restarts}" + (f" (last exit code {t.exit_code})" if t.exit_code is not None else "")
    )
    lines.append(f"Restart:    {format_restart(t)}")
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.created_at)) if t.created_at else "-"
    lines.append(f"Created:    {created}")
    if t.history:
        lines.append("History:")
        for event in t.history:
            at = time.strftime("%H:%M:%S", time.localtime(event.at))
            where = f" on {event.node_id}" if event.node_id else ""
            why = f": {event.reason}" if event.reason else ""
            lines.append(f"  {at}  {event.state}{where}{why}")
    return "\n".join(lines)


def format_nodes(nodes: list[NodeInfo]) -> str:
    rows = []
    for n in sorted(nodes, key=lambda n: n.id):
        meta = n.meta
        memory = f"{format_size(n.allocated_memory)}/{format_size(meta.memory_total)}" if meta else "-"
        cpu = f"{n.allocated_cpu:g}/{meta.cpu_total:g}" if meta else "-"
        tags = ",".join(f"{k}={v}" for k, v in meta.tags.items()) if meta and meta.tags else "-"
        rows.append([n.id, n.address or "-", n.status, n.role, n.suffrage, memory, cpu, tags])
    return table(["ID", "ADDRESS", "STATUS", "ROLE", "SUFFRAGE", "MEMORY", "CPU", "TAGS"], rows)


def format_raft(r: RaftInfo) -> str:
    return "\n".join(
        [
            f"Node:       {r.node_id}",
            f"Role:       {r.role}",
            f"Term:       {r.term}",
            f"Leader:     {r.leader_id or '-'}",
            f"Commit:     {r.commit_index}",
            f"Applied:    {r.applied_index}",
            f"Last index: {r.last_index}",
            f"Voters:     {', '.join(r.voters) or '-'}",
            f"Non-voters: {', '.join(r.non_voters) or '-'}",
        ]
    )


def emit(result: Any, as_json: bool, human: str) -> None:
    print(json.dumps(to_camel(result), indent=2) if as_json else human)


# ---------------------------------------------------------------------- commands


def run_client_command(args: argparse.Namespace, command: list[str] | None) -> int:
    endpoints = (
        [e.strip() for e in args.endpoints.split(",") if e.strip()] if args.endpoints else default_endpoints()
    )
    try:
        token = read_token_file(args.token_file) if args.token_file else None
    except OSError as exc:
        raise UsageError(str(exc)) from None
    with Client(endpoints, timeout=args.timeout, token=token) as client:
        if args.command == "nodes":
            nodes = client.nodes()
            emit(nodes, args.json, format_nodes(nodes))
        elif args.command == "raft":
            status = client.raft()
            emit(status, args.json, format_raft(status))
        elif args.task_command == "submit":
            task = client.submit(
                args.image,
                name=args.name,
                id=args.id,
                memory=args.memory,
                cpu=args.cpu,
                disk=args.disk,
                ports=parse_publish(args.publish),
                node_selectors=parse_pairs(args.selector, "--selector"),
                env=parse_pairs(args.env, "--env"),
                command=command,
                restart=restart_options(args),
            )
            emit(task, args.json, f"{task.id}  {task.state}" + (f": {task.reason}" if task.reason else ""))
        elif args.task_command == "ls":
            tasks = client.tasks()
            emit(tasks, args.json, format_tasks(tasks))
        elif args.task_command == "inspect":
            task = client.task(args.id)
            emit(task, args.json, format_task(task))
        elif args.task_command == "stop":
            task = client.stop(args.id)
            emit(task, args.json, f"{task.id}  {task.state}")
        elif args.task_command == "rm":
            task = client.remove(args.id, force=args.force)
            emit(task, args.json, f"{task.id}  removed")
    return EXIT_OK


def run_keygen(directory: str) -> int:
    from pathlib import Path

    from orion.security.keys import TOKEN_NAME, KeyFileError, write_cluster_key, write_token

    base = Path(directory)
    try:
        token_path = base / TOKEN_NAME
        if token_path.exists():
            raise KeyFileError(f"{token_path} exists: refusing to overwrite a token (remove it first)")
        secret, public = write_cluster_key(base)
        write_token(token_path)
    except OSError as exc:
        print(f"orion keygen: {exc}", file=sys.stderr)
        return EXIT_CLUSTER_ERROR
    print(KEYGEN_HELP.format(secret=secret, public=public, token=token_path))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is the task's command, passed through untouched.
    command: list[str] | None = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if command is not None and getattr(args, "task_command", None) != "submit":
        parser.error("a command after '--' is only accepted by 'orion task submit'")
    if args.command == "node":
        from orion.node import run_node  # the node pulls in every subsystem: import only here

        return run_node(args.config, args.bootstrap, args.join)
    if args.command == "keygen":
        return run_keygen(args.dir)
    try:
        return run_client_command(args, command)
    except UsageError as exc:
        print(f"orion: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidRequest as exc:
        print(f"orion: invalid request: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except NotFound as exc:
        print(f"orion: {exc.message}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except Unauthorized as exc:
        print(f"orion: {exc.message}", file=sys.stderr)
        return EXIT_UNAUTHORIZED
    except (Unavailable, Timeout) as exc:
        print(f"orion: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OrionError as exc:
        print(f"orion: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_CLUSTER_ERROR
    except BrokenPipeError:
        # Output piped into e.g. `head`: quiet exit, and no second error when stdout closes.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
