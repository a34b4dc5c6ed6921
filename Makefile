# Thin wrapper: every target calls cargo or the pinned emulator venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv/moto
MOTO := $(VENV)/bin/moto_server
LOCAL := target/debug/cxbridge-local

.PHONY: run test lint bench build venv fmt clean

## run: start the local stack (moto, every function, the gateway on $CXBRIDGE_PORT or 3000)
run: venv build
	$(LOCAL) run

## test: unit, adapter and end-to-end tests, against a fresh moto on a free port
test: venv build
	$(LOCAL) with-moto --moto $(MOTO) -- cargo test --workspace --no-fail-fast

## lint: formatting and clippy, warnings are errors
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## bench: criterion benchmarks (webhook verification and the request path without I/O)
bench:
	cargo bench -p cxbridge --bench webhook

fmt:
	cargo fmt --all

build:
	cargo build --workspace --bins

## venv: the pinned AWS emulator (moto 5.2.5), created on first use
venv: $(MOTO)

$(MOTO): infra/requirements-moto.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-moto.txt
	touch $(MOTO)

clean:
	cargo clean
	rm -rf .venv
