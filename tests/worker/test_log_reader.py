"""Log cursors (orion/worker/log_reader.py): Docker's stamped lines after a position, bounded in
bytes, with lines sharing a timestamp counted so none is given twice or skipped."""

from __future__ import annotations

import pytest

from orion.worker.log_reader import CursorError, Position, parse_cursor, split_stamp, stamp_ns, take_after

T0 = "2026-12-01T10:00:00.000000001Z"
T1 = "2026-12-01T10:00:00.5Z"
T2 = "2026-12-01T10:00:01.123456789Z"


def line(stamp: str, text: str) -> bytes:
    return f"{stamp} {text}\n".encode()


LINES = [line(T0, "a"), line(T1, "b"), line(T1, "c"), line(T2, "d")]


def test_stamps_parse_to_exact_nanoseconds() -> None:
    assert stamp_ns(T0) % 1_000_000_000 == 1
    assert stamp_ns(T1) - stamp_ns(T0) == 499_999_999
    assert stamp_ns(T2) % 1_000_000_000 == 123_456_789
    assert split_stamp(line(T2, "d")) == (stamp_ns(T2), b"d\n")


def test_chunks_resume_exactly_after_the_cursor() -> None:
    got: list[bytes] = []
    position = Position()
    while True:
        chunk = take_after(LINES, position, max_bytes=1)  # one line per chunk at most
        if not chunk.data:
            break
        got.append(chunk.data)
        position = parse_cursor(chunk.position.text())  # the cursor survives as text
    assert got == [b"a\n", b"b\n", b"c\n", b"d\n"]


def test_lines_sharing_a_timestamp_are_counted() -> None:
    chunk = take_after(LINES, Position(), max_bytes=4)
    assert chunk.data == b"a\nb\n" and chunk.more
    assert chunk.position == Position(stamp_ns(T1), 1)
    rest = take_after(LINES, chunk.position, max_bytes=1 << 20)
    assert rest.data == b"c\nd\n" and not rest.more


def test_a_bad_cursor_names_the_field() -> None:
    with pytest.raises(CursorError, match="cursor: expected"):
        parse_cursor("12")
    assert parse_cursor("") == Position()
