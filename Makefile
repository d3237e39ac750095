# Orion: one program per node. `make demo` starts a local 3-node cluster; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint bench demo demo-stop demo-hosts demo-hosts-stop nemesis docker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Docker engine plus the local busybox test image (no registry is reachable).
docker:
	$(PYTHON) -m tools.docker_setup

# Two phases. Pure tests (cores, simulators, stores, in-process API) on both cores; then the
# tests marked isolated (tests/conftest.py: node processes, containers, fault injection), a
# test file per worker: their clusters mostly wait (timeouts, Docker), so three files at a
# time fit on two cores, and tests within one file never overlap.
test: setup docker
	$(PY) -m pytest -q -p no:cacheprovider -n 2 -m "not isolated" tests
	$(PY) -m pytest -q -p no:cacheprovider -n 3 --dist loadfile -m isolated tests

lint: setup
	$(PY) -m ruff check orion tests tools
	$(PY) -m ruff format --check orion tests tools

# Side-by-side benchmarks (etcd, PySyncObj, Docker Swarm, docker run); results in BENCHMARKS.md.
bench: setup docker
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m tools.bench

# A long fault-injection run: make nemesis SEEDS=30 DURATION=60 (seconds of faults per seed).
SEEDS ?= 30
DURATION ?= 60
nemesis: setup docker
	$(PY) -m tools.nemesis --seeds $(SEEDS) --duration $(DURATION) --nodes 0

demo: setup docker
	$(PY) -m tools.demo

demo-stop:
	$(PY) -m tools.demo --stop

# Three real hosts in miniature (network namespaces on a private LAN, a dockerd and a node
# each; root): orion/testing/hosts. demo-hosts-stop tears the bed down.
demo-hosts: setup docker
	$(PY) -m tools.demo_hosts

demo-hosts-stop:
	$(PY) -m tools.demo_hosts --stop

clean:
	rm -rf $(VENV) data .pytest_cache
