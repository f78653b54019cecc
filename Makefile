# kube-rtsync: the front door.
#   make demo    run kube-rtsync once on a local EC2 emulator seeded with a sample VPC
#   make test    everything CI checks: fmt, clippy, template lint, unit, handler and emulator tests
#   make build   the arm64 Lambda artifact (cargo lambda build --release --arm64)
#   make deploy  sam deploy (guided the first time)
#   make sandbox a local emulator with the sample VPC, kept running for `make watch` / `make invoke`
#   make invoke  send events/$(EVENT).json to a function served by `cargo lambda watch`
#   make bench   end-to-end figures (release binary, emulator + 40 ms per call), the TLS set-up and the planner bench

SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
EVENT ?= sns-launch
INVOKE_PORT ?= 9000
export PATH := $(BIN):$(PATH)

SAM_VENV := $(CURDIR)/.venv-sam
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0
AWS_REGION ?= us-east-1
# Cargo's output directory: CARGO_TARGET_DIR when set (relative to here, as
# cargo reads it), else target/.
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),$(CURDIR)/target))
LAMBDA_ZIP := $(TARGET_DIR)/lambda/kube-rtsync/bootstrap.zip

.PHONY: demo sandbox test lint build deploy invoke watch bench venv build-tools sam-tools clean

# Python tools (the EC2 emulator, cfn-lint), pinned, in a project-local venv.
$(BIN)/.dev-installed: requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(BIN)/.dev-installed

# cargo-lambda and zig (for cross-compiling to arm64), in the same venv.
$(BIN)/.build-installed: requirements-build.txt $(BIN)/.dev-installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-build.txt
	@touch $@

build-tools: $(BIN)/.build-installed

# The SAM CLI pins its own boto3: it gets a venv of its own.
$(SAM_VENV)/.installed: requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	@touch $@

sam-tools: $(SAM_VENV)/.installed

# A local emulator with the sample VPC for `make watch` / `make invoke`
# (prints the variables to export in the other shells; Ctrl-C stops it).
sandbox: venv
	cargo run --quiet --example sandbox

demo: venv
	cargo build --quiet --bin kube-rtsync --example demo
	$(TARGET_DIR)/debug/examples/demo $(TARGET_DIR)/debug/kube-rtsync

lint: venv sam-tools
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python scripts/check_policy.py
	$(BIN)/python scripts/check_template.py
	$(SAM) validate --lint --region $(AWS_REGION)

test: lint
	cargo test --all-targets

# The Lambda artifact: arm64, release profile (LTO, stripped), zipped.
build: build-tools
	rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	cargo lambda build --release --arm64 --bin kube-rtsync --output-format zip
	@ls -l $(LAMBDA_ZIP) | awk '{printf "%s: %.1f MiB\n", $$NF, $$5/1048576}'

# sam build runs cargo lambda itself; --guided on the first deploy writes samconfig.toml.
deploy: build-tools sam-tools
	$(SAM) build
	@if grep -q '^parameter_overrides' samconfig.toml; then $(SAM) deploy; else $(SAM) deploy --guided; fi

# Serve the function locally (against whatever AWS_ENDPOINT_URL / credentials
# your shell has), then `make invoke EVENT=sns-test-notification` in another shell.
watch: build-tools
	cargo lambda watch --invoke-address 127.0.0.1 --invoke-port $(INVOKE_PORT)

invoke: build-tools
	cargo lambda invoke kube-rtsync --invoke-address 127.0.0.1 --invoke-port $(INVOKE_PORT) --data-file events/$(EVENT).json

# Benchmarks, never timed tests: figures for the README.
bench: venv
	cargo build --release --bin kube-rtsync
	cargo build --example bench --example memory
	$(TARGET_DIR)/debug/examples/bench $(TARGET_DIR)/release/kube-rtsync
	$(TARGET_DIR)/debug/examples/memory $(TARGET_DIR)/release/kube-rtsync
	cargo build --profile bench --example tls
	$(TARGET_DIR)/release/examples/tls
	cargo bench --bench planner

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam
