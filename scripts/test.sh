#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the real parts the tests use, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Hygiene is part of the suite: formatting (rustfmt.toml) and every clippy lint, as errors.
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# Benchmarks are run by hand in release mode; here they only have to compile.
cargo test --locked --benches --no-run
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite, also when something failed (then the exit status is cargo's).
awk '/^test result:/ { p += $4; f += $6 } END { printf "cxflow: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
