"""Orion's benchmarks, one module each, every one runnable alone as
``python -m tools.bench.NAME --help``; ``python -m tools.bench [--quick]`` runs the suite.
Results go to benchmarks/results/*.json (common.save_result); figures and method are in
BENCHMARKS.md."""
