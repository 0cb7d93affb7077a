#!/bin/sh
# cxflow's email throughput against a Python aiosmtpd server (uvloop, counting only), next to the
# ceiling: what the same server takes from our SMTP client when the messages are rendered and built
# beforehand. Rounds alternate, ceiling then engine, each against a fresh server that reports how
# many messages it accepted.
#
#   benches/email_aiosmtpd.sh [ROUNDS] [COUNT]          (needs: pip install aiosmtpd uvloop)
#   EMAIL_SEND_BIN=/path/to/email_send-HASH benches/email_aiosmtpd.sh   (another build's bench binary)
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
count=${2:-10000}
python3 -c 'import aiosmtpd, uvloop' 2>/dev/null || { echo "needs aiosmtpd and uvloop: pip install aiosmtpd uvloop" >&2; exit 2; }
bin=${EMAIL_SEND_BIN:-}
[ -n "$bin" ] || bin=$(cargo bench --bench email_send --no-run --message-format=json 2>/dev/null |
    python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "email_send" and m.get("executable"): print(m["executable"])')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One run of the bench binary against a fresh server; prints "RATE ACCEPTED".
one() {
    mkfifo "$tmp/in"
    python3 benches/support/aiosmtpd_sink.py <"$tmp/in" >"$tmp/out" &
    server=$!
    exec 3>"$tmp/in"
    while ! grep -q ready "$tmp/out"; do sleep 0.05; done
    port=$(awk '/ready/ {print $2}' "$tmp/out")
    rate=$("$bin" --bench "$count" --server "$port" "$@" | sed -n 's/.*= \([0-9]*\) msg\/s.*/\1/p')
    exec 3>&-
    wait "$server"
    accepted=$(tail -n 1 "$tmp/out")
    rm -f "$tmp/in" "$tmp/out"
    echo "$rate $accepted"
}

i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    set -- $(one --raw)
    ceiling=$1
    [ "$2" -eq "$count" ] || { echo "the server accepted $2 of $count pre-rendered messages" >&2; exit 1; }
    set -- $(one)
    [ "$2" -eq "$count" ] || { echo "the server accepted $2 of $count messages from the engine" >&2; exit 1; }
    echo "round $i: ceiling (pre-rendered) $ceiling msg/s, engine + run log $1 msg/s = $((100 * $1 / ceiling))% of the ceiling"
done
