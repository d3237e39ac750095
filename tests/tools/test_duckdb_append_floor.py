"""tools/bench/duckdb_append_floor.py runs (a short mode); its figures are not checked."""

from __future__ import annotations

from tools.bench.duckdb_append_floor import measure


def test_every_method_is_measured_at_every_size(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ORION_BENCH_DIR", str(tmp_path))
    results = measure([1, 16], rounds=3, entry_bytes=64)
    methods = {(r["entries"], r["method"]) for r in results}
    for n in (1, 16):
        for method in ("store.save", "values", "arrow", "arrow-register", "executemany", "fdatasync"):
            assert (n, method) in methods
    assert all(r["entries_per_s"] > 0 and r["p50_ms"] <= r["p99_ms"] for r in results)
    assert list(tmp_path.iterdir()) == []  # each size's files are removed
