# kube-rtsync: the front door.
#   make demo    run kube-rtsync once on a local EC2 emulator seeded with a sample VPC
#   make check   the inner loop, cargo only: fmt, clippy, unit, fake, property and golden tests
#   make test    everything CI checks: fmt, clippy, template lint, every test, and the deployment
#                on moto's CloudFormation (make deploy-test)
#   make build   the arm64 Lambda artifact (cargo lambda build --release --arm64)
#   make deploy  sam deploy (guided the first time)
#   make deploy-test  the template deployed to moto's CloudFormation and read back
#   make release make build, then dist/: the versioned zip, its SHA-256, the release template
#   make publish the Serverless Application Repository (SAR_BUCKET=...): sam package + sam publish
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
# The release: its version is Cargo.toml's.
VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
DIST := $(CURDIR)/dist
RELEASE_ZIP := $(DIST)/kube-rtsync-$(VERSION)-arm64.zip
# make publish: the bucket sam package uploads the code, README.md and LICENSE to.
SAR_BUCKET ?=

.PHONY: demo sandbox check test lint build deploy invoke watch bench venv build-tools sam-tools clean \
	deploy-test release release-artifacts publish

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
	$(BIN)/python scripts/check_release.py
	$(SAM) validate --lint --region $(AWS_REGION)
	$(SAM_VENV)/bin/python scripts/release_template.py --check

# The emulator tier of the deployment: the template, expanded offline by the
# SAM translator, deployed to moto's CloudFormation on a loopback port and read
# back (scripts/deploy_test.py). The Python tools only, no cargo.
deploy-test: venv sam-tools
	$(BIN)/python scripts/deploy_test.py

# The inner loop: cargo only (no Python, no emulator): format, lints, unit,
# fake, property and golden tests; the emulator tests skip, saying so.
check:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo test --all-targets
	cargo test --doc

# Everything CI checks: the lints, the deployment on the emulator, and every
# test, the emulator tests required (a missing emulator fails, never skips).
test: lint deploy-test
	KUBE_RTSYNC_REQUIRE_EMULATOR=1 cargo test --all-targets
	cargo test --doc

# The Lambda artifact: arm64, release profile (LTO, stripped), zipped.
build: build-tools
	rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	cargo lambda build --release --arm64 --bin kube-rtsync --output-format zip
	@ls -l $(LAMBDA_ZIP) | awk '{printf "%s: %.1f MiB\n", $$NF, $$5/1048576}'

# A release in dist/: the arm64 zip of make build under the version's name,
# its SHA-256, and the release template (plain CloudFormation for StackSets
# and every Region: README, Deploying).
release: build
	$(MAKE) --no-print-directory release-artifacts

# What make release makes once make build has left LAMBDA_ZIP.
release-artifacts: sam-tools
	@test -f $(LAMBDA_ZIP) || { echo "$(LAMBDA_ZIP) is missing: run make release (or make build)" >&2; exit 1; }
	@$(SAM_VENV)/bin/python -c 'import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist(); sys.exit(None if "bootstrap" in names else f"{sys.argv[1]}: no bootstrap in {names}")' $(LAMBDA_ZIP)
	mkdir -p $(DIST)
	cp $(LAMBDA_ZIP) $(RELEASE_ZIP)
	cd $(DIST) && sha256sum $(notdir $(RELEASE_ZIP)) > $(notdir $(RELEASE_ZIP)).sha256
	$(SAM_VENV)/bin/python scripts/release_template.py --output $(DIST)/kube-rtsync.template.json
	@cd $(DIST) && ls -l $(notdir $(RELEASE_ZIP)) $(notdir $(RELEASE_ZIP)).sha256 kube-rtsync.template.json

# The Serverless Application Repository: sam package uploads the code,
# README.md and LICENSE to SAR_BUCKET (its policy must let
# serverlessrepo.amazonaws.com read them); sam publish creates the application
# or its version SemanticVersion (Cargo.toml's, make lint checks it).
publish: build-tools sam-tools
	@test -n "$(SAR_BUCKET)" || { echo "usage: make publish SAR_BUCKET=<bucket in $(AWS_REGION)>" >&2; exit 1; }
	$(SAM) build
	mkdir -p $(DIST)
	$(SAM) package --template-file .aws-sam/build/template.yaml --s3-bucket $(SAR_BUCKET) \
		--region $(AWS_REGION) --output-template-file $(DIST)/packaged.yaml
	$(SAM) publish --template $(DIST)/packaged.yaml --region $(AWS_REGION)

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
