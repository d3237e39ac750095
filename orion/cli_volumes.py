"""``orion volume create|ls|inspect|rm`` and the ``-v NAME:/path[:ro]`` option of ``orion task
submit`` and ``orion service create|update``: the volumes' part of the console script.

Everything is checked where the client checks it (orion/api/requests.py ``build_create_volume``,
``mount_fields``), so a bad volume or mount gets the same words as from Python or REST; the
console script turns the client's errors into its exit codes (2 invalid, 4 not found, 1 refused).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from orion.api.http import to_camel
from orion.api.protocol import VolumeInfo
from orion.client import Client, InvalidRequest
from orion.volumes.spec import ACCESS_MODES, DRIVERS, Volume

MOUNT_METAVAR = "NAME:/PATH[:ro]"
MOUNT_HELP = "mount cluster volume NAME at /PATH (repeat for several; ':ro' read only)"


def add_mount_option(parser: argparse.ArgumentParser, help: str = MOUNT_HELP) -> None:
    """``-v/--volume NAME:/path[:ro]``, repeatable; read as ``args.volume`` (a list)."""
    parser.add_argument("-v", "--volume", action="append", default=[], metavar=MOUNT_METAVAR, help=help)


def mounts(args: argparse.Namespace) -> list[str] | None:
    """The mounts ``-v`` gave, as the client takes them (None: none given)."""
    return list(args.volume) or None


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    volume = commands.add_parser("volume", help="create, list, inspect and remove volumes", parents=[common])
    actions = volume.add_subparsers(dest="volume_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create a cluster volume",
        description="Create a volume that outlives the tasks mounting it. A local volume lives on one "
        "node: --node, else the node its first task is placed on.",
        parents=[common],
    )
    create.add_argument("name")
    create.add_argument(
        "--driver", default="local", help=f"volume driver (default local; known: {', '.join(DRIVERS)})"
    )
    create.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="driver option, e.g. type=tmpfs, or type=none o=bind device=/srv/x (a host path "
        "allowed by the node's [volumes] host_paths)",
    )
    create.add_argument(
        "--node", default="", help="the node it lives on (default: where its first task goes)"
    )
    create.add_argument(
        "--access",
        choices=ACCESS_MODES,
        default="single-writer",
        help="single-writer (default): one running writer at a time; multi: any number",
    )
    actions.add_parser("ls", help="list volumes and the tasks that mount them", parents=[common])
    actions.add_parser("inspect", help="show a volume", parents=[common]).add_argument("name")
    actions.add_parser(
        "rm",
        help="remove a volume and its data (refused while a task mounts it)",
        parents=[common],
    ).add_argument("name")


def _options(values: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise InvalidRequest("invalid", f"--opt: expected KEY=VALUE, got {value!r}")
        options[key] = val
    return options


# ---------------------------------------------------------------------- output


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c) for c in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]
    )


def _where(volume: Volume) -> str:
    return volume.node_id or volume.spec.node or "-"


def format_volumes(volumes: list[VolumeInfo]) -> str:
    rows = [
        [
            info.volume.name,
            info.volume.spec.driver,
            info.volume.spec.access,
            _where(info.volume),
            info.volume.state,
            ",".join(info.users) or "-",
        ]
        for info in volumes
    ]
    return _table(["NAME", "DRIVER", "ACCESS", "NODE", "STATE", "USED BY"], rows)


def format_volume(info: VolumeInfo) -> str:
    volume = info.volume
    spec = volume.spec
    state = volume.state + (f": {volume.reason}" if volume.reason else "")
    node = _where(volume) if _where(volume) != "-" else "- (bound where its first task is placed)"
    lines = [
        f"Name:     {volume.name}",
        f"Driver:   {spec.driver}",
        f"Access:   {spec.access}",
        f"Node:     {node}",
        f"State:    {state}",
        f"Source:   {volume.source}",
    ]
    if spec.options:
        lines.append("Options:  " + ", ".join(f"{k}={v}" for k, v in spec.options.items()))
    lines.append("Used by:  " + (", ".join(info.users) or "-"))
    created = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(volume.created_at)) if volume.created_at else "-"
    )
    lines.append(f"Created:  {created}")
    return "\n".join(lines)


def _emit(result: Any, as_json: bool, human: str) -> None:
    print(json.dumps(to_camel(result), indent=2) if as_json else human)


# ---------------------------------------------------------------------- commands


def run(client: Client, args: argparse.Namespace) -> None:
    """Carry out ``orion volume ...``."""
    action = args.volume_command
    if action == "create":
        volume = client.create_volume(
            args.name, driver=args.driver, options=_options(args.opt), node=args.node, access=args.access
        )
        _emit(volume, args.json, f"{volume.name}  created ({volume.spec.access}, on {_where(volume)})")
    elif action == "ls":
        volumes = client.volumes()
        _emit(volumes, args.json, format_volumes(volumes))
    elif action == "inspect":
        info = client.volume(args.name)
        _emit(info, args.json, format_volume(info))
    elif action == "rm":
        volume = client.remove_volume(args.name)
        # A volume never made on a node goes at once; one that was, once its node deleted the data.
        said = "removing (its node deletes the data)" if volume.state == "removing" else "removed"
        _emit(volume, args.json, f"{volume.name}  {said}")
