"""A task container's output, read from Docker in bounded chunks after a cursor.

Docker keeps each line with a nanosecond timestamp (``timestamps=True``). A cursor names the
last line delivered: its timestamp and how many lines carried that same timestamp
("<ns>:<count>"). The next read asks Docker for the lines since that second (Docker's
``since`` is whole seconds here: a float would be rounded) and skips, by the exact
timestamp, what was already delivered. So a cursor is a plain value: a reader may retry, come
back later, or be served by a restarted node, and never gets a line twice or misses one.

Each read stops after about ``max_bytes`` and closes Docker's stream, so a large output is
never held whole. Following is a long poll: with nothing new and the container running, look
again every ``POLL_S`` until the caller's wait ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from docker.models.containers import Container

POLL_S = 0.25


class CursorError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Position:
    """After the ``count``-th line stamped ``at_ns`` (0, 0: before everything)."""

    at_ns: int = 0
    count: int = 0

    def text(self) -> str:
        return f"{self.at_ns}:{self.count}" if self.at_ns else ""


def parse_cursor(cursor: str) -> Position:
    if not cursor:
        return Position()
    at, sep, count = cursor.partition(":")
    if not sep or not at.isdigit() or not count.isdigit():
        raise CursorError(f"cursor: expected <nanoseconds>:<count>, got {cursor!r}")
    return Position(int(at), int(count))


def stamp_ns(stamp: str) -> int:
    """Docker's RFC 3339 timestamp with up to nine fractional digits, as Unix nanoseconds."""
    head, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
    digits = (fraction + "000000000")[:9] if fraction else "0"
    return seconds * 1_000_000_000 + int(digits)


def split_stamp(line: bytes) -> tuple[int, bytes]:
    """(timestamp ns, the line without its stamp) of one ``timestamps=True`` line."""
    stamp, _, rest = line.partition(b" ")
    try:
        return stamp_ns(stamp.decode("ascii")), rest
    except (UnicodeDecodeError, ValueError):
        return 0, line  # not stamped (should not happen): delivered as is, after anything stamped


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    position: Position
    more: bool  # stopped at max_bytes: more lines are there already


def take_after(lines: Iterable[bytes], after: Position, max_bytes: int) -> Chunk:
    """The stamped ``lines`` past ``after``, up to about ``max_bytes`` (at least one line)."""
    out: list[bytes] = []
    size = 0
    skipped = 0
    last = after
    for line in lines:
        at, text = split_stamp(line)
        if at < after.at_ns:
            continue
        if at == after.at_ns and skipped < after.count:
            skipped += 1
            continue
        if out and size + len(text) > max_bytes:
            return Chunk(b"".join(out), last, True)
        out.append(text)
        size += len(text)
        last = Position(at, last.count + 1 if at == last.at_ns else 1)
    return Chunk(b"".join(out), last, False)


def _lines(chunks: Iterable[bytes]) -> Iterable[bytes]:
    """Docker's stream as whole lines (a frame may hold several, or end mid-line)."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for line in whole:
            yield line + b"\n"
    if rest:
        yield rest


@dataclass(frozen=True, slots=True)
class LogRead:
    text: str
    cursor: str
    running: bool


def read_logs(
    container: Container,
    cursor: str,
    *,
    tail: int | None = None,
    since: float | None = None,
    max_bytes: int = 64 * 1024,
    wait: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LogRead:
    """The next chunk of ``container``'s output after ``cursor`` (see the module's doc)."""
    after = parse_cursor(cursor)
    first = not after.at_ns
    deadline = clock() + wait
    if first and tail == 0:
        # Only what comes from now on: start the cursor here, before looking.
        after = Position(time.time_ns(), 0)
    elif first and since is not None and since > 0:
        after = Position(int(since * 1_000_000_000), 0)
    while True:
        # follow=False explicitly: the SDK follows whenever it streams unless told otherwise.
        kwargs: dict[str, object] = {"stdout": True, "stderr": True, "timestamps": True, "stream": True}
        kwargs["follow"] = False
        if after.at_ns:
            kwargs["since"] = max(1, after.at_ns // 1_000_000_000)
        if first and tail is not None:
            kwargs["tail"] = tail
        stream = container.logs(**kwargs)
        try:
            chunk = take_after(_lines(stream), after, max_bytes)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if chunk.data or chunk.more:
            container.reload()
            return LogRead(_decode(chunk.data), chunk.position.text(), container.status == "running")
        container.reload()
        running = container.status == "running"
        if not running or clock() >= deadline:
            return LogRead("", after.text(), running)
        sleep(min(POLL_S, max(0.0, deadline - clock())))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
