"""``orion task logs`` and ``orion events``: the client's streams on a terminal.

Logs are written as they come (flushed per chunk). Events are one line each: Raft index,
time, type, id, what changed; ``--json`` writes one JSON object per line instead (JSON lines,
for scripts and ``jq``). Both end on Ctrl-C, or when caught up unless following.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from orion.client import Client
from orion.fsm.events import EVENT_TYPES, Event


def add_parsers(commands: Any, task_commands: Any, common: argparse.ArgumentParser) -> None:
    logs = task_commands.add_parser(
        "logs",
        help="a task's container output, from whichever node runs it",
        parents=[common],
    )
    logs.add_argument("id", help="task id, unique id prefix (4+ characters) or name")
    logs.add_argument("-f", "--follow", action="store_true", help="go on while the container runs")
    logs.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    logs.add_argument(
        "--since", default=None, metavar="D", help="only lines from D ago (10m, 90s) or Unix seconds on"
    )
    events = commands.add_parser(
        "events",
        help="committed changes (tasks, nodes, services) with their Raft index",
        description="Every committed change as an event carrying its Raft index. Without --since: "
        "the events the answering node still keeps. Resume with --since LAST_INDEX_SEEN.",
        parents=[common],
    )
    events.add_argument("-f", "--follow", action="store_true", help="wait for new events (Ctrl-C ends)")
    events.add_argument(
        "--since", type=int, default=None, metavar="INDEX", help="events after this Raft index"
    )
    events.add_argument(
        "--type",
        action="append",
        default=[],
        choices=EVENT_TYPES,
        dest="types",
        help="only events of this type (repeatable)",
    )


def run(client: Client, args: argparse.Namespace) -> bool:
    """Run the command if it is one of these; False when it is not."""
    if args.command == "events":
        for event in client.events(args.since, args.types, follow=args.follow):
            print(event_json(event) if args.json else event_line(event), flush=True)
        return True
    if args.command == "task" and args.task_command == "logs":
        for text in client.logs(args.id, follow=args.follow, tail=args.tail, since=args.since):
            sys.stdout.write(text)
            sys.stdout.flush()
        return True
    return False


def event_json(event: Event) -> str:
    return json.dumps(msgspec.to_builtins(event), separators=(",", ":"))


def event_line(event: Event) -> str:
    at = datetime.fromtimestamp(event.at, UTC).strftime("%H:%M:%S.%f")[:-3]
    what = event.state if not event.previous else f"{event.previous} -> {event.state}"
    if event.action == "removed":
        what = f"removed ({event.previous})" if event.previous else "removed"
    details = " ".join(
        f"{key}={value!r}" if " " in value else f"{key}={value}" for key, value in event.changed.items()
    )
    return f"{event.index:>8}  {at}  {event.type:<7}  {event.id:<14}  {what}  {details}".rstrip()
