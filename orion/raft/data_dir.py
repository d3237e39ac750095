"""A node's data dir: private, and used by one node process at a time.

``prepare_data_dir(path)`` makes the directory (mode 0700; an existing looser one is
tightened, with a warning), takes an exclusive ``flock`` on ``node.lock`` inside it for as
long as the returned ``DataDirLock`` is held, and writes the holder's pid there, so a second
process on the same dir stops with one line: "data dir {path} in use by pid {N}". The kernel
drops the lock when the process dies, so a crashed node leaves nothing to clean up.

Files: the store's files (``raft.duckdb``, its WAL, which DuckDB deletes and creates again at
every checkpoint) are created by DuckDB, so their mode comes from the process umask; the
lock sets the umask to 0077 while it is held (restored at ``release``), so every file the
node creates afterwards is 0600, whatever the umask it was started with. Store files left
looser by an older version are tightened here too. The umask is process-wide: call this at
start, before threads that create files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from pathlib import Path
from types import TracebackType

from loguru import logger

LOCK_FILE = "node.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077
# A process that has just taken the lock writes its pid right after; wait that long for it.
_PID_PATIENCE = 1.0


class DataDirInUse(OSError):
    """Another live process holds the data dir."""


class DataDirLock:
    """The exclusive hold on a data dir; ``release`` (or process exit) lets it go."""

    def __init__(self, path: Path, fd: int, previous_umask: int) -> None:
        self.path = path
        self.lock_path = path / LOCK_FILE
        self._fd = fd
        self._previous_umask = previous_umask

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd < 0:
            return
        # The file stays: removing it would let a process that opened it just before take a
        # lock on an inode nobody else can find.
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = -1
        os.umask(self._previous_umask)

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DataDirLock({str(self.path)!r}, held={self.held})"


def prepare_data_dir(path: str | os.PathLike[str]) -> DataDirLock:
    """Create or tighten the data dir and hold it; raise ``DataDirInUse`` when another
    process holds it (``OSError`` for anything else: not a directory, not ours)."""
    directory = Path(path)
    _make_private_dir(directory)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder_pid(fd)
        os.close(fd)
        who = f"pid {holder}" if holder is not None else "another process"
        raise DataDirInUse(f"data dir {directory} in use by {who}") from None
    except BaseException:
        os.close(fd)
        raise
    os.fchmod(fd, FILE_MODE)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    previous_umask = os.umask(PRIVATE_UMASK)
    _tighten_files(directory)
    return DataDirLock(directory, fd, previous_umask)


def _make_private_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=DIR_MODE, parents=True)
        os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask
        return
    if not directory.is_dir():
        raise NotADirectoryError(f"data dir {directory} exists and is not a directory")
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode != DIR_MODE:
        os.chmod(directory, DIR_MODE)
        logger.warning("data dir {} had mode {:04o}: tightened to {:04o}", directory, mode, DIR_MODE)


def _tighten_files(directory: Path) -> None:
    for entry in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):  # DuckDB may remove its WAL meanwhile
            info = entry.lstat()
            if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~FILE_MODE:
                os.chmod(entry, FILE_MODE)
                logger.warning(
                    "{} had mode {:04o}: tightened to {:04o}", entry, stat.S_IMODE(info.st_mode), FILE_MODE
                )


def _holder_pid(fd: int) -> int | None:
    """The pid the holder wrote, waiting briefly when it has only just taken the lock."""
    deadline = time.monotonic() + _PID_PATIENCE
    while True:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return int(text)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)
