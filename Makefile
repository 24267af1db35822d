# MuseTag: `make demo` runs the whole pipeline on a generated mini corpus; `make test` runs the lint and
# the tests. Both create .venv and install the pinned stack first (idempotent; re-installs when pins change).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
MT := $(VENV)/bin/musetag
STAMP := $(VENV)/.installed
DATA ?= data/mini
OUT ?= data/mini-out
RUNS ?= runs
TRACKS ?= 300
SECONDS ?= 30
# three clips of the corpus for tagging demos (the biggest files are whole 30 s previews)
CLIPS = $$(find $(DATA)/audio -name "*.mp3" -size +200k | sort | head -3)
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0
# imported published models (musetag tag --model …) are cached here for the demo; unset, users get ~/.cache/musetag
export MUSETAG_CACHE ?= $(CURDIR)/.cache/musetag

.PHONY: venv sysdeps lint test test-fast demo demo-data demo-msd demo-tfrecords demo-train demo-evaluate demo-pretrained \
        demo-index demo-scores demo-datasets demo-latent demo-image demo-export demo-serve \
        results bench pretrained clean

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	# the published musicnn models (and musicnn's own code, used only as a test oracle)
	$(PY) -m pip install -q --no-deps musicnn==0.1.0
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

# Debian packages the demo and the tests use: fluidsynth and a General MIDI soundfont render the
# music21 score corpus to audio (the demo's real-music leg); chromium is the real browser the web
# page is tested in (Playwright drives it); libportaudio2 is PortAudio for `musetag listen`
# (sounddevice's Linux wheel carries none). Installed when missing and we may (root, or passwordless
# sudo); otherwise the command says what to install.
SYSDEPS := fluidsynth timgm6mb-soundfont chromium libportaudio2
SOUNDFONT := /usr/share/sounds/sf2/TimGM6mb.sf2
sysdeps:
	@if command -v fluidsynth > /dev/null && test -f $(SOUNDFONT) && command -v chromium > /dev/null \
	    && /sbin/ldconfig -p | grep -q libportaudio.so.2; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2> /dev/null; then SUDO="sudo -n"; else \
	    echo "missing Debian packages: sudo apt-get install -y $(SYSDEPS)" >&2; exit 2; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $(SYSDEPS) > /dev/null

lint: venv
	$(VENV)/bin/ruff check .

test: lint sysdeps
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

# ---- the demo: every stage on the generated MSD-format mini corpus --------------------------
demo-data: venv
	$(MT) synth --out $(DATA) --tracks $(TRACKS) --seconds $(SECONDS) --seed 0 --overwrite --quiet

demo-msd: venv
	$(MT) msd all --data $(DATA) --out $(OUT)/msd --min-count 20 --pool-min-count 2 --val-threshold 10 \
	    --overwrite --no-progress

demo-tfrecords: venv
	$(MT) preprocess split --master $(OUT)/msd/master.csv --out $(OUT)/splits.csv --by artist \
	    --ratios 0.6 0.2 0.2 --seed 0 --overwrite
	$(MT) preprocess write --master $(OUT)/msd/master.csv --tags $(OUT)/msd/clean_tags.db \
	    --splits $(OUT)/splits.csv --format log-mel --preset musicnn --shards-per-split 4 2 2 \
	    --out $(OUT)/tfrecords-logmel --workers 2 --overwrite --no-progress
	$(MT) preprocess write --master $(OUT)/msd/master.csv --tags $(OUT)/msd/clean_tags.db \
	    --splits $(OUT)/splits.csv --format waveform --shards-per-split 4 2 2 \
	    --out $(OUT)/tfrecords-waveform --workers 2 --overwrite --no-progress
	$(MT) preprocess info $(OUT)/tfrecords-logmel

demo-train: venv
	$(MT) train --config configs/demo.json --run $(RUNS)/demo --overwrite

# Tagging the whole audio folder meets the corpus's deliberately broken files: they are reported and
# skipped, and the command exits 1 (some inputs skipped), which the demo expects.
demo-evaluate: venv
	$(MT) evaluate --run $(RUNS)/demo --split test --overwrite
	$(MT) tag --run $(RUNS)/demo --top 5 --json $(RUNS)/demo/predictions.jsonl --taggram $(RUNS)/demo/taggrams \
	    --overwrite $(CLIPS)
	$(MT) tag --run $(RUNS)/demo --top 3 --csv $(RUNS)/demo/corpus_tags.csv --overwrite -q $(DATA)/audio \
	    > /dev/null; rc=$$?; test $$rc -eq 0 -o $$rc -eq 1

demo-pretrained: venv
	$(MT) pretrained list
	$(MT) tag --model MSD_musicnn --top 5 $(CLIPS)

# ---- similar tracks and playlists: an index of the corpus built with the demo run -------------
# The corpus's broken files are skipped (exit 1, expected). A track of the test split seeds a playlist.
IDX := $(RUNS)/demo-index
demo-index: venv
	$(MT) index build --run $(RUNS)/demo $(DATA)/audio --index $(IDX) --overwrite --no-progress; test $$? -le 1
	$(MT) index info --index $(IDX)
	$(MT) index evaluate --index $(IDX) --master $(OUT)/msd/master.csv --tags $(OUT)/msd/clean_tags.db \
	    --splits $(OUT)/splits.csv --split test --json $(IDX)/evaluation.json --overwrite
	$(MT) similar --index $(IDX) --track "$$(echo $(CLIPS) | cut -d' ' -f1)" -k 5
	$(MT) similar --index $(IDX) --text "calm relaxing" -k 5 --format json --out $(IDX)/text-query.json --overwrite
	$(MT) playlist --index $(IDX) --from "$$(echo $(CLIPS) | cut -d' ' -f1)" --to "$$(echo $(CLIPS) | cut -d' ' -f3)" \
	    --length 10 --out $(IDX)/playlist.m3u --map $(IDX)/map.png --overwrite
	$(MT) embed --run $(RUNS)/demo --out $(IDX)/clips.parquet --overwrite --no-progress $(CLIPS)

# ---- cold start: targets from listening data, an audio model that predicts them ----------------
# track2vec over the corpus's Taste-Profile-format listening (20% of the tracks held out of the
# targets), doc2vec over its clean tags; the latent run's index places the held-out tracks, scored
# against their true co-listening neighbours, beside the demo tagger's index and random.
TP := $(DATA)/taste_profile
LISTENING = --listens $(TP)/train_triplets.txt --unique-tracks $(TP)/unique_tracks.txt --mismatches $(DATA)/sid_mismatches.txt
demo-latent: venv
	$(MT) latent track2vec $(LISTENING) --hold-out-fraction 0.2 --out $(OUT)/latent/track2vec --overwrite --no-progress
	$(MT) latent doc2vec --tags $(OUT)/msd/clean_tags.db --master $(OUT)/msd/master.csv --dim 40 \
	    --out $(OUT)/latent/doc2vec --overwrite --no-progress
	$(MT) latent info $(OUT)/latent/track2vec
	$(MT) train --config configs/latent_demo.json --run $(RUNS)/demo-latent --overwrite
	$(MT) index build --run $(RUNS)/demo-latent $(DATA)/audio --index $(RUNS)/demo-latent-index --overwrite \
	    --no-progress; test $$? -le 1
	$(MT) index evaluate --index $(RUNS)/demo-latent-index --master $(OUT)/msd/master.csv \
	    --held-out $(OUT)/latent/track2vec $(LISTENING) --compare-index $(IDX) \
	    --json $(RUNS)/demo-latent-index/cold_start.json --overwrite

# ---- image -> music: the index's cover art paired with its tracks, an image run, picture queries ----
PAIRS := $(OUT)/pairs
# a picture of the test albums (never seen in training)
TEST_PICTURE = $$($(PY) -c "import csv; r = [x for x in csv.DictReader(open('$(PAIRS)/pairs.csv')) if x['split'] == 'test']; print('$(PAIRS)/' + r[0]['image'])")
demo-image: venv
	$(MT) index pairs --index $(IDX) --space embedding --out $(PAIRS) --overwrite
	$(MT) train --config configs/image_demo.json --set dataset.dir=$(PAIRS) --run $(RUNS)/demo-image --overwrite
	$(MT) index evaluate-image --index $(IDX) --pairs $(PAIRS) --image-run $(RUNS)/demo-image \
	    --master $(OUT)/msd/master.csv --tags $(OUT)/msd/clean_tags.db --json $(RUNS)/demo-image/evaluation.json --overwrite
	$(MT) similar --index $(IDX) --image "$(TEST_PICTURE)" --image-run $(RUNS)/demo-image -k 5
	$(MT) playlist --index $(IDX) --image "$(TEST_PICTURE)" --image-run $(RUNS)/demo-image --length 8 \
	    --out $(RUNS)/demo-image/playlist.m3u --overwrite

# ---- a self-contained model: SavedModel, TFLite and Keras exports of the demo run -------------
demo-export: venv
	$(MT) export --run $(RUNS)/demo --format savedmodel --out $(RUNS)/demo-export/savedmodel --overwrite
	$(MT) export --run $(RUNS)/demo --format tflite --out $(RUNS)/demo-export/tflite --overwrite
	$(MT) export --run $(RUNS)/demo --format keras --out $(RUNS)/demo-export/keras --overwrite

# ---- the web app: a scripted listener session over HTTP, then feedback -> training weights -------
# serve picks a free port (--port 0) and prints it; webapp.democlient tags a clip, searches, likes and
# dislikes, builds playlists (one from a picture), and the server is stopped with Ctrl-C (SIGINT).
# A judged track that is not in the training data (the purge dropped it) is reported by feedback
# export and makes it exit 1, which the demo accepts.
FEEDBACK := $(RUNS)/demo-feedback.sqlite
demo-serve: venv
	rm -f $(FEEDBACK) $(RUNS)/demo-serve.log
	$(MT) serve --run $(RUNS)/demo --index $(IDX) --image-run $(RUNS)/demo-image --port 0 --feedback $(FEEDBACK) \
	    2> $(RUNS)/demo-serve.log & pid=$$!; \
	$(PY) -m webapp.democlient --log $(RUNS)/demo-serve.log --audio "$$(echo $(CLIPS) | cut -d' ' -f1)" \
	    --image "$(TEST_PICTURE)" --json $(RUNS)/demo-serve.json; rc=$$?; \
	kill -INT $$pid; wait $$pid; test $$rc -eq 0 || { cat $(RUNS)/demo-serve.log; exit $$rc; }
	$(MT) feedback show --db $(FEEDBACK)
	$(MT) feedback export --db $(FEEDBACK) --index $(IDX) --master $(OUT)/msd/master.csv \
	    --out $(RUNS)/demo-feedback-weights.csv --overwrite; test $$? -le 1
	$(MT) train --config configs/demo.json --run $(RUNS)/demo-feedback --set model.init_from=$(RUNS)/demo \
	    --set dataset.weights=$(RUNS)/demo-feedback-weights.csv --set optimization.epochs=2 --overwrite

# ---- real music: the music21 score corpus rendered with fluidsynth, read as "your own folder" ----
SCORES ?= data/scores
SCORES_OUT ?= data/scores-out
demo-scores: venv sysdeps
	$(MT) dataset scores --out $(SCORES) --pieces 80 --seconds 30 --seed 0 --overwrite --no-progress
	$(MT) dataset folder --audio $(SCORES)/audio --tags $(SCORES)/tags.csv --out $(SCORES_OUT)/dataset \
	    --min-count 8 --overwrite --no-progress
	$(MT) preprocess write --master $(SCORES_OUT)/dataset/master.csv --tags $(SCORES_OUT)/dataset/clean_tags.db \
	    --splits $(SCORES_OUT)/dataset/splits.csv --format log-mel --preset musicnn --shards-per-split 2 1 1 \
	    --out $(SCORES_OUT)/tfrecords-logmel --workers 2 --overwrite --no-progress
	$(MT) train --config configs/scores_demo.json --run $(RUNS)/demo-scores --overwrite
	$(MT) evaluate --run $(RUNS)/demo-scores --split test --protocol won16 --overwrite
	$(MT) tag --run $(RUNS)/demo-scores --top 5 $$(find $(SCORES)/audio -name "*.wav" | sort | head -2)

# ---- MagnaTagATune and MTG-Jamendo as distributed: format-faithful generated trees --------------
demo-datasets: venv
	$(PY) -c "from sources.synthetic import make_mtat, make_jamendo; \
	    make_mtat('$(OUT)/mtat-tree', 200, workers=2, overwrite=True, progress=False); \
	    make_jamendo('$(OUT)/jamendo-tree', 20, minutes=(0.5, 1.0), workers=2, overwrite=True, progress=False)"
	$(MT) dataset mtat --root $(OUT)/mtat-tree --out $(OUT)/mtat --overwrite --no-progress; test $$? -le 1
	$(MT) dataset jamendo --root $(OUT)/jamendo-tree --audio $(OUT)/jamendo-tree/audio --out $(OUT)/jamendo \
	    --overwrite --no-progress; test $$? -le 1
	$(MT) preprocess write --master $(OUT)/mtat/master.csv --tags $(OUT)/mtat/clean_tags.db \
	    --splits $(OUT)/mtat/splits/clean.csv --format waveform --shards-per-split 2 1 1 \
	    --out $(OUT)/mtat-tfrecords --engine beam --workers 2 --overwrite --no-progress; test $$? -le 1

demo: demo-data demo-msd demo-tfrecords demo-train demo-evaluate demo-pretrained demo-index demo-latent demo-image \
      demo-export demo-serve demo-datasets demo-scores
	@echo "demo finished: corpus $(DATA), cleaned data and TFRecords $(OUT), runs in $(RUNS)/ (tensorboard --logdir $(RUNS))"

# ---- committed reference results (results/): the demo run and the four published models -----
results: venv
	test -f $(RUNS)/demo/eval/test/metrics.json || $(MAKE) demo
	for m in MSD_musicnn MTT_musicnn MSD_vgg MTT_vgg; do \
	    r=$(RUNS)/pretrained/$$(echo $$m | tr A-Z a-z); \
	    $(MT) pretrained import --model $$m --out $$r --overwrite --no-saved-model -q || exit 1; \
	    $(MT) evaluate --run $$r --tfrecords $(OUT)/tfrecords-logmel --split test --overwrite -q > /dev/null || exit 1; \
	done
	$(PY) results/collect.py --out results demo=$(RUNS)/demo \
	    $$(for m in msd_musicnn mtt_musicnn msd_vgg mtt_vgg; do echo $$m=$(RUNS)/pretrained/$$m; done)

pretrained: venv
	$(MT) pretrained import --model all --out $(RUNS)/pretrained --overwrite

bench: venv
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(DATA) $(OUT) $(RUNS)/demo* .cache .pytest_cache
