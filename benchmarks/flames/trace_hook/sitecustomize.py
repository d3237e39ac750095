"""Stage timestamps of the write path, for ``benchmarks/flames/write_trace.py``.

Python imports ``sitecustomize`` at start from the first directory of ``sys.path`` holding one,
so putting this directory first on ``PYTHONPATH`` loads it into every process that inherits
the environment: the nodes of a ``LocalCluster`` and the client. With ``ORION_WRITE_TRACE``
naming a directory, it wraps the functions below and each process appends ``<ns> <stage>``
lines to ``<dir>/<pid>.txt`` (CLOCK_MONOTONIC, comparable across processes) every 2 s and at
exit. Without the variable it does nothing. A benchmark aid only: nothing in Orion imports it.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

_DIR = os.environ.get("ORION_WRITE_TRACE", "")
_events: list[tuple[int, str]] = []
_lock = threading.Lock()


def _dump() -> None:
    with _lock:
        taken = _events[:]
        del _events[: len(taken)]
    if taken:
        with open(os.path.join(_DIR, f"{os.getpid()}.txt"), "a") as out:
            out.writelines(f"{at} {stage}\n" for at, stage in taken)


def _flush_every_2s() -> None:
    while True:
        time.sleep(2.0)
        _dump()


def _wrap(cls: type, name: str, enter: str | None, leave: str | None = None, label: Any = None) -> None:
    """Record ``enter`` (or ``label(args)``, None to skip) when ``cls.name`` is called and
    ``leave`` when it returns."""
    original = getattr(cls, name)
    clock = time.perf_counter_ns

    @functools.wraps(original)
    def traced(*args: Any, **kwargs: Any) -> Any:
        stage = label(args) if label is not None else enter
        if stage is None:
            return original(*args, **kwargs)
        _events.append((clock(), stage))
        try:
            return original(*args, **kwargs)
        finally:
            if leave is not None:
                _events.append((clock(), leave))

    setattr(cls, name, traced)


def _raft_message(args: tuple[Any, ...]) -> str | None:
    message = args[1]
    kind = type(message).__name__
    if kind == "_Frame":
        # The transport thread's arrival stamp (time.monotonic: the same clock).
        _events.append((int(message.at * 1e9), "transport.handed_frame"))
        return "raft.rx_frame"
    if kind == "Tick":
        return None
    return "raft.rx_" + kind.lower()


def _install() -> None:
    from orion import client
    from orion.actors import raft_actor
    from orion.api import server
    from orion.raft import duckdb_store, shell
    from orion.transport import peer

    wraps: list[tuple[type, str, str | None, str | None, Callable[..., Any] | None]] = [
        (raft_actor.RaftActor, "on_receive", None, "raft.rx_done", _raft_message),
        (raft_actor.RaftActor, "flush_frames", "raft.flush_frames", None, None),
        (raft_actor.RaftActor, "apply", "raft.apply", None, None),
        (shell.RaftShell, "_send_all", "shell.send_all", None, None),
        (duckdb_store.DuckDBStore, "save", "store.save", "store.saved", None),
        (peer.PeerTransport, "_write", "transport.write", None, None),
        (peer.PeerTransport, "_accept", "transport.accept", None, None),
        (server.ApiServer, "_serve", "api.serve", None, None),
        (server.ApiServer, "_post", "api.post", None, None),
        (server.ApiServer, "_send", "api.send", None, None),
        (client.Client, "_call", "client.call", "client.done", None),
    ]
    for cls, name, enter, leave, label in wraps:
        _wrap(cls, name, enter, leave, label)


if _DIR:
    threading.Thread(target=_flush_every_2s, name="write-trace", daemon=True).start()
    atexit.register(_dump)
    _install()
