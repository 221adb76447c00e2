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

.PHONY: help up down test lint bench bench-auth bench-gateway bench-vector bench-arbitrator bench-hardware bench-pipeline services tools build-times

help:
	@echo "make up     run the platform (ensures postgres, redis, rabbitmq; builds sutazai; runs 'sutazai up')"
	@echo "make down   stop a platform started with 'make up'"
	@echo "make test   run every test against the real servers"
	@echo "make lint   rustfmt check + clippy with warnings denied"
	@echo "make bench  run the benchmarks"

services:
	@bash scripts/ensure-services.sh

# mold is optional; install it when apt can (best effort: the build works without it).
tools:
	@command -v mold >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" -eq 0 ] && \
		(apt-get install -y -qq mold >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq mold >/dev/null 2>&1)) \
		|| echo "mold not installed; linking with the default linker")

$(ENV_FILE):
	@mkdir -p $(STATE_DIR)
	@umask 077; printf 'SUTAZAI__SECURITY__MASTER_KEY=%s\n' "$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > $(ENV_FILE)
	@echo "generated a master key in $(ENV_FILE) (keep it: it encrypts secrets at rest)"

up: services tools $(ENV_FILE)
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
test: services tools
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

# Measures a cold and an incremental debug build of the whole workspace (the figures in README).
build-times: tools
	bash scripts/build-times.sh
