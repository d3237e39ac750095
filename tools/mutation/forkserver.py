"""A fork server for mutants: one process imports pytest and the package under test once;
each mutant runs in a forked child that swaps the mutated functions' code objects into the
already imported module and runs the selected tests. This saves the interpreter start and
every import per mutant (most of the time of a killed mutant).

The runner still writes the mutant to disk while the child runs, so tests that start another
Python process see it too. A mutant whose code cannot be swapped in place (a function whose
closure changed shape) is reported as ``unpatchable``: the runner then uses a fresh process.

Start: ``python -m mutation.forkserver PACKAGE TEST_PATH...``. Protocol (one JSON object per
line): the runner writes ``{"module", "path", "source",
"tests", "timeout"}`` to stdin and reads ``{"code", "output"}`` from stdout, ``code`` null on
timeout and -1 for ``unpatchable``.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import json
import os
import pkgutil
import select
import signal
import sys
import tempfile
from types import FunctionType
from typing import Any

UNPATCHABLE = -1


class Unpatchable(Exception):
    pass


def _patch_function(old: FunctionType, new: FunctionType) -> None:
    try:
        old.__code__ = new.__code__
    except ValueError as exc:  # the closure's free variables changed
        raise Unpatchable(f"{old.__qualname__}: {exc}") from exc
    old.__defaults__ = new.__defaults__
    old.__kwdefaults__ = new.__kwdefaults__


def _patch_value(old: Any, new: Any, module: str) -> None:
    if isinstance(new, FunctionType) and isinstance(old, FunctionType):
        _patch_function(old, new)
    elif isinstance(new, property) and isinstance(old, property):
        for part in ("fget", "fset", "fdel"):
            old_part, new_part = getattr(old, part), getattr(new, part)
            if isinstance(old_part, FunctionType) and isinstance(new_part, FunctionType):
                _patch_function(old_part, new_part)
    elif isinstance(new, staticmethod | classmethod) and isinstance(old, staticmethod | classmethod):
        _patch_value(old.__func__, new.__func__, module)
    elif isinstance(new, type) and isinstance(old, type) and new.__module__ == module:
        for name, value in vars(new).items():
            if name in vars(old):
                _patch_value(vars(old)[name], value, module)


def apply_in_place(module_name: str, path: str, source: str) -> None:
    """Execute the mutated source aside and move its code into the live module's functions
    and methods (which keep their globals, so they see the live module's names)."""
    module = sys.modules[module_name]
    namespace: dict[str, Any] = {
        "__name__": module_name,
        "__file__": path,
        "__package__": module.__package__,
        "__builtins__": builtins,
    }
    exec(compile(source, path, "exec"), namespace)
    for name, new in namespace.items():
        if name in vars(module):
            _patch_value(vars(module)[name], new, module_name)


def _preimport(package: str) -> None:
    """Import every module of the package once (those that fail to import are skipped: a test
    that needs one imports it in the child)."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        with contextlib.suppress(Exception):
            importlib.import_module(info.name)


def _run_child(request: dict[str, Any], out_path: str) -> None:
    os.setpgid(0, 0)  # its own group, so a timeout kills what the tests started too
    fd = os.open(out_path, os.O_WRONLY | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        apply_in_place(request["module"], request["path"], request["source"])
    except Unpatchable:
        os._exit(UNPATCHABLE & 0xFF)
    import pytest

    code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *request["tests"]])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


def _wait(pid: int, timeout: float) -> int | None:
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        os.close(pidfd)


def serve(package: str, suite: list[str]) -> None:
    protocol = os.fdopen(os.dup(1), "w")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # stray prints must not corrupt the protocol
    os.dup2(quiet, 2)
    _preimport(package)
    import pytest

    # Collecting once imports every test module (assertion rewriting included) and every
    # plugin here, so a child's own collection finds them all in sys.modules.
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *suite])
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    with tempfile.NamedTemporaryFile(prefix="mutant-", suffix=".log") as log:
        for line in sys.stdin:
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _run_child(request, log.name)
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)  # also here: the child may not have run yet
            code = _wait(pid, request["timeout"])
            if code == UNPATCHABLE & 0xFF:
                code = UNPATCHABLE
            with open(log.name, errors="replace") as f:
                output = f.read()[-4000:]
            protocol.write(json.dumps({"code": code, "output": output}) + "\n")
            protocol.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
