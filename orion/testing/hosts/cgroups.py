"""Each host of a bed is one cgroup subtree, so "the host" can be frozen and killed whole.

The node, dockerd, containerd and the shims join ``orion-beds/<bed>/hI/daemons`` (at exec,
through a shell that writes its own pid first); the host's dockerd puts its containers under
``--cgroup-parent /orion-beds/<bed>/hI/containers``. A container has its own network namespace, so
``ip netns pids`` does not list it: the cgroup does. Killing a host is freeze, SIGKILL every
pid of the subtree, thaw: nothing forks away in between.

cgroup v1 (the freezer hierarchy holds the membership) and v2 (the unified one) both work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
TOP = "orion-beds"


def unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def membership_root() -> Path:
    """The hierarchy whose subtree says which processes a host has."""
    return CGROUP_ROOT if unified() else CGROUP_ROOT / "freezer"


def bed_path(bed_id: str) -> str:
    return f"{TOP}/{bed_id}"


def host_path(bed_id: str, index: int) -> str:
    return f"{bed_path(bed_id)}/h{index}"


def task_parent(bed_id: str, index: int) -> str:
    """dockerd's --cgroup-parent for host ``index``."""
    return f"/{host_path(bed_id, index)}/containers"


def host_dir(bed_id: str, index: int) -> Path:
    return membership_root() / host_path(bed_id, index)


def make_host(bed_id: str, index: int) -> Path:
    """The host's daemons cgroup; the path of its cgroup.procs (for ``join_command``)."""
    daemons = host_dir(bed_id, index) / "daemons"
    for _ in range(10):  # another bed's teardown may rmdir the shared parent in between
        try:
            daemons.mkdir(parents=True, exist_ok=True)
            break
        except FileNotFoundError:
            continue
    return daemons / "cgroup.procs"


def join_command(procs: Path, argv: list[str]) -> list[str]:
    """``argv`` run as a member of the cgroup whose cgroup.procs is ``procs``."""
    return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(procs), *argv]


def pids(directory: Path) -> list[int]:
    """Every process in the subtree at ``directory``."""
    found: list[int] = []
    if not directory.exists():
        return found
    for procs in directory.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in procs.read_text().split()]
    return found


def _set_frozen(directory: Path, frozen: bool, timeout: float = 10.0) -> None:
    if unified():
        (directory / "cgroup.freeze").write_text("1" if frozen else "0")
        want = f"frozen {1 if frozen else 0}"
        done = lambda: want in (directory / "cgroup.events").read_text()  # noqa: E731
    else:
        state = "FROZEN" if frozen else "THAWED"
        (directory / "freezer.state").write_text(state)
        done = lambda: (directory / "freezer.state").read_text().strip() == state  # noqa: E731
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"cgroup {directory} not {'frozen' if frozen else 'thawed'} after {timeout}s")
        time.sleep(0.02)


def freeze(directory: Path) -> None:
    """Stop every process of the subtree (a paused VM: timers, sockets and all)."""
    _set_frozen(directory, True)


def thaw(directory: Path) -> None:
    _set_frozen(directory, False)


def kill_all(directory: Path, timeout: float = 20.0) -> list[int]:
    """SIGKILL every process of the subtree; return once none is left. The pids killed."""
    killed: list[int] = []
    if not directory.exists():
        return killed
    deadline = time.monotonic() + timeout
    while members := pids(directory):
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {members} of {directory} still alive after {timeout}s")
        freeze(directory)
        try:
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        finally:
            thaw(directory)
        time.sleep(0.05)
    return killed


def remove_bed(bed_id: str) -> list[str]:
    """rmdir the bed's cgroups in every hierarchy (deepest first); what could not go."""
    left: list[str] = []
    roots = [CGROUP_ROOT] if unified() else [p for p in CGROUP_ROOT.iterdir() if p.is_dir()]
    for root in roots:
        top = root / bed_path(bed_id)
        if not top.is_dir():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir(directory, left)
        _rmdir(top, left)
        with contextlib.suppress(OSError):  # the shared parent, when no other bed is there
            (root / TOP).rmdir()
    return left


def _rmdir(directory: Path, left: list[str]) -> None:
    deadline = time.monotonic() + 5.0
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:  # EBUSY while the kernel finishes with exited tasks
            if time.monotonic() > deadline:
                left.append(f"{directory}: {exc}")
                return
            time.sleep(0.05)
