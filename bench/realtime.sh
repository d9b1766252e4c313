#!/usr/bin/env bash
# Real-time benchmarks (issue 4), PostgreSQL and load generators on the same machine:
#   idle     N idle sessions on one node process: server RSS per session, CPU at idle;
#            and 2 processes sharing one port (SO_REUSEPORT) holding twice as many
#   latency  end-to-end latency, REST send -> frame at the receiver, at 1,000 messages/s into
#            100 channels of 10 members (1,000 sessions)
#   fanout   one channel with 10,000 connected members: deliveries/s from one node
#   bench/realtime.sh idle|latency|fanout [sessions] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-idle}; secs=${3:-10}
. bench/lib.sh
trap bench_cleanup EXIT
pg_start "${TMPDIR:-/tmp}" >/dev/null
port=$(free_port)
pid=$(start_node "$port"); bench_pids+=("$pid"); wait_port "$port"
dir=$(mktemp -d)
machine
ws() { # ws PORT SESSIONS USERSFILE -> runs carillon-ws-bench in the background, output to $dir/ws.N
	build/carillon-ws-bench --port "$1" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" --secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" \
		--users "$3" --sessions "$2" --seconds "$secs" --ramp 1000 >"$dir/ws.$4" 2>&1 &
	bench_pids+=("$!")
}
send() { # send CONNECTIONS RATE
	build/carillon-rest-bench --port "$port" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" --secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" \
		--method POST --paths "$dir/paths.txt" --bearer "$(cat "$dir/sender.txt")" --expect 201 \
		--body '{"Content":"t={t}","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"n{n}t{t}"}' \
		--connections "$1" --seconds "$secs" ${2:+--rate "$2"}
}
wait_established() { # wait_established N-FILES
	for _ in $(seq 600); do
		local done=0
		for f in "$@"; do grep -q established= "$f" 2>/dev/null && done=$((done + 1)); done
		[[ $done -eq $# ]] && return 0
		sleep 0.2
	done
	return 1
}
case $mode in
idle)
	n=${2:-19000}; half=$((n / 2))
	node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers 1000 --channels 1 --members 1000 --out "$dir" >/dev/null
	before=$(rss_kb "$pid")
	ws "$port" "$half" "$dir/receivers.txt" 1; ws "$port" $((n - half)) "$dir/receivers.txt" 2
	wait_established "$dir/ws.1" "$dir/ws.2"
	sleep 2
	after=$(rss_kb "$pid")
	cpu0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 5; cpu1=$(awk '{print $14+$15}' /proc/$pid/stat)
	cat "$dir"/ws.1 "$dir"/ws.2 | grep established
	echo "one process: $n sessions, RSS $before kB -> $after kB: $(( (after - before) * 1024 / n )) bytes/session; idle CPU $(( (cpu1 - cpu0) * 10 / 5 )) ms/s"
	# two processes on one port
	pid2=$(start_node "$port"); bench_pids+=("$pid2"); sleep 1
	b1=$(rss_kb "$pid"); b2=$(rss_kb "$pid2")
	for i in 3 4 5 6; do ws "$port" "$half" "$dir/receivers.txt" "$i"; done
	wait_established "$dir"/ws.{3,4,5,6}
	sleep 2
	a1=$(rss_kb "$pid"); a2=$(rss_kb "$pid2")
	echo "two processes on port $port: +$((a1 - b1)) kB and +$((a2 - b2)) kB for $((4 * half)) more sessions (total $((n + 4 * half)))"
	;;
latency)
	node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers 1000 --channels 100 --members 10 --out "$dir" >/dev/null
	ws "$port" 1000 "$dir/receivers.txt" 1
	wait_established "$dir/ws.1"
	send 16 1000
	wait
	cat "$dir/ws.1"
	;;
fanout)
	n=${2:-10000}
	node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers "$n" --channels 1 --members "$n" --out "$dir" >/dev/null
	ws "$port" $((n / 2)) "$dir/receivers.txt" 1; ws "$port" $((n - n / 2)) "$dir/receivers.txt" 2
	wait_established "$dir/ws.1" "$dir/ws.2"
	send 4 ""
	wait
	cat "$dir/ws.1" "$dir/ws.2"
	awk '/deliveries_per_s/{for(i=1;i<=NF;i++) if ($i ~ /^deliveries_per_s=/) {split($i,a,"="); s+=a[2]}} END {print "total deliveries/s: " s}' "$dir"/ws.1 "$dir"/ws.2
	;;
esac
