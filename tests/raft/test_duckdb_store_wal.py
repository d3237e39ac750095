"""A damaged DuckDB WAL: a torn last write is recovered; damage followed by acknowledged writes
is refused, including the kinds DuckDB itself replays silently up to the damage.

A child process makes the writes and exits without closing (as ``kill -9`` would), so they
stay in the WAL; it prints the WAL's size after each acknowledged save, which is where the
next save's first frame starts (a frame is: 8-byte length, 8-byte checksum, bytes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orion.raft.duckdb_store import WHAT_TO_DO, DuckDBStore
from orion.raft.store_integrity import WriteHint
from orion.raft.types import Entry, HardState, StoreCorruptError

REPO = Path(__file__).resolve().parents[2]
SAVES = 20

WRITER = textwrap.dedent(
    """
    import os, sys
    from orion.raft.duckdb_store import DuckDBStore
    from orion.raft.types import Entry, HardState

    path = sys.argv[1]
    store = DuckDBStore(path)
    store.load()
    store.save(HardState(term=1, vote="n1"), [])
    store.checkpoint()  # the WAL holds only what follows
    for i in range(1, int(sys.argv[2]) + 1):
        store.save(HardState(term=1, vote="n1", commit=i - 1), [Entry(i, 1, 0, b"e%d" % i * 40)])
        print(os.path.getsize(path + ".wal"), flush=True)
    os._exit(0)  # no close: no checkpoint, the writes stay in the WAL
    """
)


def write_in_child(db: Path) -> list[int]:
    """Make ``SAVES`` acknowledged saves (entry i in save i); the WAL size after each."""
    result = subprocess.run(
        [sys.executable, "-c", WRITER, str(db), str(SAVES)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=True,
    )
    return [int(line) for line in result.stdout.split()]


def wal_of(db: Path) -> Path:
    return db.with_name(db.name + ".wal")


def load_entries(db: Path) -> list[Entry]:
    store = DuckDBStore(db)
    try:
        return store.load().entries
    finally:
        store.close()


def refused(db: Path, match: str) -> str:
    with pytest.raises(StoreCorruptError, match=match) as caught:
        store = DuckDBStore(db)  # DuckDB itself may refuse here, at open
        try:
            store.load()
        finally:
            store.close()
    message = str(caught.value)
    assert str(db) in message and WHAT_TO_DO in message, message
    return message


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, list[int]]:
    db = tmp_path / "raft.duckdb"
    return db, write_in_child(db)


def damage(path: Path, offset: int, new: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(new)


def test_intact_wal_replays_every_write(written: tuple[Path, list[int]]) -> None:
    db, _ = written
    assert [e.index for e in load_entries(db)] == list(range(1, SAVES + 1))


def test_torn_last_write_is_dropped_and_the_store_opens(written: tuple[Path, list[int]]) -> None:
    db, sizes = written
    # A crash in the middle of the last save: half its bytes reached the WAL, and it was
    # never acknowledged, so the hint still holds the save before it.
    os.truncate(wal_of(db), sizes[-2] + (sizes[-1] - sizes[-2]) // 2)
    hint = WriteHint(db.with_name(db.name + ".seq"))
    hint.record(hint.read() - 1)
    hint.close()
    assert [e.index for e in load_entries(db)] == list(range(1, SAVES))
    # Writing again continues the log where the torn write began.
    store = DuckDBStore(db)
    store.load()
    store.save(HardState(term=2, vote="n1"), [Entry(SAVES, 2, 0, b"again")])
    store.close()
    assert load_entries(db)[-1] == Entry(SAVES, 2, 0, b"again")


def test_bytes_changed_inside_a_wal_entry_are_refused(written: tuple[Path, list[int]]) -> None:
    db, sizes = written
    damage(wal_of(db), sizes[9] + 16 + 4, b"\xde\xad\xbe\xef")  # inside save 11's first entry
    refused(db, "Corrupt WAL file")


def test_a_length_pointing_past_the_end_is_refused(written: tuple[Path, list[int]]) -> None:
    """DuckDB takes it for a torn write and silently drops saves 11-20; the hint tells."""
    db, sizes = written
    wal = wal_of(db)
    size_before = wal.stat().st_size
    damage(wal, sizes[9], (1 << 40).to_bytes(8, "little"))
    message = refused(db, "acknowledged")
    assert str(wal) in message
    # Refusing changed nothing: the damaged WAL is still there for a post-mortem, and a
    # second start refuses again.
    assert wal.stat().st_size == size_before
    refused(db, "acknowledged")


def test_a_damaged_wal_header_is_refused(written: tuple[Path, list[int]]) -> None:
    """DuckDB drops the whole WAL when its unframed header does not parse."""
    db, _ = written
    damage(wal_of(db), 5, b"\xff\xff\xff\xff")
    refused(db, "acknowledged")


def test_a_deleted_wal_is_refused(written: tuple[Path, list[int]]) -> None:
    db, _ = written
    wal_of(db).unlink()
    refused(db, "acknowledged")


def test_a_missing_or_unreadable_hint_only_means_less_checking(written: tuple[Path, list[int]]) -> None:
    db, _ = written
    db.with_name(db.name + ".seq").write_bytes(b"garbage")
    assert [e.index for e in load_entries(db)] == list(range(1, SAVES + 1))
    db.with_name(db.name + ".seq").unlink()
    assert [e.index for e in load_entries(db)] == list(range(1, SAVES + 1))
