"""Ending a baseline's member processes (etcd, PySyncObj), each started in its own session."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def kill_process(process: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal one process we started and reap it, with SIGKILL if ``sig`` did not end it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
