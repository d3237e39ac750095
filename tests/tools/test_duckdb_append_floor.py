"""tools/bench/duckdb_append_floor.py runs (a short mode); its figures are not checked."""

from __future__ import annotations

import importlib.util

from tools.bench.duckdb_append_floor import measure

# The store's own methods always; the Arrow ones only where pyarrow is installed (the bench
# extra: the node no longer needs it, and CI's test install leaves it out).
METHODS = (
    "store.save",
    "values",
    "values-parsed",
    "appender",
    "list-params",
    "json",
    "executemany",
    "fdatasync",
)
ARROW_METHODS = ("arrow", "arrow-register")


def test_every_method_is_measured_at_every_size(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ORION_BENCH_DIR", str(tmp_path))
    results = measure([1, 16], rounds=3, entry_bytes=64)
    methods = {(r["entries"], r["method"]) for r in results}
    expected = METHODS + (ARROW_METHODS if importlib.util.find_spec("pyarrow") else ())
    for n in (1, 16):
        for method in expected:
            assert (n, method) in methods
    assert all(r["entries_per_s"] > 0 and r["p50_ms"] <= r["p99_ms"] for r in results)
    assert list(tmp_path.iterdir()) == []  # each size's files are removed
