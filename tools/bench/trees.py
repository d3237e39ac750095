"""Running a cluster from another source tree (a git worktree of another revision), so benchmarks
compare revisions side by side in the same minutes (``write_throughput --trees``,
``write_cpu --trees``, ``idle_threads --trees``)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def started_from(tree: Path | None) -> Iterator[None]:
    """While a cluster's nodes start: ``tree`` as their working directory and first on their
    ``PYTHONPATH``, so they run that tree's code (``python -m orion`` imports from the working
    directory first). None: this process's tree."""
    if tree is None:
        yield
        return
    cwd, path = os.getcwd(), os.environ.get("PYTHONPATH")
    os.chdir(tree)
    os.environ["PYTHONPATH"] = str(tree)
    try:
        yield
    finally:
        os.chdir(cwd)
        if path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = path


def parse_trees(text: str) -> dict[str, Path]:
    """``label=path,label=path`` -> {label: the tree's directory}."""
    trees: dict[str, Path] = {}
    for item in text.split(","):
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise argparse.ArgumentTypeError(f"--trees: expected label=path, got {item!r}")
        tree = Path(path).resolve()
        if not (tree / "orion" / "__init__.py").exists():
            raise argparse.ArgumentTypeError(f"--trees: {tree} holds no orion package")
        trees[label] = tree
    return trees
