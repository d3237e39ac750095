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
	$(PYTHON) tools/docker_setup.py

test: setup docker
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: setup
	$(PY) -m ruff check orion tests tools
	$(PY) -m ruff format --check orion tests tools

bench: setup
	$(PY) tools/bench_raft.py

demo: setup docker
	$(PY) tools/demo.py

demo-stop:
	$(PY) tools/demo.py --stop

clean:
	rm -rf $(VENV) data .pytest_cache
