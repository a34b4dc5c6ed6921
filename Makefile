# Thin wrapper: every target calls cargo or the pinned emulator venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv/moto
MOTO := $(VENV)/bin/moto_server
LOCAL := target/debug/cxbridge-local
TOOLS := .venv/tools
FUNCTIONS := webhook-receiver intent-router signal-dispatcher callback-verifier retry-drainer event-relay
export SAM_CLI_TELEMETRY := 0
export AWS_EC2_METADATA_DISABLED := true

.PHONY: run test unit lint bench chaos build venv tools package fmt clean

## run: start the local stack (moto, every function, the gateway on $CXBRIDGE_PORT or 3000)
run: venv build
	$(LOCAL) run

## test: unit, adapter and end-to-end tests, against a fresh moto on a free port
test: venv build
	$(LOCAL) with-moto --moto $(MOTO) -- cargo test --workspace --no-fail-fast

## unit: the pure tests alone (services on in-memory fakes, parsers, the simulator and the
## runtime host in-process): no emulator and no Python
unit:
	cargo test --workspace --lib --bins

## chaos: the fault suite at full size (bad input, duplicates, CXone and AWS faults, the
## in-progress race, a secret scan) against a stack with an emulator of its own; prints
## the table the README quotes
chaos: venv build
	cargo run -q -p cxbridge-e2e --bin cxbridge-chaos

## lint: formatting, clippy (warnings are errors), cfn-lint and sam validate on the template
lint: tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(TOOLS)/bin/cfn-lint template.yaml
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" sam validate --lint --region us-east-1 --template template.yaml

## package: release arm64 zips of the six functions, with their sizes
package: tools
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip $(addprefix --bin ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do ls -l target/lambda/$$f/bootstrap.zip | awk -v f=$$f '{printf "%-18s %6.2f MB\n", f, $$5/1000000}'; done

## bench: measure everything in BENCHMARKS.md and rewrite it (criterion, cold starts, RSS,
## zips, the stack end to end at fixed rates, and the Node.js peer); BENCH_ARGS passes options.
## The open-loop load holds thousands of connections at once: the file limit is raised.
bench: venv tools
	rm -rf target/criterion
	cargo bench -p cxbridge-bench --bench micro
	$(MAKE) package
	cargo build --release $(addprefix -p ,$(FUNCTIONS)) -p cxbridge-bench
	npm ci --prefix bench/peer-node --no-audit --no-fund --loglevel=error
	ulimit -n "$$(ulimit -Hn)" && target/release/cxbridge-bench $(BENCH_ARGS)

fmt:
	cargo fmt --all

build:
	cargo build --workspace --bins

## venv: the pinned AWS emulator (moto 5.2.5), created on first use
venv: $(MOTO)

## tools: SAM CLI, cfn-lint and cargo-lambda (with zig), pinned, in one venv
tools: $(TOOLS)/bin/sam

$(TOOLS)/bin/sam: infra/requirements-tools.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-tools.txt
	touch $(TOOLS)/bin/sam

$(MOTO): infra/requirements-moto.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-moto.txt
	touch $(MOTO)

clean:
	cargo clean
	rm -rf .venv
