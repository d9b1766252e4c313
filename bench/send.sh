#!/usr/bin/env bash
# SendChannelMessage throughput and latency (persisted, durable commits: synchronous_commit=on)
# from a loopback client at 1, 16 and 64 requests in flight, RUNS runs each.
#   bench/send.sh [seconds-per-run] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}; runs=${2:-3}
. bench/lib.sh
trap bench_cleanup EXIT
pg_start "${TMPDIR:-/tmp}" >/dev/null
port=$(free_port)
pid=$(start_node "$port"); bench_pids+=("$pid"); wait_port "$port"
dir=$(mktemp -d)
node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers 10 --channels 1 --members 10 --out "$dir"
machine
echo "postgres: synchronous_commit=$(psql "$CARILLON_TEST_DATABASE_URL" -Atc 'show synchronous_commit'), fsync=$(psql "$CARILLON_TEST_DATABASE_URL" -Atc 'show fsync')"
for c in 1 16 64; do
	for r in $(seq "$runs"); do
		build/carillon-rest-bench --port "$port" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" --secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" \
			--method POST --paths "$dir/paths.txt" --bearer "$(cat "$dir/sender.txt")" --expect 201 \
			--body '{"Content":"t={t}","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"c'$c'r'$r'n{n}"}' \
			--connections "$c" --seconds "$secs"
	done
done
echo "messages stored: $(psql "$CARILLON_TEST_DATABASE_URL" -Atc 'select count(*) from carillon.channel_messages')"
