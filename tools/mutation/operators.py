"""Mutants of one Python source file: small edits a test suite should notice.

Operators (each mutant is one edit, located by the AST and applied to the source text, so the
rest of the file keeps its formatting):

- ``cmp``: a comparison at its boundary or negated in place: ``<``/``<=``, ``>``/``>=``,
  ``==``/``!=``, ``in``/``not in``, ``is``/``is not``;
- ``bool``: ``and``/``or`` swapped; ``True``/``False`` swapped; a ``not`` removed; an ``if``,
  ``elif``, ``while`` or conditional-expression test negated;
- ``num``: an integer constant plus one and minus one; ``+``/``-`` swapped (also ``+=``/``-=``);
  ``min``/``max`` swapped;
- ``del``: a simple statement (assignment, call, return, raise, break, continue, del) replaced
  by ``pass``.

Left alone, because a change there is not a behaviour a unit test can pin down: docstrings,
``assert`` statements (checks of invariants, not behaviour), constants of module-level and
class-level assignments (tuning values and configuration defaults), the text of exception
messages, annotations, and any line marked ``# pragma: no mutate``.
"""

from __future__ import annotations

import ast
import re
import zlib
from dataclasses import dataclass

_CMP_SWAPS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
}
_CMP_TOKEN = {
    "<": r"<(?!=)",
    "<=": r"<=",
    ">": r">(?!=)",
    ">=": r">=",
    "==": r"==",
    "!=": r"!=",
    "in": r"(?<![\w])in(?![\w])",
    "not in": r"not\s+in",
    "is": r"(?<![\w])is(?![\w])(?!\s+not)",
    "is not": r"is\s+not",
}
_SIMPLE_STATEMENTS = (
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Expr,
    ast.Return,
    ast.Raise,
    ast.Break,
    ast.Continue,
    ast.Delete,
)
NO_MUTATE = "pragma: no mutate"


@dataclass(frozen=True)
class Mutant:
    path: str  # relative to the tree root, e.g. "orion/raft/core.py"
    line: int  # first line of the edit (1-based)
    end_line: int  # last line of the edit
    start: int  # byte offsets of the edit in the file
    end: int
    operator: str  # cmp, bool, num, del
    original: str  # the text replaced
    replacement: str

    @property
    def id(self) -> str:
        """Stable while the file is unchanged: where, which operator, a digest of the edit."""
        digest = zlib.crc32(self.replacement.encode())
        return f"{self.path}:{self.line}:{self.start}:{self.operator}:{digest:08x}"

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]

    def describe(self) -> str:
        original = " ".join(self.original.split())
        replacement = " ".join(self.replacement.split())
        return f"{self.path}:{self.line} [{self.operator}] {original!r} -> {replacement!r}"


class _Source:
    """Byte offsets for AST positions (col_offset is in UTF-8 bytes)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.line_starts = [0]
        for i, byte in enumerate(data):
            if byte == 0x0A:
                self.line_starts.append(i + 1)
        self.lines = data.decode().splitlines()

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def start_of(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end_of(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode()

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1


class _Generator(ast.NodeVisitor):
    def __init__(self, path: str, src: _Source) -> None:
        self.path = path
        self.src = src
        self.mutants: list[Mutant] = []
        self._frozen_depth = 0  # inside annotations, exception messages, module/class constants
        self._function_depth = 0

    # ------------------------------------------------------------------ helpers
    def _add(self, start: int, end: int, operator: str, replacement: str) -> None:
        src = self.src
        line = src.line_of(start)
        end_line = src.line_of(max(start, end - 1))
        if any(NO_MUTATE in src.lines[i - 1] for i in range(line, end_line + 1)):
            return
        self.mutants.append(
            Mutant(self.path, line, end_line, start, end, operator, src.text(start, end), replacement)
        )

    def _between(self, left: ast.AST, right: ast.AST, pattern: str) -> tuple[int, int] | None:
        """Byte span of the operator token between two operands."""
        lo, hi = self.src.end_of(left), self.src.start_of(right)
        between = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), self.src.text(lo, hi))
        match = re.search(pattern, between)
        if match is None:
            return None
        return lo + match.start(), lo + match.end()

    def _frozen(self, node: ast.AST | None) -> None:
        if node is None:
            return
        self._frozen_depth += 1
        self.visit(node)
        self._frozen_depth -= 1

    # ------------------------------------------------------------------ structure
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for deco in node.decorator_list:
            self.visit(deco)
        for default in [*node.args.defaults, *[d for d in node.args.kw_defaults if d is not None]]:
            self.visit(default)
        self._function_depth += 1
        self._body(node.body)
        self._function_depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.visit(item)
            # Class attributes (struct fields, defaults, __slots__) are configuration: left alone.

    def visit_Module(self, node: ast.Module) -> None:
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.visit(item)
            elif isinstance(item, ast.If) and _is_type_checking(item.test):
                continue
            # Module-level constants and imports: left alone.

    def _body(self, body: list[ast.stmt]) -> None:
        for i, stmt in enumerate(body):
            if i == 0 and _is_docstring(stmt):
                continue
            self._maybe_delete(stmt)
            self.visit(stmt)

    def _maybe_delete(self, stmt: ast.stmt) -> None:
        if not isinstance(stmt, _SIMPLE_STATEMENTS) or self._function_depth == 0:
            return
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            return
        if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
            return
        self._add(self.src.start_of(stmt), self.src.end_of(stmt), "del", "pass")

    def generic_visit(self, node: ast.AST) -> None:
        for field, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                self._body(value)  # type: ignore[arg-type]
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                if field in ("annotation", "returns"):
                    continue
                self.visit(value)

    def visit_Assert(self, node: ast.Assert) -> None:
        pass  # asserts check invariants; mutating them is not a behaviour change a test pins

    def visit_Raise(self, node: ast.Raise) -> None:
        # The exception's type and message text are left alone; raising at all is what counts
        # (and the statement deletion covers it).
        self._frozen(node.exc)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        pass  # f-strings: message text

    # ------------------------------------------------------------------ operators
    def visit_Compare(self, node: ast.Compare) -> None:
        if not self._frozen_depth:
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                old, new = _CMP_SWAPS[type(op)]
                span = self._between(operands[i], operands[i + 1], _CMP_TOKEN[old])
                if span is not None:
                    self._add(span[0], span[1], "cmp", new)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        if not self._frozen_depth:
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            for left, right in zip(node.values, node.values[1:], strict=False):
                span = self._between(left, right, rf"(?<![\w]){old}(?![\w])")
                if span is not None:
                    self._add(span[0], span[1], "bool", new)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not) and not self._frozen_depth:
            inner = self.src.text(self.src.start_of(node.operand), self.src.end_of(node.operand))
            self._add(self.src.start_of(node), self.src.end_of(node), "bool", f"({inner})")
        self.generic_visit(node)

    def _negate_test(self, test: ast.expr) -> None:
        if self._frozen_depth or _is_type_checking(test):
            return
        start, end = self.src.start_of(test), self.src.end_of(test)
        self._add(start, end, "bool", f"not ({self.src.text(start, end)})")

    def visit_If(self, node: ast.If) -> None:
        self._negate_test(node.test)
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._negate_test(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._negate_test(node.test)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if self._frozen_depth:
            return
        value = node.value
        start, end = self.src.start_of(node), self.src.end_of(node)
        if isinstance(value, bool):
            self._add(start, end, "bool", str(not value))
        elif isinstance(value, int):
            self._add(start, end, "num", str(value + 1))
            if value > 0:
                self._add(start, end, "num", str(value - 1))

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if not self._frozen_depth and isinstance(node.op, ast.Add | ast.Sub):
            old, new = ("+", "-") if isinstance(node.op, ast.Add) else ("-", "+")
            span = self._between(node.left, node.right, re.escape(old))
            if span is not None:
                self._add(span[0], span[1], "num", new)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if not self._frozen_depth and isinstance(node.op, ast.Add | ast.Sub):
            old, new = ("+=", "-=") if isinstance(node.op, ast.Add) else ("-=", "+=")
            span = self._between(node.target, node.value, re.escape(old))
            if span is not None:
                self._add(span[0], span[1], "num", new)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if not self._frozen_depth and isinstance(func, ast.Name) and func.id in ("min", "max"):
            self._add(
                self.src.start_of(func), self.src.end_of(func), "num", "max" if func.id == "min" else "min"
            )
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)


def _is_docstring(stmt: ast.stmt) -> bool:
    value = stmt.value if isinstance(stmt, ast.Expr) else None
    return isinstance(value, ast.Constant) and isinstance(value.value, str)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def generate(path: str, source: bytes) -> list[Mutant]:
    """Every mutant of ``source`` (the file at ``path``, relative to the tree root), in file
    order; each one parses and changes the code (others are dropped)."""
    tree = ast.parse(source)
    src = _Source(source)
    gen = _Generator(path, src)
    gen.visit(tree)
    unique: dict[tuple[int, int, str], Mutant] = {}
    for mutant in gen.mutants:
        unique.setdefault((mutant.start, mutant.end, mutant.replacement), mutant)
    original = ast.dump(tree)
    valid = []
    for mutant in sorted(unique.values(), key=lambda m: (m.start, m.end, m.replacement)):
        try:
            mutated = ast.parse(mutant.apply(source))
        except SyntaxError:
            continue
        if ast.dump(mutated) != original:  # an edit that changes no code is no mutant
            valid.append(mutant)
    return valid
