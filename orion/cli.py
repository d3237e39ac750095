"""The ``orion`` console script: run a node, and talk to a cluster through orion.client."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

from orion import cli_ops, cli_services, cli_streams, cli_volumes
from orion.api.endpoints import EndpointMemory
from orion.api.http import to_camel
from orion.api.protocol import NodeInfo, RaftInfo, container_port_problem, normalize_port_bindings
from orion.client import (
    Client,
    Conflict,
    InvalidEndpoint,
    InvalidRequest,
    NotFound,
    OrionError,
    Timeout,
    Unauthorized,
    Unavailable,
    checked_endpoints,
    default_endpoints,
    shown_state,
)
from orion.model import Desired, Task
from orion.security import client_credentials
from orion.security.keys import KeyFileError
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
  1  the cluster refused the request (e.g. no quorum, a task id taken by another spec)
  2  usage error: bad arguments, endpoints or token file, or a request the cluster
     rejected as invalid
  3  unavailable: no endpoint answered, or the request timed out
  4  not found: no task, service or volume of that name
  5  unauthorized: the cluster wants a valid client token

environment:
  ORION_ENDPOINTS   comma separated API endpoints (host:port of each node's [ports] api);
                    default 127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303 (config/node*.toml)
  ORION_TOKEN       the client token of a secured cluster
  ORION_TOKEN_FILE  a file holding it (e.g. secrets/client.token from `orion keygen`)
  ORION_SERVER_KEY_FILE  the API's public key (secrets/cluster.key); default: cluster.key
                    beside the token file. ORION_SERVER_KEY: the key itself
  ORION_CLIENT_BUNDLE  a client bundle (`orion keygen --client-bundle FILE`): key, token, endpoints
  XDG_CACHE_HOME    the endpoint that answered last is kept in $XDG_CACHE_HOME/orion/endpoint
                    (default ~/.cache/orion/endpoint) and tried first by the next command
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


TASK_REF_HELP = "task id, a unique id prefix (4+ characters) or the task's name"


class UsageError(Exception):
    pass


# ---------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: a usage mistake is one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, e.g. 5 or 0.5, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def package_version() -> str:
    try:
        return metadata.version("orion")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from orion import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted both before and after the subcommand; the copies on the
    # subparsers use SUPPRESS so they do not overwrite a value given before the subcommand.
    common = _Parser(add_help=False)
    common.add_argument("--endpoints", default=argparse.SUPPRESS, help="comma separated host:port list")
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument(
        "--timeout", type=positive_seconds, default=argparse.SUPPRESS, help="seconds per attempt (default 5)"
    )
    common.add_argument(
        "--token-file", default=argparse.SUPPRESS, help="file holding the client token (ORION_TOKEN_FILE)"
    )
    common.add_argument("--server-key", default=argparse.SUPPRESS, help="the API's public key or its file")
    common.add_argument("--bundle", default=argparse.SUPPRESS, help="client bundle (ORION_CLIENT_BUNDLE)")

    parser = _Parser(
        prog="orion",
        description="Orion: a distributed container orchestrator.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--endpoints", default=None, help="comma separated host:port list (ORION_ENDPOINTS)")
    parser.add_argument("--json", action="store_true", default=False, help="machine-readable output")
    parser.add_argument(
        "--timeout", type=positive_seconds, default=5.0, help="seconds per attempt (default 5)"
    )
    parser.add_argument("--version", action="version", version=f"orion {package_version()}")
    parser.add_argument(
        "--token-file",
        default=None,
        help="file holding the client token (default: ORION_TOKEN, ORION_TOKEN_FILE)",
    )
    parser.add_argument(
        "--server-key",
        default=None,
        help="the API's CURVE public key, or a file holding it, e.g. secrets/cluster.key (default: "
        "ORION_SERVER_KEY, ORION_SERVER_KEY_FILE, the bundle's, cluster.key beside the token file)",
    )
    parser.add_argument(
        "--bundle",
        default=None,
        help="client bundle from `orion keygen --client-bundle` (ORION_CLIENT_BUNDLE)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    node = commands.add_parser(
        "node",
        help="run a node (--config FILE), or drain one, or set its eligibility",
        usage="orion node --config FILE [--bootstrap] [--join HOST:PORT]\n"
        "       orion node drain NODE [--deadline DURATION]\n"
        "       orion node eligibility NODE --enable|--disable",
        parents=[common],
    )
    node.add_argument("--config", help="node TOML file (runs the node)")
    node.add_argument("--bootstrap", action="store_true", default=None, help="start a new cluster")
    node.add_argument(
        "--join", action="append", default=None, metavar="HOST:PORT", help="gossip address to join"
    )

    hollow = commands.add_parser(
        "hollow", help="run N hollow nodes (real gossip and Raft, fake containers) for scale runs"
    )
    hollow.add_argument("--config", required=True, help="node TOML they share (key, join, timing)")
    hollow.add_argument("--count", type=int, required=True, help="how many hollow nodes")
    hollow.add_argument("--first", type=int, default=1, help="number of the first node (default 1)")
    hollow.add_argument("--address", default="127.1.0.1", help="address of node 1 (127.1.0.1)")
    hollow.add_argument("--port", type=int, default=7600, help="each node's Raft and gossip port")
    hollow.add_argument("--prefix", default="hollow", help="node ids are PREFIX1, PREFIX2, ...")
    hollow.add_argument("--stats", help="write the pool's figures here (JSON) every second")
    hollow.add_argument("--clock", help="share the pool clock's lag with the run's pools in this file")
    hollow.add_argument("--clock-slot", type=int, default=0, help="this pool's slot in --clock (0-63)")
    keygen = commands.add_parser("keygen", help="create a cluster key pair and a client token")
    keygen.add_argument("--dir", default="secrets", help="where to write them (default: ./secrets)")
    keygen.add_argument(
        "--client-bundle",
        metavar="FILE",
        help="instead: write a client bundle (the API public key and the first token of --dir) to FILE",
    )
    keygen.add_argument(
        "--bundle-endpoints", default="", metavar="HOST:PORT,...", help="API endpoints to put in the bundle"
    )

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
    cli_volumes.add_mount_option(submit)
    cli_ops.add_task_ls_options(task_commands.add_parser("ls", help="list tasks", parents=[common]))
    inspect = task_commands.add_parser(
        "inspect", help="show a task, why it is pending, its history", parents=[common]
    )
    inspect.add_argument("id", help=TASK_REF_HELP)
    stop = task_commands.add_parser("stop", help="stop a task", parents=[common])
    stop.add_argument("id", help=TASK_REF_HELP)
    remove = task_commands.add_parser(
        "rm",
        help="remove a stopped or failed task from the cluster state",
        description="Remove a Stopped or Failed task. An active task (Pending, Scheduled, Running) "
        "is refused (exit 2) unless --force, which stops and removes it.",
        parents=[common],
    )
    remove.add_argument("id", help=TASK_REF_HELP)
    remove.add_argument("-f", "--force", action="store_true", help="stop the task first if it is active")

    commands.add_parser("nodes", help="list cluster members", parents=[common])
    commands.add_parser("raft", help="Raft status of the answering node", parents=[common])
    cli_services.add_parsers(commands, common)  # orion service ..., orion apply -f
    cli_ops.add_node_parsers(node, common)  # orion node drain|eligibility
    cli_streams.add_parsers(commands, task_commands, common)  # orion task logs, orion events
    cli_volumes.add_parsers(commands, common)  # orion volume create|ls|inspect|rm
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
        number = container.partition("/")[0]
        if not host.isdigit() or not number.isdigit():
            raise UsageError(
                f"-p: expected [HOST:]CONTAINER[/PROTO] like 8080:80/tcp or 80 (any free host port), "
                f"got {value!r}"
            )
        problem = container_port_problem(container)  # the protocol's rule, as for the client and REST
        if problem is not None:
            raise UsageError(f"-p {value}: {problem}")
        ports[container] = host
    return normalize_port_bindings(ports)


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
            shown_state(t),
            t.node_id or "-",
            format_size(t.memory) if t.memory else "-",
            f"{t.cpu:g}" if t.cpu else "-",
            ",".join(format_ports(t)) or "-",
            _age(t.created_at),
        ]
        for t in sorted(tasks, key=lambda t: (t.created_at, t.id))
    ]
    return table(["ID", "NAME", "IMAGE", "STATE", "NODE", "MEMORY", "CPU", "PORTS", "AGE"], rows)


def format_state(t: Task) -> str:
    state = shown_state(t)
    if state != t.state:  # Stopping: stored as Stopped, its container not yet seen stopped
        return f"{state} (desired: {t.desired}; the container on {t.node_id} is not yet seen stopped)"
    return state + (f" (desired: {t.desired})" if t.desired != Desired.RUN else "")


def format_task(t: Task) -> str:
    lines = [
        f"ID:         {t.id}",
        f"Name:       {t.name}",
        f"Image:      {t.image}",
        f"State:      {format_state(t)}",
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
    if t.overlay_ip:  # the task's flat address on the overlay network (orion/network)
        lines.append(f"Overlay IP: {t.overlay_ip}")
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
        eligibility, drain = cli_ops.node_scheduling(n)
        rows.append(
            [n.id, n.address or "-", n.status, n.role, n.suffrage, memory, cpu, eligibility, drain, tags]
        )
    headers = ["ID", "ADDRESS", "STATUS", "ROLE", "SUFFRAGE", "MEMORY", "CPU", "ELIGIBILITY", "DRAIN", "TAGS"]
    if any(n.subnet for n in nodes):
        # Only with the overlay on ([network] overlay): a column of dashes otherwise.
        by_id = {n.id: n for n in nodes}
        headers.insert(2, "SUBNET")
        for row in rows:
            row.insert(2, by_id[row[0]].subnet or "-")
    return table(headers, rows)


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
    try:
        # The Python client's resolution, with the flags first (orion/security/client_credentials.py).
        credentials = client_credentials.resolve(
            token_file=args.token_file, server_key=args.server_key, bundle=args.bundle
        )
    except KeyFileError as exc:  # also ORION_TOKEN_FILE naming no file
        raise UsageError(str(exc)) from None
    if args.endpoints is not None:
        endpoints = checked_endpoints(args.endpoints, "--endpoints")
        if not endpoints:
            raise UsageError("--endpoints: expected host:port[,host:port...], got nothing")
    elif credentials.endpoints and not os.environ.get("ORION_ENDPOINTS", "").strip():
        endpoints = checked_endpoints(list(credentials.endpoints), "the client bundle's endpoints")
    else:
        endpoints = default_endpoints()
    client = Client(
        endpoints,
        timeout=args.timeout,
        token=credentials.token or "",
        server_key=credentials.server_key or "",
    )
    memory = EndpointMemory()
    first = memory.recall(endpoints)
    if first:
        client.prefer(first)
    try:
        with client:
            dispatch(client, args, command)
    finally:
        if len(endpoints) > 1 and client.last_answered and client.last_answered != first:
            memory.remember(endpoints, client.last_answered)
    return EXIT_OK


def dispatch(client: Client, args: argparse.Namespace, command: list[str] | None) -> None:
    if cli_streams.run(client, args):
        return
    if args.command == "volume":
        cli_volumes.run(client, args)
    elif args.command in ("service", "apply"):
        cli_services.run(client, args, command)
    elif args.command == "node":
        cli_ops.run_node_command(client, args)
    elif args.command == "nodes":
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
            volumes=cli_volumes.mounts(args),
        )
        emit(task, args.json, f"{task.id}  {shown_state(task)}" + (f": {task.reason}" if task.reason else ""))
    elif args.task_command == "ls":
        cli_ops.list_tasks(client, args, format_tasks)
    elif args.task_command == "inspect":
        task = client.task(args.id)
        emit(task, args.json, format_task(task))
    elif args.task_command == "stop":
        task = client.stop(args.id)
        emit(task, args.json, f"{task.id}  {shown_state(task)}")
    elif args.task_command == "rm":
        task = client.remove(args.id, force=args.force)
        emit(task, args.json, f"{task.id}  removed")


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


def run_client_bundle(directory: str, target: str, endpoints: str) -> int:
    """Write what a client needs (the API public key, a token, endpoints) to one private file."""
    from pathlib import Path

    from orion.security.keys import (
        TOKEN_NAME,
        ClientBundle,
        cluster_key_paths,
        load_public_key,
        read_tokens,
        write_client_bundle,
    )

    base = Path(directory)
    try:
        key_file = base / "api.key" if (base / "api.key").exists() else cluster_key_paths(base)[1]
        listed = checked_endpoints(endpoints, "--bundle-endpoints") if endpoints else []
        bundle = ClientBundle(
            load_public_key(key_file), read_tokens(base / TOKEN_NAME, unexpired=True)[0], tuple(listed)
        )
        write_client_bundle(Path(target), bundle)
    except (OSError, InvalidEndpoint) as exc:
        print(f"orion keygen: {exc}", file=sys.stderr)
        return EXIT_CLUSTER_ERROR
    print(
        f"wrote {target} (mode 0600: it holds a client token). On the client machine:\n\n"
        f"  export ORION_CLIENT_BUNDLE={target}"
    )
    return EXIT_OK


def said_once(exc: OrionError) -> str:
    """Say "no quorum: ..." rather than "no_quorum: no quorum: ...": the code only when the
    message does not already begin with it."""
    words = exc.code.replace("_", " ")
    return exc.message if exc.message.lower().startswith(words) else f"{words}: {exc.message}"


def reload_tokens_on_sighup() -> None:
    """SIGHUP makes a node re-read its client token file (orion/security/settings.py). The
    reload runs on a thread of its own: a signal handler interrupts the main thread wherever
    it is, possibly inside the logger, whose lock it must not take again."""
    from orion.security.settings import reload_all_tokens

    def on_hangup(_signum: int, _frame: Any) -> None:
        threading.Thread(target=reload_all_tokens, name="token-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hangup)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is the task's command, passed through untouched.
    command: list[str] | None = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    takes_command = getattr(args, "task_command", None) == "submit" or getattr(
        args, "service_command", None
    ) in ("create", "update")
    if command is not None and not takes_command:
        parser.error(
            "a command after '--' is only accepted by 'orion task submit' and 'orion service create|update'"
        )
    if args.command == "node" and args.node_command is None:
        if not args.config:
            parser.error("--config FILE is required to run a node (or: orion node drain|eligibility NODE)")
        from orion.process_memory import prepare_node_process

        prepare_node_process()  # before the node's imports: orion/process_memory.py
        from orion.node import run_node  # the node pulls in every subsystem: import only here

        reload_tokens_on_sighup()
        return run_node(args.config, args.bootstrap, args.join)
    if args.command == "hollow":
        from orion.hollow.pool import run_hollow  # scale runs only: import only here

        return run_hollow(
            args.config,
            args.count,
            first=args.first,
            base_address=args.address,
            port=args.port,
            prefix=args.prefix,
            stats_path=args.stats,
            clock_path=args.clock,
            clock_slot=args.clock_slot,
        )
    if args.command == "keygen":
        if args.client_bundle:
            return run_client_bundle(args.dir, args.client_bundle, args.bundle_endpoints)
        return run_keygen(args.dir)
    try:
        return run_client_command(args, command)
    except (UsageError, InvalidEndpoint, cli_services.ServiceUsageError) as exc:
        print(f"orion: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("orion: interrupted", file=sys.stderr)
        return 130
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
    except (Conflict, OrionError) as exc:
        print(f"orion: {said_once(exc)}", file=sys.stderr)
        return EXIT_CLUSTER_ERROR
    except BrokenPipeError:
        # Output piped into e.g. `head`: quiet exit, and no second error when stdout closes.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
