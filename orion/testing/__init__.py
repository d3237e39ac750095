"""Helpers for running real Orion clusters in tests, demos and benchmarks."""
