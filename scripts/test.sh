#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the real parts the tests use, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --locked --all-targets "$@"
