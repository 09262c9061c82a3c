# cfdkit: two commands do everything on a fresh machine (see README.md).
#   make demo   set up, then run the main job (an audit; hate speech if the data is present, else synthetic)
#   make test   set up, then run every test (package tests, notebooks under nbval, the browser test)
PY ?= python3
# The data home: ../shared/data beside the repository when it exists (CI, developers), else the
# user cache, where the loaders download files on first use and check their sha256.
SHARED := $(abspath $(CURDIR)/../shared/data)
ifeq ($(origin CFDKIT_DATA_HOME), undefined)
ifneq ($(wildcard $(SHARED)/MANIFEST.md),)
export CFDKIT_DATA_HOME := $(SHARED)
endif
endif
DEMO_DATASET := $(if $(CFDKIT_DATA_HOME),hate-speech,synthetic)
PYTEST_ARGS ?=

.PHONY: setup setup-browser demo test bench
setup:
	# CPU torch first (a fresh machine has the 2.13.0 wheel on disk), so nothing pulls a CUDA build
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,notebooks,embeddings]"

setup-browser:
	bash tests/setup_browser.sh

demo: setup
	cfdkit audit --dataset $(DEMO_DATASET) --features bow --out results/audit
	@echo "Wrote results/audit/summary.json, sets.csv and figures."

test: setup setup-browser
	CFDKIT_FAST=1 $(PY) -m pytest tests --nbval-lax notebooks -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_flip.py
