"""The data dir: private modes, and one node process at a time (real second processes)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from orion.raft.data_dir import LOCK_FILE, DataDirInUse, prepare_data_dir
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState

REPO = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent(
    """
    import sys
    from orion.raft.data_dir import prepare_data_dir

    lock = prepare_data_dir(sys.argv[1])
    print("held", flush=True)
    sys.stdin.readline()  # hold until the test says so
    lock.release()
    print("released", flush=True)
    """
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(
        lambda message: messages.append(str(message).strip()), format="{message}", level="WARNING"
    )
    try:
        yield messages
    finally:
        logger.remove(sink)


def start_holder(data_dir: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def stop(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait(timeout=30)


def test_a_new_data_dir_is_private_and_names_its_holder(tmp_path: Path, loose_umask: None) -> None:
    data_dir = tmp_path / "deep" / "node1"
    with prepare_data_dir(data_dir) as lock:
        assert lock.held and lock.path == data_dir
        assert mode_of(data_dir) == 0o700
        assert mode_of(data_dir / LOCK_FILE) == 0o600
        assert (data_dir / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert not lock.held


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    data_dir = tmp_path / "node1"
    child = start_holder(data_dir)
    try:
        with pytest.raises(DataDirInUse) as refused:
            prepare_data_dir(data_dir)
        assert str(refused.value) == f"data dir {data_dir} in use by pid {child.pid}"
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "released"
    finally:
        stop(child)
    with prepare_data_dir(data_dir) as lock:  # free again once the holder let go
        assert lock.held


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    data_dir = tmp_path / "node1"
    child = start_holder(data_dir)
    child.kill()
    child.wait(timeout=30)
    with prepare_data_dir(data_dir) as lock:
        assert (data_dir / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        assert lock.held


def test_the_same_process_cannot_hold_it_twice(tmp_path: Path) -> None:
    with (
        prepare_data_dir(tmp_path / "node1"),
        pytest.raises(DataDirInUse, match=f"in use by pid {os.getpid()}$"),
    ):
        prepare_data_dir(tmp_path / "node1")


def test_loose_dir_and_store_files_are_tightened_and_logged(
    tmp_path: Path, loose_umask: None, warnings: list[str]
) -> None:
    data_dir = tmp_path / "node1"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    store = DuckDBStore(data_dir / "raft.duckdb")  # as an older version left it
    store.load()
    store.close()
    os.chmod(data_dir / "raft.duckdb", 0o644)
    with prepare_data_dir(data_dir):
        assert mode_of(data_dir) == 0o700
        assert mode_of(data_dir / "raft.duckdb") == 0o600
    assert any("had mode 0755: tightened to 0700" in w and str(data_dir) in w for w in warnings), warnings
    assert any("raft.duckdb had mode 0644" in w for w in warnings), warnings


def test_files_made_while_held_are_private_and_the_umask_comes_back(
    tmp_path: Path, loose_umask: None
) -> None:
    data_dir = tmp_path / "node1"
    with prepare_data_dir(data_dir):
        store = DuckDBStore(data_dir / "raft.duckdb")
        store.load()
        store.checkpoint()  # DuckDB deletes the WAL here and makes a new one at the next write
        store.save(HardState(term=1, vote="n1"), [Entry(1, 1, 0, b"DB_PASSWORD=secret")])
        wal = data_dir / "raft.duckdb.wal"
        assert wal.exists() and mode_of(wal) == 0o600
        store.close()
        for path in data_dir.iterdir():
            assert mode_of(path) == 0o600, path
    assert os.umask(0o022) == 0o022


def test_a_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "node1").write_text("not a dir")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        prepare_data_dir(tmp_path / "node1")
