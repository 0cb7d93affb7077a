#!/usr/bin/env bash
# Runs the sample workflows on the embedded defaults (SQLite run log in ./cxflow.sqlite, emails to ./outbox/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --locked
cx=${CARGO_TARGET_DIR:-target}/debug/cxflow
$cx validate
for wf in workflows/*.yaml; do
  name=$(basename "$wf" .yaml)
  if [ -x "scripts/demo-$name.sh" ]; then
    "scripts/demo-$name.sh" "$cx"
  else
    $cx run "$name"
  fi
done
$cx runs --limit 10
