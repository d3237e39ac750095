"""Runs a kill suite against mutants in a private copy of the tree (the working tree is never
modified): one baseline run records which tests execute which lines; then each mutant is
written into the copy, tested by the tests that execute its lines (fastest first, stopping at
the first failure, with a timeout), and the original file is put back.

Statuses: ``killed`` (a test failed, or the mutant broke the import), ``timeout`` (the suite
hung or slowed past its limit: counted as killed, reported apart), ``survived`` (every test that
runs the line passed), ``uncovered`` (no test runs the line: a survivor by definition, not run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from .forkserver import UNPATCHABLE
from .operators import Mutant

TOOLS_DIR = Path(__file__).resolve().parents[1]  # so the copy's pytest can load mutation.tracer
KILLED = "killed"
TIMEOUT = "timeout"
SURVIVED = "survived"
UNCOVERED = "uncovered"
CARRIED_FROM = "earlier run "  # prefix of the detail of a verdict taken over from another run


@dataclass(frozen=True)
class Outcome:
    id: str
    description: str
    status: str
    seconds: float
    tests: int  # tests selected for the mutant
    detail: str = ""  # the failing test, or why it was not run


@dataclass
class Coverage:
    lines: dict[str, dict[int, list[str]]]  # relative path -> line -> test ids ("" = import time)
    durations: dict[str, float]
    passed: list[str]

    @classmethod
    def load(cls, trace: Path, tree: Path, targets: Iterable[str]) -> Coverage:
        """Read the tracer's JSON; tests that failed without any mutant are left out."""
        data = json.loads(trace.read_text())
        absolute = {str((tree / t).resolve()): t for t in targets}
        lines = {
            absolute[path]: {int(line): tests for line, tests in by_line.items()}
            for path, by_line in data["lines"].items()
            if path in absolute
        }
        failed = set(data["failed"])
        if failed:
            print(f"baseline: {len(failed)} tests fail without any mutant; left out: {sorted(failed)}")
        passed = sorted(t for t in data["durations"] if t not in failed)
        return cls(lines, data["durations"], passed)

    def tests_for(self, mutant: Mutant) -> list[str]:
        by_line = self.lines.get(mutant.path, {})
        selected: set[str] = set()
        for line in range(mutant.line, mutant.end_line + 1):
            selected.update(by_line.get(line, ()))
        passed = set(self.passed)
        # A line that runs at import (a default value) may matter to any test.
        tests = passed if "" in selected else [t for t in selected if t in passed]
        return sorted(tests, key=lambda t: (self.durations.get(t, 0.0), t))


def export_tree(repo: Path, dest: Path, rev: str | None) -> None:
    """A copy of the tree at ``rev`` (``None``: the working tree, tracked and untracked files
    that git does not ignore), without caches: a stale .pyc could hide a mutant."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if rev is not None:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", rev], check=True, capture_output=True
        ).stdout
        tar_path = dest.parent / "tree.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, filter="data")
        tar_path.unlink()
        return
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    for name in listing.decode().split("\0"):
        src = repo / name
        if name and src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


class Workspace:
    def __init__(
        self,
        tree: Path,
        suite: list[str],
        python: str = sys.executable,
        seeds: int = 100,
        fork: bool = True,
    ) -> None:
        self.tree = tree
        self.suite = suite
        self.python = python
        self.seeds = seeds
        self.fork = fork  # run mutants in children of a fork server (fresh processes if False)
        self._server: subprocess.Popen[str] | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.tree), str(TOOLS_DIR)])
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["ORION_RAFT_SEEDS"] = str(self.seeds)
        return env

    def _pytest(self, args: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str]:
        """Exit code (None on timeout) and the tail of the output."""
        cmd = [self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
        proc = subprocess.Popen(
            cmd,
            cwd=self.tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a hung suite and its children can be killed together
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None, ""
        return proc.returncode, out.decode(errors="replace")[-4000:]

    def baseline(self, targets: Iterable[str], out: Path, timeout: float) -> Coverage:
        """Run the suite once on the unmutated copy with the line tracer."""
        targets = list(targets)
        env = self._env()
        env["MUTATION_TRACE_FILES"] = os.pathsep.join(str((self.tree / t).resolve()) for t in targets)
        env["MUTATION_TRACE_OUT"] = str(out)
        out.unlink(missing_ok=True)
        code, output = self._pytest(["-p", "mutation.tracer", *self.suite], env, timeout)
        if code is None:
            raise RuntimeError(f"the baseline run did not finish within {timeout:.0f} s")
        if not out.exists():
            raise RuntimeError(f"the baseline run wrote no trace (exit {code}):\n{output}")
        return Coverage.load(out, self.tree, targets)

    def run(
        self, mutant: Mutant, coverage: Coverage, min_timeout: float = 30.0, only: list[str] | None = None
    ) -> Outcome:
        """Judge ``mutant`` by the tests that run its lines (``only``: just these tests, those
        of them that pass without any mutant; a quick confirmation of an earlier kill)."""
        tests = coverage.tests_for(mutant)
        if only is not None:
            passing = set(coverage.passed)
            tests = [t for t in only if t in passing]
        if not tests:
            return Outcome(mutant.id, mutant.describe(), UNCOVERED, 0.0, 0, "no test runs this line")
        path = self.tree / mutant.path
        original = path.read_bytes()
        budget = sum(coverage.durations.get(t, 1.0) for t in tests)
        timeout = max(min_timeout, 3 * budget + 15)
        began = time.monotonic()
        mutated = mutant.apply(original)
        if self.fork:
            self._start_server(mutant.path.split("/")[0], self.suite)
        try:
            path.write_bytes(mutated)  # also for tests that start another Python process
            code, output = UNPATCHABLE, ""
            if self.fork:
                code, output = self._forked(mutant, mutated.decode(), tests, timeout)
            if code == UNPATCHABLE:
                code, output = self._pytest(["-x", *tests], self._env(), timeout)
        finally:
            path.write_bytes(original)
        seconds = time.monotonic() - began
        if code is None:
            limit = f"over {timeout:.0f} s"
            return Outcome(mutant.id, mutant.describe(), TIMEOUT, seconds, len(tests), limit)
        if code == 0:
            return Outcome(mutant.id, mutant.describe(), SURVIVED, seconds, len(tests))
        return Outcome(mutant.id, mutant.describe(), KILLED, seconds, len(tests), _first_failure(output))

    def _start_server(self, package: str, suite: list[str]) -> None:
        """Started while no mutant is on disk, so the server imports the original code."""
        server = self._server
        if server is not None and server.poll() is None:
            return
        server = self._server = subprocess.Popen(
            [self.python, "-m", "mutation.forkserver", package, *suite],
            cwd=self.tree,
            env=self._env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        if json.loads(server.stdout.readline() or "{}").get("ready") is not True:
            raise RuntimeError("the mutation fork server did not start")

    def _forked(
        self, mutant: Mutant, source: str, tests: list[str], timeout: float
    ) -> tuple[int | None, str]:
        server = self._server
        assert server is not None and server.stdin is not None and server.stdout is not None
        module = mutant.path.removesuffix(".py").replace("/", ".")
        request = {
            "module": module,
            "path": str(self.tree / mutant.path),
            "source": source,
            "tests": tests,
            "timeout": timeout,
        }
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        reply = json.loads(server.stdout.readline())
        return reply["code"], reply["output"]

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the fork server (it exits when its input closes)."""
        if self._server is not None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=60)
            self._server = None


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line[:200]
    return output.strip().splitlines()[-1][:200] if output.strip() else ""


def source_digests(tree: Path, files: Iterable[str]) -> dict[str, str]:
    """SHA-256 of each file under mutation, as exported (before any mutant is written): an
    earlier run's verdicts carry over only to a file with the same digest."""
    return {path: hashlib.sha256((tree / path).read_bytes()).hexdigest() for path in files}


def killed_before(workdirs: Iterable[Path], digests: dict[str, str]) -> list[Outcome]:
    """The mutants earlier runs (their workdirs) killed or timed out, in files whose source is
    unchanged since (``digests``: the current tree's). A test added since cannot revive a
    killed mutant, so only survivors, uncovered and unjudged mutants need running again; the
    detail of each carried verdict names the run it came from."""
    carried: dict[str, Outcome] = {}
    for workdir in workdirs:
        sources = workdir / "sources.json"
        if not sources.exists():
            raise ValueError(f"{workdir}: no sources.json, so nothing shows what its mutants were made from")
        earlier = json.loads(sources.read_text())
        for outcome in load_results(workdir / "results.jsonl").values():
            path = outcome.id.split(":")[0]
            if outcome.status not in (KILLED, TIMEOUT) or outcome.id in carried:
                continue
            if path in digests and earlier.get(path) == digests[path]:
                detail = f"{CARRIED_FROM}{workdir}: {outcome.detail}"
                carried[outcome.id] = Outcome(
                    outcome.id, outcome.description, outcome.status, outcome.seconds, outcome.tests, detail
                )
    return list(carried.values())


def failing_test(detail: str) -> str | None:
    """The test id in an outcome's detail ("FAILED tests/x.py::test_y - why"), if it names one."""
    detail = detail.split(": ", 1)[1] if detail.startswith(CARRIED_FROM) else detail
    for prefix in ("FAILED ", "ERROR "):
        if detail.startswith(prefix):
            test = detail[len(prefix) :].split(" - ", 1)[0].strip()
            return test if "::" in test else None
    return None


def load_results(path: Path) -> dict[str, Outcome]:
    if not path.exists():
        return {}
    results = {}
    for line in path.read_text().splitlines():
        if line.strip():
            outcome = Outcome(**json.loads(line))
            results[outcome.id] = outcome
    return results


def append_result(path: Path, outcome: Outcome) -> None:
    with path.open("a") as f:
        f.write(json.dumps(asdict(outcome)) + "\n")
