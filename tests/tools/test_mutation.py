"""tools/mutation: the operators on a small source, the named mutants against the real core,
and one end-to-end run (baseline trace, killed, survived and uncovered mutants) on a toy tree."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from mutation.named import NAMED
from mutation.operators import generate
from mutation.runner import KILLED, SURVIVED, UNCOVERED, Workspace

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
    assert outcomes[("return x * 2 + 0", "pass")] == KILLED
    assert outcomes[("2", "3")] == KILLED
    assert outcomes[("+", "-")] == SURVIVED  # x * 2 - 0: an equivalent mutant
    assert outcomes[("-", "+")] == UNCOVERED
    assert (tree / "pkg" / "calc.py").read_text().count("x * 2 + 0") == 1, "the original was not restored"
