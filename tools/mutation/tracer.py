"""A pytest plugin for the baseline run: which tests execute which lines of the files under
mutation, and how long each test takes. A mutant is then tested only by the tests that run
its lines, fastest first (a test that never runs a line cannot notice a change there).

Enabled by ``-p mutation.tracer`` with ``MUTATION_TRACE_FILES`` (absolute paths, separated
by ``os.pathsep``) and ``MUTATION_TRACE_OUT`` (the JSON file to write) in the environment.
Lines executed outside any test (module and class bodies, at import) are reported under the
test id ``""``: a mutant there is tested by the whole suite.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import defaultdict
from types import FrameType
from typing import Any

import pytest

_files = frozenset(p for p in os.environ.get("MUTATION_TRACE_FILES", "").split(os.pathsep) if p)
_hits: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
_durations: dict[str, float] = {}
_failed: list[str] = []
_current = ""


def _local(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "line":
        _hits[frame.f_code.co_filename][frame.f_lineno].add(_current)
    return _local


def _global(frame: FrameType, event: str, arg: Any) -> Any:
    if frame.f_code.co_filename in _files:
        _hits[frame.f_code.co_filename][frame.f_lineno].add(_current)
        return _local
    return None


def pytest_configure(config: pytest.Config) -> None:
    if _files:
        sys.settrace(_global)
        threading.settrace(_global)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    global _current
    _current = item.nodeid
    yield
    _current = ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration
    if report.failed:
        _failed.append(report.nodeid)


def pytest_unconfigure(config: pytest.Config) -> None:
    sys.settrace(None)
    threading.settrace(None)  # type: ignore[arg-type]
    out = os.environ.get("MUTATION_TRACE_OUT")
    if not out:
        return
    lines = {
        path: {str(line): sorted(tests) for line, tests in sorted(by_line.items())}
        for path, by_line in _hits.items()
    }
    with open(out, "w") as f:
        json.dump({"lines": lines, "durations": _durations, "failed": _failed}, f)
