# The targets CI runs (.ci/run calls `make ci`); each works on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv

.PHONY: all build test test-deps venv demo lint fmt ci clean-venv

all: build

build:
	$(CARGO) build --locked --bins

## The whole test suite: installs what it needs (moto in .venv, promtool), then
## unit, golden, config, moto and SES-double tests.
test: test-deps
	$(CARGO) test --locked --all-targets

test-deps: venv
	@scripts/install-promtool.sh

venv: $(VENV)/bin/moto_server

$(VENV)/bin/moto_server: requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
	@touch $@

## Runs the exporter against the SES double seeded with identities in every state.
demo:
	@scripts/demo.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

ci: lint test

clean-venv:
	rm -rf $(VENV)
