# Open-AutoGLM. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
STACK   := .stack
STAMPS  := $(STACK)/stamps
export PIP_CACHE_DIR := $(CURDIR)/$(STACK)/cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
MVN     := mvn -q -B -Dmaven.repo.local=$(CURDIR)/$(STACK)/m2
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST  := $(PY) -m pytest -p no:cacheprovider

.PHONY: help setup system-packages proto proto-check lint test test-unit test-integration \
        demo stack-up stack-down services-up services-down lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(STAMPS)/venv $(STAMPS)/jars system-packages  ## install everything (idempotent)

$(STAMPS)/venv: requirements.lock pyproject.toml
	@mkdir -p $(STAMPS)
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

$(STAMPS)/jars: stack/pom.xml
	@mkdir -p $(STAMPS)
	rm -rf $(STACK)/lib/kafka $(STACK)/lib/neo4j
	cd stack && $(MVN) -P kafka dependency:copy-dependencies -DincludeScope=runtime \
	    -DoutputDirectory=$(CURDIR)/$(STACK)/lib/kafka
	cd stack && $(MVN) -P neo4j dependency:copy-dependencies -DincludeScope=runtime \
	    -DoutputDirectory=$(CURDIR)/$(STACK)/lib/neo4j
	@touch $@

# redis-server for the local stack, kcat for the "any Kafka client" test.
system-packages:
	@if ! command -v redis-server >/dev/null || ! command -v kcat >/dev/null; then \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server kcat >/dev/null; \
	fi

lock:  ## re-resolve requirements.in into requirements.lock
	$(PY) -m pip install -q -r requirements.in && $(PY) -m pip freeze --exclude-editable > requirements.lock

proto: $(STAMPS)/venv  ## regenerate the Python code of proto/
	$(PY) -m autoglm.protogen

lint: $(STAMPS)/venv  ## ruff and mypy
	$(VENV)/bin/ruff check libs services tests
	$(VENV)/bin/mypy

test-unit: setup
	$(PYTEST) tests/unit -q

test-integration: setup
	$(PYTEST) tests/integration tests/e2e -q

test: setup lint  ## lint, then unit, integration and end-to-end tests against real servers
	$(PYTEST) tests/unit -q
	$(PYTEST) tests/integration tests/e2e -q

stack-up: setup  ## start Kafka, Neo4j and Redis as local processes
	$(VENV)/bin/autoglm stack up

stack-down:  ## stop the local stack
	$(VENV)/bin/autoglm stack down

services-up: stack-up  ## start the four services in the background
	$(VENV)/bin/autoglm services start

services-down:
	$(VENV)/bin/autoglm services stop

# The trained checkpoint kept in samples/model serves until a model trained here is promoted.
model-bundled: $(STAMPS)/venv
	$(VENV)/bin/autoglm models import --serve --if-untrained

demo: setup model-bundled services-up  ## set up, start everything, ingest a sample KB, ask sample questions
	$(VENV)/bin/autoglm demo
	@echo "Everything keeps running: 'make services-down stack-down' stops it."

.PHONY: bench-ingest
bench-ingest: setup  ## ingest benchmark: MetaQA KB via Kafka vs direct, parser vs nlp.pipe (JSON in bench/results/)
	$(PY) bench/ingest.py $(BENCH_INGEST_ARGS)

clean:  ## stop everything and remove the local stack's data (keeps downloads)
	-$(VENV)/bin/autoglm services stop
	-$(VENV)/bin/autoglm stack down
	rm -rf $(STACK)/data $(STACK)/logs $(STACK)/run $(STACK)/conf $(STACK)/test

.PHONY: bench-retrieval
bench-retrieval: setup  ## retrieval recall, sizes and latency on MetaQA dev (bench/results/retrieval.json)
	$(PY) bench/retrieval.py --load-kb-if-missing $(BENCH_RETRIEVAL_ARGS)

.PHONY: bench-feedback
bench-feedback: setup  ## self-training through the pipeline: 10 % labelled, rounds of pseudo-labels (bench/results/feedback.json, .png)
	$(PY) bench/feedback.py $(BENCH_FEEDBACK_ARGS)

.PHONY: bench-inference
bench-inference: setup  ## inference: dynamic batching vs batch 1, and eval through the pipeline (bench/results/inference.json)
	$(PY) bench/inference.py $(BENCH_INFERENCE_ARGS)

.PHONY: bench-extraction
bench-extraction: setup  ## WebNLG dev: text-to-triples scores, parser service vs bare extraction, text to answers (bench/results/extraction.json)
	$(PY) bench/extraction.py $(BENCH_EXTRACTION_ARGS)

# Chaos test (issue 11.1), outside `make test`: its own stack (3 brokers, ports 26092-26097,
# 26687, 26379, .stack/bench-faults), two replicas of parser, graph-builder and inference.
.PHONY: test-faults test-faults-ci test-overload
test-faults: setup  ## chaos test: 2,000 questions + 200 documents while replicas, a broker, Neo4j and Redis fail (bench/results/reliability.json)
	flock /tmp/autoglm-it.lock $(PY) bench/faults.py $(FAULTS_ARGS)

test-faults-ci: setup  ## the chaos test at CI size: 200 questions + 200 documents
	flock /tmp/autoglm-it.lock $(PY) bench/faults.py --questions 200 $(FAULTS_ARGS)

test-overload: setup  ## overload (issue 11.5): 20,000 questions at once on the chaos stack, no faults: peak RSS, loss, latency after
	flock /tmp/autoglm-it.lock $(PY) bench/faults.py --overload --questions 20000 $(FAULTS_ARGS)
