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

.PHONY: venv test test-fast demo demo-data demo-msd demo-tfrecords demo-train demo-evaluate demo-pretrained bench pretrained clean

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

# ---- the demo: every stage on the generated MSD-format mini corpus --------------------------
demo-data: venv
	$(PY) -m msd.synthetic --out $(DATA) --tracks $(TRACKS) --seconds $(SECONDS) --seed 0 --overwrite --quiet

demo-msd: venv
	$(PY) -m msd all --data $(DATA) --out $(OUT)/msd --min-count 20 --pool-min-count 2 --val-threshold 10 \
	    --overwrite --no-progress

demo-tfrecords: venv
	$(PY) -m preprocessing split --master $(OUT)/msd/master.csv --out $(OUT)/splits.csv --by artist \
	    --ratios 0.6 0.2 0.2 --seed 0 --overwrite
	$(PY) -m preprocessing write --master $(OUT)/msd/master.csv --tags $(OUT)/msd/clean_tags.db \
	    --splits $(OUT)/splits.csv --format log-mel --preset musicnn --shards-per-split 4 2 2 \
	    --out $(OUT)/tfrecords-logmel --workers 2 --overwrite --no-progress
	$(PY) -m preprocessing write --master $(OUT)/msd/master.csv --tags $(OUT)/msd/clean_tags.db \
	    --splits $(OUT)/splits.csv --format waveform --shards-per-split 4 2 2 \
	    --out $(OUT)/tfrecords-waveform --workers 2 --overwrite --no-progress
	$(PY) -m preprocessing info $(OUT)/tfrecords-logmel

demo-train: venv
	$(PY) -m training --config configs/demo.json --run-dir $(RUNS)/demo --overwrite

demo-evaluate: venv
	$(PY) -m evaluation.test_model --run $(RUNS)/demo --split test --overwrite
	$(PY) -m evaluation.test_model --run $(RUNS)/demo --top 5 --json $(RUNS)/demo/predictions.jsonl \
	    --taggram $(RUNS)/demo/taggram.png $$(find $(DATA)/audio -name "*.mp3" -size +200k | sort | head -3)

demo-pretrained: venv
	$(PY) -m modeling.pretrained import --model MSD_musicnn --out $(RUNS)/pretrained/msd_musicnn --overwrite
	$(PY) -m evaluation.test_model --run $(RUNS)/pretrained/msd_musicnn --top 5 \
	    $$(find $(DATA)/audio -name "*.mp3" -size +200k | sort | head -3)

demo: demo-data demo-msd demo-tfrecords demo-train demo-evaluate demo-pretrained
	@echo "demo finished: corpus $(DATA), cleaned data and TFRecords $(OUT), runs in $(RUNS)/ (tensorboard --logdir $(RUNS))"

pretrained: venv
	for m in MSD_musicnn MTT_musicnn MSD_vgg MTT_vgg; do \
	    $(PY) -m modeling.pretrained import --model $$m --out $(RUNS)/pretrained/$$(echo $$m | tr A-Z a-z) --overwrite || exit 1; \
	done

bench: venv
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(DATA) $(OUT) $(RUNS)/demo* .cache .pytest_cache
