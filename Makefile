# cfdkit: two commands do everything on a fresh machine (see README.md).
#   make demo   set up, then audit every test prediction (hate speech if the data is present, else synthetic)
#   make test   set up, then run every test (package tests, notebooks under nbval, the browser test)
# Every command below runs with $(PY) and the cfdkit installed into it, e.g. in a fresh virtual environment:
#   d=$(mktemp -d); python3 -m venv $d/venv && make test PY=$d/venv/bin/python
PY ?= python3
# The interpreter's own bin folder goes first on PATH, so notebook kernels ("python3" kernelspec -> `python`),
# console scripts and subprocesses all use $(PY)'s environment, not whatever `python` is first on PATH.
PYBIN := $(shell $(PY) -c "import os, sys; print(os.path.dirname(sys.executable))")
export PATH := $(PYBIN):$(PATH)
# The data home: ../shared/data beside the repository when it exists (CI, developers), else the
# user cache, where the loaders download files on first use and check their sha256.
SHARED := $(abspath $(CURDIR)/../shared/data)
ifeq ($(origin CFDKIT_DATA_HOME), undefined)
ifneq ($(wildcard $(SHARED)/MANIFEST.md),)
export CFDKIT_DATA_HOME := $(SHARED)
endif
endif
DEMO_DATASET := $(if $(CFDKIT_DATA_HOME),hate-speech,synthetic)
# The demo audits every test row: for each prediction the minimal set (the fewest training labels found whose
# relabeling, verified by retraining, flips it; with its certified lower bound) beside Algorithm 1's estimated set.
# Outputs in results/audit: report.html (plain-language summary), sets.csv, summary.json, figures.
# DEMO_FLAGS passes more options, e.g. make demo DEMO_FLAGS="--n-test 100" (a seeded subset) or
# DEMO_FLAGS=--estimate-only (Algorithm 1's estimates only, seconds instead of minutes).
DEMO_FLAGS ?=
PYTEST_ARGS ?=
# Exact versions (constraints.txt): the environment tests, notebooks, Binder and `cfdkit reproduce` run in.
PIP := $(PY) -m pip install -q -c constraints.txt

.PHONY: setup setup-browser demo test bench lock
setup:
	# CPU torch first (a fresh machine has the 2.13.0 wheel on disk), so nothing pulls a CUDA build
	$(PIP) "torch==2.13.0"
	$(PIP) -e ".[dev,notebooks,embeddings]"

setup-browser:
	PY=$(PY) bash tests/setup_browser.sh

demo: setup
	$(PY) -m cfdkit audit --dataset $(DEMO_DATASET) --features bow --out results/audit $(DEMO_FLAGS)
	@echo "Wrote results/audit/: open report.html (what was found, in plain words); sets.csv has one row per test point."

test: setup setup-browser
	CFDKIT_FAST=1 $(PY) -m pytest tests --nbval-lax notebooks -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_flip.py

# Refresh constraints.txt on purpose: run in a fresh virtual environment (make lock PY=...), review the diff,
# then re-execute the notebooks so that their stored outputs come from the new versions.
lock:
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,notebooks,embeddings]"
	PY=$(PY) bash tests/setup_browser.sh
	{ sed -n '1,/^$$/p' constraints.txt | grep '^#'; \
	  $(PY) -m pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' | grep -v '^cfdkit'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
