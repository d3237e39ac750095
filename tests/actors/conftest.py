"""The actors' tests run them inside real `orion node` processes: the cluster fixtures (and the
report hook that prints node logs on failure) are the integration tests' own."""

from tests.integration.conftest import docker_engine, make_cluster, pytest_runtest_makereport

__all__ = ["docker_engine", "make_cluster", "pytest_runtest_makereport"]
