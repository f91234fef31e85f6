# keyway: `make run` and `make test` do all set-up on a fresh machine (Rust toolchain, gcc,
# make, python3 and root apt-get). Pingora's dependencies need cmake to build; the tests mint
# JWTs with Python's jwcrypto, an implementation independent of keyway's, receive email
# with Python's aiosmtpd, and start real redis-server and redis-sentinel processes (the
# Redis store and fleet tests); systemd-analyze checks the shipped unit; the README's
# walk-through runs with curl.

SHELL := /bin/bash
export ASAPP_API_ID ?= demo-asapp-api-id
export ASAPP_API_SECRET ?= demo-asapp-api-secret
# Demo values for the shipped config's hosted email section: replace both in production.
export HOSTED_EMAIL_KEY ?= ZGVtby1rZXktbm90LWZvci1wcm9kdWN0aW9uLTAwMDE=
export HOSTED_EMAIL_PASSKEY ?= demo-reviews-passkey-0001

.PHONY: deps run test bench bench-load bench-instructions fuzz soak

deps:
	@command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
	@command -v cmake >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null; }
	@command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }
	@command -v redis-sentinel >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-sentinel >/dev/null; }
	@python3 -c 'import jwcrypto' 2>/dev/null || python3 -m pip install -q --root-user-action=ignore jwcrypto
	@python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install -q --root-user-action=ignore aiosmtpd

# Builds keyway, starts the demo backend on 127.0.0.1:9000, and runs keyway with config.toml.
run: deps
	cargo build --release
	python3 demo/backend.py 127.0.0.1:9000 & backend=$$!; \
	trap 'kill $$backend' EXIT; \
	./target/release/keyway --config config.toml run

# Formatting, lints, unit + integration tests, and one-pass smoke runs of the benchmarks
# (the load benchmark for a second per case, so it cannot rot). One build profile serves
# the tests and the smoke run (`cargo test --all-targets` builds the binary and examples
# too): a second, optimised build of every dependency would cost more than all the tests.
test: deps
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo test --all-targets
	python3 bench/load.py --smoke --profile debug --out target/bench-smoke

# A bounded soak, not in CI (about 20 minutes): 10 minutes of a fixed-rate mix of every route
# kind, sampled every 10 s into bench/soak/soak.csv and soak.svg; then 50 rounds of kill -9
# during a token-creation storm, on SQLite and on Redis (`make test` runs 10).
soak: deps
	cargo build --release --bins --examples
	python3 bench/soak.py
	KEYWAY_KILL_ROUNDS=50 cargo test --test integration acknowledged_tokens_survive_kill_9 -- --nocapture

bench: deps
	cargo bench --bench hot_path
	cargo bench --bench jwt

# The side-by-side load benchmark against nginx and HAProxy (installs them and wrk if missing);
# writes bench/results/results.json and results.svg.
bench-load: deps
	cargo build --release --bins --examples
	python3 bench/load.py

# Instructions per request under callgrind, keyway against bare Pingora: repeatable where
# wall-clock rates are not (installs valgrind if missing).
bench-instructions: deps
	cargo build --release --bins --examples
	python3 bench/instructions.py

# Coverage-guided fuzzing of every parser of untrusted bytes (fuzz/run.sh; FUZZ_CPU_SECONDS of
# CPU per target, default 1800; FUZZ_TARGETS to choose). Not part of `make test`: the same
# invariants run there as property tests.
fuzz: deps
	fuzz/run.sh
