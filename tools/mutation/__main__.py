"""Mutation testing of the protocol cores: how many small edits of orion/raft/ and
orion/gossip/ does the test suite notice?

    .venv/bin/python tools/mutation                      # every mutant of the default files
    .venv/bin/python tools/mutation --named              # the three mutants of issue 11
    .venv/bin/python tools/mutation --files orion/raft/log.py --list
    .venv/bin/python tools/mutation --resume             # continue an interrupted run
    .venv/bin/python tools/mutation --workdir NEW --rejudge-survivors-of OLD1 OLD2
                                                         # run again only what OLD1/OLD2 left alive
    .venv/bin/python tools/mutation --workdir W1 --shard 1/2 ...   # and --shard 2/2 beside it
    .venv/bin/python tools/mutation --workdir REPORT --merge W1 W2  # one report over both

The tree is exported (``git archive`` of ``--rev``, HEAD by default) into ``--workdir``; the
working tree is never touched. One worker: mutants run one after another. Results go to
WORKDIR/results.jsonl as they come (``--resume`` skips the ones there) and the report to
WORKDIR/report.txt. Exit code 1 when the score is below ``--min-score`` or a named mutant survives.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from pathlib import Path

if not __package__:  # ``python tools/mutation``: its imports resolve only as the module tools.mutation
    import os

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    os.execve(sys.executable, [sys.executable, "-m", "tools.mutation", *sys.argv[1:]], env)

from .named import NAMED
from .operators import Mutant, generate
from .runner import (
    CARRIED_FROM,
    KILLED,
    SURVIVED,
    TIMEOUT,
    UNCOVERED,
    Coverage,
    Outcome,
    Workspace,
    append_result,
    export_tree,
    failing_test,
    killed_before,
    load_results,
    source_digests,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FILES = [
    "orion/raft/core.py",
    "orion/raft/log.py",
    "orion/raft/progress.py",
    "orion/gossip/core.py",
    "orion/gossip/awareness.py",
    "orion/gossip/broadcasts.py",
    "orion/gossip/suspicion.py",
    "orion/gossip/timing.py",
]
DEFAULT_SUITE = ["tests/raft", "tests/sim", "tests/gossip"]


def collect(tree: Path, files: list[str], named: bool) -> list[Mutant]:
    if named:
        mutants = []
        for nm in NAMED:
            try:
                mutants.append(nm.resolve((tree / nm.path).read_bytes()))
            except ValueError as exc:
                raise SystemExit(f"named mutant no longer applies: {exc}") from exc
        return mutants
    mutants = []
    for path in files:
        mutants.extend(generate(path, (tree / path).read_bytes()))
    return mutants


def report(outcomes: list[Outcome], elapsed: float) -> tuple[str, float]:
    counts = Counter(o.status for o in outcomes)
    total = len(outcomes)
    killed = counts[KILLED] + counts[TIMEOUT]
    score = killed / total if total else 1.0
    lines = [
        f"mutants: {total}  killed: {counts[KILLED]}  killed by timeout: {counts[TIMEOUT]}  "
        f"survived: {counts[SURVIVED]}  not covered: {counts[UNCOVERED]}",
        f"score: {100 * score:.1f}% killed  ({elapsed / 60:.1f} min)",
    ]
    carried = sum(1 for o in outcomes if o.detail.startswith(CARRIED_FROM))
    if carried:
        lines.append(f"  of the killed, {carried} carried over from earlier runs (same source files)")
    by_file = Counter(o.id.split(":")[0] for o in outcomes)
    alive_by_file = Counter(o.id.split(":")[0] for o in outcomes if o.status in (SURVIVED, UNCOVERED))
    for path in sorted(by_file):
        lines.append(f"  {path}: {by_file[path] - alive_by_file[path]}/{by_file[path]} killed")
    sections = ((TIMEOUT, "killed by timeout"), (SURVIVED, "survivors"), (UNCOVERED, "not covered"))
    for status, title in sections:
        chosen = [o for o in outcomes if o.status == status]
        if chosen:
            lines.append(f"{title}:")
            lines.extend(f"  {o.description}" for o in chosen)
    return "\n".join(lines), score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/mutation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", nargs="+", default=DEFAULT_FILES, help="files to mutate")
    parser.add_argument("--suite", nargs="+", default=DEFAULT_SUITE, help="test paths of the kill suite")
    parser.add_argument("--seeds", type=int, default=100, help="simulator seeds in the property test")
    parser.add_argument("--rev", default="HEAD", help="git revision to test; 'worktree' for the working tree")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/orion-mutation"))
    parser.add_argument("--named", action="store_true", help="only the named mutants of issue 11")
    parser.add_argument("--match", default="", help="only mutants whose id contains this text")
    parser.add_argument("--every", type=int, default=1, help="only every N-th mutant (a quick sample)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--resume", action="store_true", help="reuse the tree, baseline and results")
    parser.add_argument(
        "--keep-killed",
        action="store_true",
        help="a fresh tree and baseline, but keep the mutants already killed (same ids: the files "
        "under mutation are unchanged) and run only the others again",
    )
    parser.add_argument(
        "--rejudge-survivors-of",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="a fresh tree and baseline; mutants that the runs in these workdirs killed (in files "
        "unchanged since: their sources.json) are confirmed by running only the test that killed "
        "them (a kill that names no test, or is not confirmed, is judged again in full), their "
        "timeouts are taken over, and all other mutants run again. Several DIRs merge runs split "
        "by --files or --shard",
    )
    parser.add_argument(
        "--take-kills",
        action="store_true",
        help="with --rejudge-survivors-of: take the earlier kills over as they are, unconfirmed "
        "(when they were confirmed on the same source files already, and --suite is only the "
        "tests added since, to judge the survivors by)",
    )
    parser.add_argument(
        "--shard", default="1/1", help="K/N: only the K-th of N interleaved parts of the mutants (1-based)"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="run nothing: report over the mutants of --rev the verdicts in these workdirs (e.g. shards)",
    )
    parser.add_argument("--min-score", type=float, default=0.0, help="exit 1 below this score (0-100)")
    parser.add_argument("--no-fork", action="store_true", help="a fresh Python process per mutant (slower)")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error("--every must be at least 1")
    try:
        shard, shards = (int(part) for part in args.shard.split("/"))
    except ValueError:
        parser.error(f"--shard must be K/N, got {args.shard!r}")
    if not 1 <= shard <= shards:
        parser.error(f"--shard {args.shard}: K must lie in 1..N")
    if args.take_kills and not args.rejudge_survivors_of:
        parser.error("--take-kills goes with --rejudge-survivors-of")
    if args.rejudge_survivors_of and (args.resume or args.keep_killed or args.named):
        parser.error("--rejudge-survivors-of makes a fresh run: not with --resume, --keep-killed or --named")
    if args.workdir.resolve() in {d.resolve() for d in args.rejudge_survivors_of}:
        parser.error("--rejudge-survivors-of: use another --workdir than the runs it reads")

    workdir: Path = args.workdir
    tree = workdir / "tree"
    results_path = workdir / ("named.jsonl" if args.named else "results.jsonl")
    coverage_path = workdir / "coverage.json"
    confirm_path = workdir / "confirm.json"  # mutant id -> the test that killed it in an earlier run
    if args.merge:
        return _merge(args, workdir, tree)
    if not args.resume:
        workdir.mkdir(parents=True, exist_ok=True)
        export_tree(REPO, tree, None if args.rev == "worktree" else args.rev)
        digests = source_digests(tree, args.files)
        (workdir / "sources.json").write_text(json.dumps(digests, indent=1) + "\n")
        coverage_path.unlink(missing_ok=True)
        kept = [o for o in load_results(results_path).values() if o.status in (KILLED, TIMEOUT)]
        results_path.unlink(missing_ok=True)
        confirm_path.unlink(missing_ok=True)
        if args.rejudge_survivors_of:
            try:
                earlier = killed_before(args.rejudge_survivors_of, digests)
            except ValueError as exc:
                parser.error(f"--rejudge-survivors-of: {exc}")
            kept = earlier if args.take_kills else [o for o in earlier if o.status == TIMEOUT]
            to_confirm = {
                o.id: test
                for o in earlier
                if o.status == KILLED and not args.take_kills and (test := failing_test(o.detail))
            }
            confirm_path.write_text(json.dumps(to_confirm, indent=1) + "\n")
            print(
                f"from earlier runs: {len(to_confirm)} kills to confirm by their test, "
                f"{len(kept)} verdicts taken over",
                flush=True,
            )
        if args.keep_killed or args.rejudge_survivors_of:
            for outcome in kept:
                append_result(results_path, outcome)
    elif not tree.exists():
        parser.error(f"--resume: no tree in {workdir}")

    mutants = collect(tree, args.files, args.named)
    mutants = [m for m in mutants if args.match in m.id][:: args.every][shard - 1 :: shards]
    if args.list:
        for m in mutants:
            print(f"{m.id}  {m.describe()}")
        print(f"{len(mutants)} mutants")
        return 0

    began = time.monotonic()
    with Workspace(tree, args.suite, seeds=args.seeds, fork=not args.no_fork) as workspace:
        outcomes = _run_all(workspace, args, mutants, coverage_path, results_path, began)
    text, score = report(outcomes, time.monotonic() - began)
    (workdir / ("named-report.txt" if args.named else "report.txt")).write_text(text + "\n")
    print(text)
    if args.named:
        return 0 if all(o.status in (KILLED, TIMEOUT) for o in outcomes) else 1
    return 0 if 100 * score >= args.min_score else 1


def _run_all(
    workspace: Workspace,
    args: argparse.Namespace,
    mutants: list[Mutant],
    coverage_path: Path,
    results_path: Path,
    began: float,
) -> list[Outcome]:
    targets = sorted({m.path for m in mutants})
    if args.resume and coverage_path.exists():
        coverage = Coverage.load(coverage_path, workspace.tree, targets)
    else:
        suite = " ".join(args.suite)
        print(f"baseline: {suite} with {args.seeds} seeds, tracing {len(targets)} files", flush=True)
        coverage = workspace.baseline(targets, coverage_path, timeout=3600)
        print(f"baseline: {len(coverage.passed)} tests pass ({time.monotonic() - began:.0f} s)", flush=True)
    done = load_results(results_path)
    confirm_path = coverage_path.parent / "confirm.json"
    to_confirm: dict[str, str] = json.loads(confirm_path.read_text()) if confirm_path.exists() else {}
    outcomes: list[Outcome] = []
    for i, mutant in enumerate(mutants, start=1):
        outcome = done.get(mutant.id)
        if outcome is None:
            outcome = _confirm(workspace, mutant, coverage, to_confirm.get(mutant.id))
            if outcome is None:
                outcome = workspace.run(mutant, coverage)
            append_result(results_path, outcome)
            print(
                f"[{i}/{len(mutants)}] {outcome.status:9} {outcome.seconds:6.1f}s "
                f"{outcome.tests:4} tests  {outcome.description}",
                flush=True,
            )
        outcomes.append(outcome)
    return outcomes


def _confirm(workspace: Workspace, mutant: Mutant, coverage: Coverage, test: str | None) -> Outcome | None:
    """The kill of an earlier run, confirmed by its test alone; None if there is none to confirm
    or the test now passes (the mutant is then judged in full)."""
    if test is None:
        return None
    outcome = workspace.run(mutant, coverage, only=[test])
    if outcome.status != KILLED:
        return None
    return dataclasses.replace(outcome, detail=f"confirmed: {outcome.detail}")


def _merge(args: argparse.Namespace, workdir: Path, tree: Path) -> int:
    """One report over the verdicts of several runs: a kill in any run wins (some test fails on
    that mutant), otherwise the first verdict found."""
    workdir.mkdir(parents=True, exist_ok=True)
    export_tree(REPO, tree, None if args.rev == "worktree" else args.rev)
    verdicts: dict[str, Outcome] = {}
    for run in args.merge:
        for outcome in load_results(run / "results.jsonl").values():
            known = verdicts.get(outcome.id)
            if known is None or (
                known.status not in (KILLED, TIMEOUT) and outcome.status in (KILLED, TIMEOUT)
            ):
                verdicts[outcome.id] = outcome
    mutants = collect(tree, args.files, named=False)
    outcomes = [verdicts[m.id] for m in mutants if m.id in verdicts]
    text, score = report(outcomes, sum(o.seconds for o in outcomes))
    missing = len(mutants) - len(outcomes)
    if missing:
        text += f"\nnot judged by any of these runs: {missing} of {len(mutants)} mutants"
    (workdir / "report.txt").write_text(text + "\n")
    print(text)
    return 0 if not missing and 100 * score >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
