"""Runs one node's HAProxy in master-worker mode, with its files in the node's data dir.

``start`` writes the configuration, checks it (``haproxy -c``), starts the master and waits for
the worker's stats socket to answer. ``reload`` writes a new configuration and asks the master
to load it (its ``reload`` command): the new worker takes the listening sockets over from the
old one (``expose-fd listeners``), which finishes its established connections. ``stop`` soft-
stops it (SIGUSR1: stop listening, finish connections) and kills it after a deadline.

HAProxy is started with the parent-death signal set to SIGTERM, so it does not outlive the
thread that started it (a node killed with SIGKILL takes its ingress along); a master left by
an earlier life of the node (its pid file names our configuration) is stopped before a start.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from orion.ingress.runtime_api import MasterApi, RuntimeApi, RuntimeApiError

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1
# HAProxy refuses longer unix socket paths (sun_path is 108 bytes; it binds "<path>.<pid>.tmp" first).
_UNIX_PATH_MAX = 97


class IngressError(RuntimeError):
    """HAProxy is missing, refused its configuration, or did not come up."""


def find_haproxy(binary: str) -> str | None:
    """The path of ``binary`` ("haproxy" or a path); Debian installs it in /usr/sbin, which is
    not on every user's PATH."""
    found = shutil.which(binary)
    if found is None and os.sep not in binary:
        found = shutil.which(binary, path="/usr/local/sbin:/usr/sbin:/sbin")
    return found


def _socket_dir(run_dir: Path) -> Path:
    """Where the unix sockets go: the run dir, unless its path is too long for one."""
    if len(str(run_dir / "master.sock")) <= _UNIX_PATH_MAX:
        return run_dir
    # A private directory (mode 700): the admin socket controls where traffic goes.
    return Path(tempfile.mkdtemp(prefix="orion-ingress-"))


def _parent_death_signal() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class HAProxySupervisor:
    def __init__(self, binary: str, run_dir: Path, *, start_timeout: float = START_TIMEOUT_S) -> None:
        self.binary = binary
        self.run_dir = run_dir
        self.start_timeout = start_timeout
        self.config_path = run_dir / "haproxy.cfg"
        self.pid_path = run_dir / "haproxy.pid"
        self.log_path = run_dir / "haproxy.log"
        self._socket_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ paths
    def _sockets(self) -> Path:
        if self._socket_dir is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._socket_dir = _socket_dir(self.run_dir)
        return self._socket_dir

    @property
    def admin_socket(self) -> Path:
        return self._sockets() / "admin.sock"

    @property
    def master_socket(self) -> Path:
        return self._sockets() / "master.sock"

    @property
    def runtime(self) -> RuntimeApi:
        return RuntimeApi(self.admin_socket)

    @property
    def master(self) -> MasterApi:
        return MasterApi(self.master_socket)

    # ------------------------------------------------------------------ state
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_status(self) -> int | None:
        """The master's exit status if it was started and has ended, else None."""
        return self._process.poll() if self._process is not None else None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ actions
    def start(self, config: str) -> None:
        """Start HAProxy with ``config`` (the stats socket must be ``admin_socket``) and wait
        until its worker answers. Raises IngressError, leaving nothing running."""
        binary = find_haproxy(self.binary)
        if binary is None:
            raise IngressError(f"[ingress] haproxy: {self.binary!r} not found (install Debian's haproxy)")
        if self.running():
            raise IngressError("HAProxy is already running")
        self._stop_leftover()
        self._write_config(binary, config)
        for stale in (self.admin_socket, self.master_socket):
            stale.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    *(binary, "-W", "-S", f"{self.master_socket},mode,600"),
                    *("-f", str(self.config_path), "-p", str(self.pid_path)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_parent_death_signal,  # only prctl in the child: nothing that takes a lock
            )
        try:
            self._wait_until(lambda: self._answers() is not None, "answer")
        except IngressError:
            self.stop()
            raise
        logger.info("ingress: HAProxy started (pid {}), configuration {}", self.pid, self.config_path)

    def reload(self, config: str) -> None:
        """Load ``config`` in a new worker without closing a listener or a connection."""
        binary = find_haproxy(self.binary)
        if binary is None or not self.running():
            raise IngressError("HAProxy is not running")
        self._write_config(binary, config)
        old_worker = self.runtime.worker_pid()
        self.master.reload()

        def reloaded() -> bool:
            # The master executes itself again before starting the new worker: wait for both,
            # so that the next reload finds it listening.
            worker = self._answers()
            return worker is not None and worker != old_worker and self._master_answers()

        self._wait_until(reloaded, "reload")
        logger.info("ingress: HAProxy reloaded (worker {} replaced {})", self._answers(), old_worker)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Soft stop (no new connections, established ones finish), then SIGTERM, then SIGKILL."""
        process, self._process = self._process, None
        for sig, wait in ((signal.SIGUSR1, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            if process is None or process.poll() is not None:
                break
            process.send_signal(sig)
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if process is not None:
            self.pid_path.unlink(missing_ok=True)
        if self._socket_dir is not None and self._socket_dir != self.run_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    # ------------------------------------------------------------------ helpers
    def _answers(self) -> int | None:
        """The pid of the worker answering on the stats socket, or None."""
        try:
            return self.runtime.worker_pid()
        except RuntimeApiError:
            return None

    def _master_answers(self) -> bool:
        try:
            self.master.processes()
        except RuntimeApiError:
            return False
        return True

    def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not condition():
            if not self.running():
                status = self.exit_status()
                raise IngressError(f"HAProxy exited (status {status}) before its {what}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise IngressError(
                    f"HAProxy did not {what} within {self.start_timeout:g}s: {self.log_tail()}"
                )
            time.sleep(0.02)

    def _write_config(self, binary: str, config: str) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        candidate = self.config_path.with_suffix(".cfg.new")
        candidate.write_text(config)
        check = subprocess.run(
            [binary, "-c", "-f", str(candidate)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            said = (check.stderr + check.stdout).splitlines()
            alerts = [line.split(" : ", 1)[-1] for line in said if "ALERT" in line] or said[-3:]
            raise IngressError(f"HAProxy refused its configuration {candidate}: {' / '.join(alerts)}")
        candidate.replace(self.config_path)

    def _stop_leftover(self) -> None:
        """Stop a master an earlier life of this node left running (it holds our ports)."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if str(self.config_path).encode() not in cmdline:
            return
        logger.warning("ingress: stopping HAProxy {} left by an earlier run of this node", pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
