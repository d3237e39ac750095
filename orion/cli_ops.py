"""Day-2 commands of the ``orion`` CLI: ``task ls`` filters and ``--watch``, ``node drain`` and
``node eligibility``, and how ``orion nodes`` shows a node's eligibility and drain.

Task ids, id prefixes and names are resolved by the node (orion/api/lookup.py), so every
command that takes a task id (``inspect``, ``stop``, ``rm``) passes what the user typed as is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from orion.api.http import to_camel
from orion.api.protocol import NodeInfo
from orion.client import Client, Timeout, Unavailable
from orion.units import parse_duration

T = TypeVar("T")
CLEAR_SCREEN = "\x1b[H\x1b[2J"
DEFAULT_WATCH_INTERVAL = 1.0


def _seconds(text: str) -> float:
    try:
        value = parse_duration(text, "interval")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def _rounds(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a count >= 1, got {text!r}")
    return int(text)


def add_task_ls_options(ls: argparse.ArgumentParser) -> None:
    ls.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="only tasks in this state (Pending, Scheduled, Running, Stopped, Failed; any case); "
        "repeat or separate with commas",
    )
    ls.add_argument("--node", help="only tasks on this node")
    ls.add_argument("--service", help="only tasks of this service")
    ls.add_argument("-w", "--watch", action="store_true", help="redraw when the list changes, until Ctrl-C")
    ls.add_argument(
        "--interval",
        type=_seconds,
        default=DEFAULT_WATCH_INTERVAL,
        help="with --watch: how often to look, e.g. 2 or 500ms (default 1s)",
    )
    ls.add_argument(
        "--rounds", type=_rounds, default=None, help=argparse.SUPPRESS
    )  # tests: stop after N looks


def add_node_parsers(node: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """``orion node drain|eligibility`` beside ``orion node --config FILE`` (which runs a node)."""
    actions = node.add_subparsers(dest="node_command", metavar="ACTION")
    drain = actions.add_parser(
        "drain",
        help="move a node's tasks elsewhere and take no new ones (maintenance)",
        description="Take NODE out of service: it takes no new placements; its one-off tasks are placed "
        "elsewhere at once; each service task gets its replacement elsewhere first and is drained once "
        "that one is available, at the pace of the service's update parallelism. With --deadline, "
        "whatever is still on the node then is stopped. `orion node eligibility NODE --enable` "
        "puts it back in service.",
        parents=[common],
    )
    drain.add_argument("node_id", metavar="NODE")
    drain.add_argument(
        "--deadline", metavar="DURATION", help='stop what is left after this long, e.g. "10m" (default: none)'
    )
    eligibility = actions.add_parser(
        "eligibility",
        help="stop or resume new placements on a node",
        description="--disable: NODE keeps its tasks but takes no new ones. --enable: it takes new "
        "ones again (and a drain of it ends).",
        parents=[common],
    )
    eligibility.add_argument("node_id", metavar="NODE")
    switch = eligibility.add_mutually_exclusive_group(required=True)
    switch.add_argument("--enable", dest="eligible", action="store_true", default=None)
    switch.add_argument("--disable", dest="eligible", action="store_false")


# ---------------------------------------------------------------------- task ls


def list_tasks(
    client: Client,
    args: argparse.Namespace,
    format_tasks: Callable[[list[Any]], str],
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    out = out or sys.stdout

    def fetch() -> list[Any]:
        return client.tasks(state=args.state or None, node=args.node, service=args.service)

    def render(tasks: list[Any]) -> str:
        return (
            json.dumps(to_camel(tasks), indent=None if args.watch else 2)
            if args.json
            else format_tasks(tasks)
        )

    if not args.watch:
        print(render(fetch()), file=out)
        return
    header = f"Every {args.interval:g}s: orion task ls{_filters(args)} (Ctrl-C to stop)"
    tty = out.isatty() and not args.json
    watch(fetch, render, out, args.interval, args.rounds, sleep=sleep, header=header if tty else None)


def _filters(args: argparse.Namespace) -> str:
    parts = [f" --state {','.join(args.state)}"] if args.state else []
    parts += [f" --node {args.node}"] if args.node else []
    parts += [f" --service {args.service}"] if args.service else []
    return "".join(parts)


def watch(
    fetch: Callable[[], T],
    render: Callable[[T], str],
    out: TextIO,
    interval: float,
    rounds: int | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    header: str | None = None,
) -> int:
    """Look every ``interval`` seconds and draw what ``fetch`` returns whenever it changed
    (``header`` given: on a cleared screen, under it; else appended, for pipes and --json).
    Until Ctrl-C, or ``rounds`` looks. A round without an answer (a leader election) says so
    and goes on. Returns how many times it drew."""
    last: object = object()
    drawn = 0
    done = 0
    try:
        while rounds is None or done < rounds:
            try:
                value: object = fetch()
                text = None
            except (Unavailable, Timeout) as exc:
                value, text = ("unavailable", exc.message), f"(no answer: {exc.message}; trying again)"
            if value != last:
                if text is None:
                    text = render(value)  # type: ignore[arg-type]
                if header is not None:
                    text = f"{CLEAR_SCREEN}{header}  {time.strftime('%H:%M:%S')}\n\n{text}"
                print(text, file=out, flush=True)
                last = value
                drawn += 1
            done += 1
            if rounds is None or done < rounds:
                sleep(interval)
    except KeyboardInterrupt:
        pass  # the way a watch ends
    return drawn


# ---------------------------------------------------------------------- nodes


def run_node_command(client: Client, args: argparse.Namespace) -> None:
    if args.node_command == "drain":
        node = client.drain_node(args.node_id, args.deadline)
        message = f"{node.id}: draining, {describe_drain(node)}"
    else:
        node = client.set_node_eligibility(args.node_id, args.eligible)
        message = f"{node.id}: {'eligible' if node.eligible else 'ineligible'} for new tasks"
    print(json.dumps(to_camel(node), indent=2) if args.json else message)


def describe_drain(node: NodeInfo, now: float | None = None) -> str:
    """ "-", "drained", or "3 task(s) left, deadline in 4m"."""
    drain = node.drain
    if drain is None:
        return "-"
    if not drain.remaining:
        return "drained"
    text = f"{drain.remaining} task(s) left"
    if drain.deadline is not None:
        left = drain.deadline - (time.time() if now is None else now)
        text += f", deadline in {_span(left)}" if left > 0 else ", deadline passed"
    return text


def _span(seconds: float) -> str:
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{max(whole, 1)}s"


def node_scheduling(node: NodeInfo) -> tuple[str, str]:
    """The ELIGIBILITY and DRAIN columns of ``orion nodes``."""
    drain = describe_drain(node)
    if node.drain is not None and drain != "drained":
        drain = f"draining ({drain})"
    return ("eligible" if node.eligible else "ineligible"), drain
