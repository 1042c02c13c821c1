# The targets CI runs (.ci/run calls `make ci`); each works on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv

.PHONY: chart dist mixin mixin-check all build release measure-rss bench bench-smoke soak test test-deps venv node-deps demo lint deny fmt ci clean-venv

all: build

build:
	$(CARGO) build --locked --bins

## The release binary (the one deploy/docker/Dockerfile packages: `make dist`).
release:
	$(CARGO) build --release --locked --bin ses-identity-exporter

## The release binary where deploy/docker/Dockerfile copies it from.
ARCH := $(shell uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')
dist: release
	mkdir -p dist/linux-$(ARCH)
	cp target/release/ses-identity-exporter dist/linux-$(ARCH)/

## Peak RSS at 10,000 identities (the figure behind the Kubernetes resources).
measure-rss:
	@scripts/measure-rss.sh 10000

## Benchmarks (refresh, scrape against nginx, memory, start-up, idle, size) on
## loopback against the SES double; writes docs/benchmarks.md. About 10 minutes.
bench: test-deps
	python3 bench/bench.py

## The same, small and short, so it cannot rot (CI); the report goes to .tmp/.
bench-smoke: test-deps
	@mkdir -p .tmp
	python3 bench/bench.py --smoke --out .tmp/benchmarks-smoke.md

## Soak: 10 minutes of scrapes while the double's faults flip every 30 s; RSS and
## open file descriptors sampled; writes docs/soak.md. Not part of CI.
soak:
	python3 bench/soak.py

## The whole test suite: installs what it needs (Python tools in .venv, node
## packages, Debian's prometheus and alertmanager), then every cargo test: unit,
## golden, config, moto, SES double, deploy artifacts, a real Prometheus, and the
## container image, built around the release binary (hence `release` first).
test: test-deps release
	$(CARGO) test --locked --all-targets --features test-support

test-deps: venv node-deps
	@scripts/install-test-tools.sh

node-deps: tests/k8s-validate/node_modules/.package-lock.json

tests/k8s-validate/node_modules/.package-lock.json: tests/k8s-validate/package-lock.json
	npm ci --prefix tests/k8s-validate --no-audit --no-fund --loglevel=error

venv: $(VENV)/bin/moto_server

$(VENV)/bin/moto_server: requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
	@touch $@

## Renders the monitoring mixin (mixin/) into the files it generates: the rule file,
## the PrometheusRule, the chart's rules and dashboard, both dashboards. Commit the
## result; `mixin-check` (and the tests) fail when a committed file differs from
## what the mixin renders.
mixin: venv
	$(VENV)/bin/python scripts/mixin.py

mixin-check: venv
	$(VENV)/bin/python scripts/mixin.py --check

## Lints the Helm chart and renders it with its default values (Helm's engine from
## helm-python-sdk: Debian has no helm). tests/chart.rs checks what it renders.
chart: venv
	$(VENV)/bin/python scripts/helm.py lint charts/ses-identity-exporter
	$(VENV)/bin/python scripts/helm.py render charts/ses-identity-exporter

## Runs the exporter against the SES double seeded with identities in every state.
demo:
	@scripts/demo.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets --all-features -- -D warnings

## Licences, banned crates and sources of every dependency (deny.toml). The
## RustSec advisory database cannot be fetched on these machines, so advisories are
## not checked here; see SECURITY.md.
CARGO_DENY_VERSION := 0.20.2
deny:
	@command -v cargo-deny >/dev/null 2>&1 || $(CARGO) install --locked cargo-deny@$(CARGO_DENY_VERSION)
	$(CARGO) deny check licenses bans sources

fmt:
	$(CARGO) fmt --all

ci: lint deny test

clean-venv:
	rm -rf $(VENV)

## The release tarball of this machine's architecture, as the release workflow
## publishes it: dist/ses-identity-exporter-<version>.linux-<arch>.tar.gz and its
## .sha256 (scripts/release-tarball.sh; docs/releasing.md).
tarball: release
	scripts/release-tarball.sh

## The CHANGELOG section of Cargo.toml's version: the notes of its GitHub release.
release-notes:
	@scripts/release-notes.sh "$$(scripts/cargo-version.sh)"

.PHONY: tarball release-notes
