#!/usr/bin/env bash
# What each part of the write lane's statement costs the rate into one channel, end to end: the
# send floor's server (bench/http_floor.c --database) at 64 in flight, one server per variant of the
# batch's statement (bench/lane-parts.sql; bench_ref.floor_batch, the plain INSERTs of a send's rows,
# and bench_ref.floor_lane, the lane's own carillon_api.send_messages, from bench/lib.sh
# lane_floor_setup), all on one PostgreSQL, ROUNDS rounds of SECONDS each, the order rotated every
# round (this machine's speed moves by 30-50 % within minutes: only rounds side by side compare).
# Prints every round's msg/s (and PostgreSQL's µs a message), then each variant's median msg/s and
# the median of its per-round ratios to the first variant (floor_batch). An idle Carillon process
# listens, as a node does: a variant's NOTIFY wakes it (with no session, it reads nothing).
# A variant NAME@after is NAME with a NOTIFY sent after each commit on a second connection, outside
# the batch's transaction (bench/http_floor.c --notify-after).
#   bench/lane-parts.sh [rounds] [seconds]    (VARIANTS="floor_batch fb_notify ..." to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-8}; secs=${2:-8}
variants=${VARIANTS:-floor_batch fb_notify floor_batch@after fb_locks fb_log floor_lane_quiet floor_lane}
. bench/lib.sh
bench_traps
dir=; bench_one_channel # sets port, pid, dir
# Some messages first: lane_floor_setup copies a stored one and its event.
send() {
	build/carillon-rest-bench --port "$1" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" --secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" \
		--method POST --paths "$dir/one.txt" --bearer "$(cat "$dir/sender.txt")" --expect 201 --connections 64 --seconds "$2" \
		--body '{"Content":"t={t}","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"'"$3"'n{n}"}'
}
send "$port" 3 w >/dev/null
lane_floor_setup "$dir"
psql -X -q -v ON_ERROR_STOP=1 "$CARILLON_TEST_DATABASE_URL" -f bench/lane-parts.sql
declare -A vport rps pgc
read -ra vs <<<"$variants"
for v in "${vs[@]}"; do
	vport[$v]=$(free_port)
	extra=(); [[ $v != *@after ]] || extra=(--notify-after carillon_events)
	build/carillon-http-floor --port "${vport[$v]}" --database "$CARILLON_TEST_DATABASE_URL" --call "bench_ref.${v%@after}" \
		"${extra[@]}" &
	bench_pids+=("$!"); wait_port "${vport[$v]}"
done
tick_us=$((1000000 / $(getconf CLK_TCK)))
n=${#vs[@]}
for r in $(seq "$rounds"); do
	line="round $r:"
	for k in $(seq 0 $((n - 1))); do
		v=${vs[$(((k + r) % n))]}
		p0=$(pg_cpu_ticks)
		bg_run "$dir/out" send "${vport[$v]}" "$secs" "r${r}$v"
		p1=$(pg_cpu_ticks); out=$(<"$dir/out")
		rps[$v,$r]=$(field rps "$out")
		pgc[$v,$r]=$(awk -v t=$((p1 - p0)) -v n="$(field requests "$out")" -v u="$tick_us" 'BEGIN {if (n > 0) printf "%.0f", t * u / n}')
	done
	for v in "${vs[@]}"; do line+=" $v=${rps[$v,$r]} (${pgc[$v,$r]} µs)"; done
	echo "$line"
done
echo "medians of $rounds rounds of $secs s (msg/s; the per-round ratio to ${vs[0]}):"
for v in "${vs[@]}"; do
	all=(); rat=()
	for r in $(seq "$rounds"); do
		all+=("${rps[$v,$r]}"); rat+=("$(ratio "${rps[$v,$r]}" "${rps[${vs[0]},$r]}")")
	done
	echo "  $v: $(median "${all[@]}") msg/s, x$(median "${rat[@]}") (${rat[*]})"
done
