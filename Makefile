# kube-rtsync: the front door.
#   make demo    run kube-rtsync once on a local EC2 emulator seeded with a sample VPC
#   make test    everything CI checks: fmt, clippy, template lint, unit, handler and emulator tests
#   make build   the arm64 Lambda artifact (cargo lambda build --release --arm64)
#   make deploy  sam deploy (guided the first time)
#   make invoke  send events/$(EVENT).json to a function served by `cargo lambda watch`

SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
EVENT ?= sns-launch
INVOKE_PORT ?= 9000
export PATH := $(BIN):$(PATH)

.PHONY: demo test lint build deploy invoke watch venv build-tools sam-tools clean

# Python tools (the EC2 emulator, cfn-lint), pinned, in a project-local venv.
$(BIN)/.dev-installed: requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(BIN)/.dev-installed

demo: venv
	cargo build --quiet --bin kube-rtsync --example demo
	$(CURDIR)/target/debug/examples/demo $(CURDIR)/target/debug/kube-rtsync

lint: venv
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

test: lint
	cargo test --all-targets

clean:
	rm -rf $(VENV) .aws-sam
