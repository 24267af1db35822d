# MuseTag: `make demo` runs the whole pipeline on a generated mini corpus; `make test` runs the tests.
# Both create .venv and install the pinned stack first (idempotent; re-installs when pins change).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data/mini
OUT ?= data/mini-out
RUNS ?= runs
TRACKS ?= 300
SECONDS ?= 30
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0

.PHONY: venv test test-fast demo demo-data demo-features bench pretrained clean

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	# the published musicnn models (and musicnn's own code, used only as a test oracle)
	$(PY) -m pip install -q --no-deps musicnn==0.1.0
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

demo-data: venv
	$(PY) -m msd.synthetic --out $(DATA) --tracks $(TRACKS) --seconds $(SECONDS) --seed 0 --overwrite

demo-features: venv
	$(PY) -m preprocessing features --preset musicnn --limit 5 $(DATA)/audio
	$(PY) -m preprocessing features --preset orpheus --limit 5 $(DATA)/audio

demo: demo-data demo-features
	@echo "demo finished: mini corpus in $(DATA)"

bench: venv
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(DATA) $(OUT) $(RUNS)/demo* .cache .pytest_cache
