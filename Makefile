# Orion: one program per node. `make demo` starts a local 3-node cluster; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint bench demo demo-stop nemesis docker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Docker engine plus the local busybox test image (no registry is reachable).
docker:
	$(PYTHON) -m tools.docker_setup

# Pure tests (cores, simulators, stores, in-process API) run on both cores with pytest-xdist;
# tests that start node processes, containers or fault injection run one at a time after them,
# so their clusters never compete with each other for the two cores.
SERIAL := tests/integration tests/nemesis tests/actors
SERIAL_MARKS := docker or cluster or nemesis
test: setup docker
	$(PY) -m pytest -q -p no:cacheprovider -n 2 -m "not ($(SERIAL_MARKS))" $(addprefix --ignore=,$(SERIAL)) tests
	$(PY) -m pytest -q -p no:cacheprovider $(SERIAL)
	$(PY) -m pytest -q -p no:cacheprovider -m "$(SERIAL_MARKS)" $(addprefix --ignore=,$(SERIAL)) tests

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

clean:
	rm -rf $(VENV) data .pytest_cache
