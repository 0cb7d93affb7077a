#!/usr/bin/env bash
# The portal sample needs a portal: start the demo portal that ships with cxflow, run, stop it.
set -euo pipefail
cx=${1:-target/debug/cxflow}
port=${PORTAL_PORT:-8087}
$cx demo-portal --port "$port" &
portal=$!
trap 'kill $portal 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done
PORTAL_USER=${PORTAL_USER:-demo} PORTAL_PASSWORD=${PORTAL_PASSWORD:-demo-pass} \
  $cx run portal-returns --var portal_url="http://127.0.0.1:$port"
# The portal stops with this script, so show what it counted now (its /api/records URL goes with it).
echo "the demo portal counted: $(curl -s "http://127.0.0.1:$port/api/stats" || echo 'nothing (curl failed)')"
