"""tools/mutation: the operators on a small source, the named mutants against the real core,
and one end-to-end run (baseline trace, killed, survived and uncovered mutants) on a toy tree."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tools.mutation.named import NAMED
from tools.mutation.operators import generate
from tools.mutation.runner import (
    CARRIED_FROM,
    KILLED,
    SURVIVED,
    TIMEOUT,
    UNCOVERED,
    Outcome,
    Workspace,
    append_result,
    failing_test,
    killed_before,
    source_digests,
)

REPO = Path(__file__).resolve().parents[2]

SOURCE = textwrap.dedent(
    '''
    """Module docstring."""
    LIMIT = 10


    class Box:
        size: int = 3

        def grow(self, n: int = 1) -> int:
            """Docstring."""
            assert n >= 0
            if n < self.size and not self.full:
                self.size += n
            total = min(self.size, LIMIT) + 1
            if total > 5:
                raise ValueError(f"too big: {total > 5}")
            return total
    '''
).encode()


def _edits(path: str = "pkg/box.py") -> set[tuple[str, str, str]]:
    return {(m.operator, m.original, m.replacement) for m in generate(path, SOURCE)}


def test_operators_cover_comparisons_booleans_numbers_and_statements() -> None:
    edits = _edits()
    assert ("cmp", "<", "<=") in edits
    assert ("cmp", ">", ">=") in edits
    assert ("bool", "and", "or") in edits
    assert ("bool", "not self.full", "(self.full)") in edits
    assert ("bool", "n < self.size and not self.full", "not (n < self.size and not self.full)") in edits
    assert ("num", "+=", "-=") in edits
    assert ("num", "+", "-") in edits
    assert ("num", "min", "max") in edits
    assert ("num", "1", "2") in edits and ("num", "1", "0") in edits  # the default and the + 1
    assert ("del", "self.size += n", "pass") in edits
    assert ("del", "return total", "pass") in edits


def test_operators_leave_docstrings_asserts_constants_and_messages_alone() -> None:
    originals = {original for _, original, _ in _edits()}
    assert "n >= 0" not in originals and ">=" not in originals  # the assert
    assert "10" not in originals and "3" not in originals  # module and class constants
    assert not any("Docstring" in o for o in originals)
    # The f-string's comparison is message text; raising at all is still mutated.
    assert ("del", 'raise ValueError(f"too big: {total > 5}")', "pass") in _edits()
    assert sum(1 for _, original, _ in _edits() if original == ">") == 1


def test_every_mutant_parses_and_changes_the_code() -> None:
    import ast

    for mutant in generate("pkg/box.py", SOURCE):
        mutated = mutant.apply(SOURCE)
        assert ast.dump(ast.parse(mutated)) != ast.dump(ast.parse(SOURCE)), mutant.describe()
    ids = [m.id for m in generate("pkg/box.py", SOURCE)]
    assert len(ids) == len(set(ids))


def test_pragma_no_mutate_is_honoured() -> None:
    source = b"def f(x):\n    return x + 1  # pragma: no mutate\n"
    assert generate("m.py", source) == []


def test_named_mutants_still_apply_to_the_core() -> None:
    for named in NAMED:
        source = (REPO / named.path).read_bytes()
        mutant = named.resolve(source)
        assert mutant.apply(source) != source


def test_end_to_end_on_a_toy_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "tests").mkdir()
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "calc.py").write_text(
        textwrap.dedent(
            """
            def double(x):
                return x * 2 + 0


            def never_called(x):
                return x - 1
            """
        )
    )
    (tree / "tests" / "test_calc.py").write_text(
        "from pkg.calc import double\n\n\ndef test_double():\n    assert double(3) == 6\n"
    )
    with Workspace(tree, ["tests"]) as workspace:
        coverage = workspace.baseline(["pkg/calc.py"], tmp_path / "trace.json", timeout=120)
        assert coverage.passed == ["tests/test_calc.py::test_double"]
        source = (tree / "pkg/calc.py").read_bytes()
        mutants = {(m.original, m.replacement): m for m in generate("pkg/calc.py", source)}
        keys = [("return x * 2 + 0", "pass"), ("2", "3"), ("+", "-"), ("-", "+")]
        outcomes = {key: workspace.run(mutants[key], coverage).status for key in keys}
        # A confirmation runs only the named test (one that passes without the mutant).
        confirmed = workspace.run(mutants[("2", "3")], coverage, only=["tests/test_calc.py::test_double"])
        assert (confirmed.status, confirmed.tests) == (KILLED, 1)
        unknown = workspace.run(mutants[("2", "3")], coverage, only=["tests/test_calc.py::gone"])
        assert unknown.status == UNCOVERED
    assert outcomes[("return x * 2 + 0", "pass")] == KILLED
    assert outcomes[("2", "3")] == KILLED
    assert outcomes[("+", "-")] == SURVIVED  # x * 2 - 0: an equivalent mutant
    assert outcomes[("-", "+")] == UNCOVERED
    assert (tree / "pkg" / "calc.py").read_text().count("x * 2 + 0") == 1, "the original was not restored"


def _earlier_run(workdir: Path, tree: Path, outcomes: list[Outcome]) -> None:
    workdir.mkdir()
    (workdir / "sources.json").write_text(json.dumps(source_digests(tree, ["pkg/a.py", "pkg/b.py"])))
    for outcome in outcomes:
        append_result(workdir / "results.jsonl", outcome)


def test_rejudging_takes_over_only_kills_in_unchanged_files(tmp_path: Path) -> None:
    """Two runs split by file are merged; a survivor, an uncovered mutant and any verdict on a
    file edited since are judged again."""
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "a.py").write_text("A = 1\n")
    (tree / "pkg" / "b.py").write_text("B = 1\n")
    _earlier_run(
        tmp_path / "run-a",
        tree,
        [
            Outcome("pkg/a.py:1:0:num:1", "a1", KILLED, 0.1, 1, "FAILED t::x"),
            Outcome("pkg/a.py:1:0:num:2", "a2", TIMEOUT, 9.0, 1, "over 9 s"),
            Outcome("pkg/a.py:1:0:num:3", "a3", SURVIVED, 1.0, 1),
            Outcome("pkg/a.py:1:0:num:4", "a4", UNCOVERED, 0.0, 0),
        ],
    )
    _earlier_run(
        tmp_path / "run-b", tree, [Outcome("pkg/b.py:1:0:num:1", "b1", KILLED, 0.1, 1, "FAILED t::y")]
    )
    (tree / "pkg" / "b.py").write_text("B = 2\n")  # edited since run-b
    now = source_digests(tree, ["pkg/a.py", "pkg/b.py"])
    carried = {o.id: o for o in killed_before([tmp_path / "run-a", tmp_path / "run-b"], now)}
    assert sorted(carried) == ["pkg/a.py:1:0:num:1", "pkg/a.py:1:0:num:2"]
    assert carried["pkg/a.py:1:0:num:2"].status == TIMEOUT
    assert carried["pkg/a.py:1:0:num:1"].detail == f"{CARRIED_FROM}{tmp_path / 'run-a'}: FAILED t::x"


def test_rejudging_refuses_a_run_that_recorded_no_sources(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    with pytest.raises(ValueError, match=r"no sources\.json"):
        killed_before([tmp_path / "old"], {})


def test_the_killing_test_is_read_from_an_outcome_detail() -> None:
    assert failing_test("FAILED tests/raft/test_a.py::test_b[3] - AssertionError: x") == (
        "tests/raft/test_a.py::test_b[3]"
    )
    assert failing_test(f"{CARRIED_FROM}/tmp/run: ERROR tests/a.py::test_c") == "tests/a.py::test_c"
    assert failing_test("ImportError: cannot import name") is None
    assert failing_test("over 96 s") is None
