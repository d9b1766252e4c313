#!/usr/bin/env bash
# Real-time benchmarks (issue 4), PostgreSQL and load generators on the same machine:
#   idle     N idle sessions on one node process: server RSS per session, CPU at idle;
#            and 2 processes sharing one port (SO_REUSEPORT) holding twice as many
#   latency  end-to-end latency, REST send -> frame at the receiver, at 1,000 messages/s into
#            100 channels of 10 members (1,000 sessions); the reference, measured in the same run:
#            pgbench -R 1000 -c 16 on the same PostgreSQL, one durable one-row INSERT per transaction
#            (bench/lib.sh pgref_setup), its p50 and p99 from its per-transaction log; ratio= for
#            p50 and p99 (Carillon end-to-end / pgbench)
#   fanout   one channel with 10,000 connected members: deliveries/s from one node, and the p99 of a
#            paced REST read (DescribeAppInstanceUser, 50/s) during the fan-out next to the same on
#            the idle node
#   connect  N sessions (default 19,000) opened as fast as one generator can (1,000 handshakes in
#            flight): sessions/s, next to the reference measured in the same run, the rate of bare
#            loopback TCP connect+accept+close, and ratio= (TCP connects per session's time)
#   haproxy-latency, haproxy-fanout: the same through HAProxy in front of 2 nodes (deploy/haproxy.cfg
#            without TLS: plain HTTP frontend, leastconn, /healthz checks); sessions and sends
#            both go through the balancer, so writes on one node reach sessions on the other
#   bench/realtime.sh idle|latency|fanout|connect|haproxy-latency|haproxy-fanout [sessions] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-idle}; secs=${3:-10}
. bench/lib.sh
bench_traps
pg_start "${TMPDIR:-/tmp}" >/dev/null
bench_pg_settings # the embedded cluster's settings, BENCH_PG_SETTINGS / BENCH_PG_STATEMENTS, as bench/send.sh
port=$(free_port)
mport=$(free_port) # the node's /metrics: frames it wrote (fanout)
pid=$(start_node "$port" CARILLON_METRICS_LISTEN=127.0.0.1:$mport); bench_pids+=("$pid"); wait_port "$port"
dir=; bench_tmpdir # sets dir
metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 == m {printf "%d", $2}'; }
frames_sent() { metric carillon_session_frames_sent_total; }
bytes_sent() { metric carillon_session_bytes_sent_total; }
machine
ws() { # ws PORT SESSIONS USERSFILE -> runs carillon-ws-bench in the background, output to $dir/ws.N
	build/carillon-ws-bench --port "$1" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" --secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" \
		--users "$3" --sessions "$2" --seconds "$secs" --ramp 1000 --bind "127.0.0.$((10 + $4))" >"$dir/ws.$4" 2>&1 &
	bench_pids+=("$!")
	ws_pids+=("$!")
}
ws_pids=()
send() { # send CONNECTIONS RATE
	build/carillon-rest-bench --port "$port" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" --secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" \
		--method POST --paths "$dir/paths.txt" --bearer "$(cat "$dir/sender.txt")" --expect 201 \
		--body '{"Content":"t={t}","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"n{n}t{t}"}' \
		--connections "$1" --seconds "$secs" ${2:+--rate "$2"}
}
paced_rest() { # paced_rest SECONDS -> p99 of DescribeAppInstanceUser at 50 requests/s on one connection
	local arn path
	arn=$(head -1 "$dir/receivers.txt")
	path="/app-instance-users/$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$arn")"
	build/carillon-rest-bench --port "$port" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" --secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" \
		--path "$path" --connections 1 --rate 50 --seconds "$1" | sed -n 's/.*p50_ms=\([^ ]*\) p99_ms=\([^ ]*\).*/p50_ms=\1 p99_ms=\2/p'
}
perf_start() { # with BENCH_PERF=FILE: a call-graph profile of the node over the measured phase
	[[ -n ${BENCH_PERF:-} ]] || return 0
	perf record -g -q -p "$pid" -o "$BENCH_PERF" >/dev/null 2>&1 &
	perf_pid=$!
	sleep 0.3
}
perf_stop() { [[ -n ${perf_pid:-} ]] && kill -INT "$perf_pid" && wait "$perf_pid" || true; }
wait_established() { # wait_established N-FILES
	for _ in $(seq 600); do
		local done=0
		for f in "$@"; do grep -q established= "$f" 2>/dev/null && done=$((done + 1)); done
		[[ $done -eq $# ]] && return 0
		sleep 0.2
	done
	return 1
}
if [[ $mode == haproxy-* ]]; then
	# A second node on the same PostgreSQL, and HAProxy in front of both; everything goes through it.
	port2=$(free_port)
	pid2=$(start_node "$port2"); bench_pids+=("$pid2"); wait_port "$port2"
	lb=$(free_port)
	cat >"$dir/haproxy.cfg" <<CFG
global
    maxconn 9800 # 2 fds per proxied connection under the 20,000 open-file limit
defaults
    mode http
    timeout connect 5s
    timeout http-request 10s
    timeout http-keep-alive 60s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend carillon
    bind 127.0.0.1:$lb
    default_backend carillon
backend carillon
    balance leastconn
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 2s maxconn 20000
    server node1 127.0.0.1:$port
    server node2 127.0.0.1:$port2
CFG
	haproxy -f "$dir/haproxy.cfg" -db >/dev/null 2>&1 &
	bench_pids+=("$!")
	wait_port "$lb"
	sleep 2.5 # first health checks
	port=$lb
	mode=${mode#haproxy-}
	echo "through HAProxy on port $lb in front of 2 nodes"
fi
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
	# Two fresh processes sharing the port (SO_REUSEPORT), twice the sessions (each process may hold
	# ~19,000 under the 20,000 open-file limit); the kernel spreads new connections over both.
	# Run with seconds >= 10: sessions must stay open while idle CPU is measured.
	for _ in $(seq 600); do grep -q frames= "$dir/ws.1" && grep -q frames= "$dir/ws.2" && break; sleep 0.2; done
	kill "$pid"; sleep 2
	pid=$(start_node "$port"); bench_pids+=("$pid")
	pid2=$(start_node "$port"); bench_pids+=("$pid2"); sleep 1.5
	b1=$(rss_kb "$pid"); b2=$(rss_kb "$pid2")
	for i in 3 4 5 6; do ws "$port" "$half" "$dir/receivers.txt" "$i"; done
	wait_established "$dir"/ws.{3,4,5,6}
	sleep 2
	a1=$(rss_kb "$pid"); a2=$(rss_kb "$pid2")
	cat "$dir"/ws.{3,4,5,6} | grep established
	echo "two processes on port $port: $((4 * half)) sessions; RSS +$((a1 - b1)) kB and +$((a2 - b2)) kB: $(( (a1 - b1 + a2 - b2) * 1024 / (4 * half) )) bytes/session"
	;;
latency)
	node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers 1000 --channels 100 --members 10 --out "$dir" >/dev/null
	ws "$port" 1000 "$dir/receivers.txt" 1
	wait_established "$dir/ws.1"
	statements_reset
	g0=$(cpu_ticks "$pid"); p0=$(pg_cpu_ticks)
	send 16 1000 >"$dir/send.out"
	g1=$(cpu_ticks "$pid"); p1=$(pg_cpu_ticks)
	cat "$dir/send.out"
	# CPU per message while sending (its write, its ten deliveries, the listener's share)
	n=$(field requests "$(<"$dir/send.out")"); tck=$(getconf CLK_TCK)
	echo "cpu: gateway_us_per_msg=$(( (g1 - g0) * 1000000 / tck / (n > 0 ? n : 1) ))" \
		"postgres_us_per_msg=$(( (p1 - p0) * 1000000 / tck / (n > 0 ? n : 1) ))"
	wait "${ws_pids[@]}"
	cat "$dir/ws.1"
	statements_report
	pgref_setup "$dir"
	ref=$(pgref_latency "$dir" 1000 16 "$secs")
	echo "reference: pgbench -R 1000 -c 16 -j 2 -T $secs, one durable one-row INSERT per transaction: $ref"
	e2e=$(grep frames= "$dir/ws.1")
	echo "ratio=$(ratio "$(field p50_ms "$e2e")" "$(field p50_ms "$ref")") for p50," \
		"ratio=$(ratio "$(field p99_ms "$e2e")" "$(field p99_ms "$ref")") for p99 (Carillon end-to-end / pgbench)"
	;;
fanout)
	n=${2:-10000}
	node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers "$n" --channels 1 --members "$n" --out "$dir" >/dev/null
	idle_rest=$(paced_rest 3) # the idle node: before the sessions connect
	# the generators outlive the send window, so the node's CPU and frame counts are read over the
	# window alone (no session closes in it)
	secs0=$secs; secs=$((secs0 + 5))
	ws "$port" $((n / 2)) "$dir/receivers.txt" 1; ws "$port" $((n - n / 2)) "$dir/receivers.txt" 2
	secs=$secs0
	wait_established "$dir/ws.1" "$dir/ws.2"
	perf_start
	paced_rest "$secs" >"$dir/rest.during" &
	rest_pid=$!
	cpu0=$(awk '{print $14+$15}' /proc/$pid/stat); sent0=$(frames_sent); bytes0=$(bytes_sent)
	send 4 "" >"$dir/send.out"
	cpu1=$(awk '{print $14+$15}' /proc/$pid/stat); sent1=$(frames_sent); bytes1=$(bytes_sent)
	perf_stop
	wait "${ws_pids[@]}"
	wait "$rest_pid"
	cat "$dir/send.out" "$dir/ws.1" "$dir/ws.2"
	awk '/deliveries_per_s/{for(i=1;i<=NF;i++) if ($i ~ /^deliveries_per_s=/) {split($i,a,"="); s+=a[2]}} END {print "total deliveries/s: " s}' "$dir"/ws.1 "$dir"/ws.2
	frames=$((sent1 - sent0))
	us=$(awk -v c=$(( (cpu1 - cpu0) * 10 )) -v f="$frames" 'BEGIN {if (f) printf "%.2f", c * 1000 / f}')
	echo "server CPU: $(( (cpu1 - cpu0) * 10 )) ms for $frames frames written in the send window: $us us/delivery"
	# The floor: one send() of a frame of the same size to each of n loopback connections in turn
	bytes=$(awk -v f="$frames" -v b="$((bytes1 - bytes0))" 'BEGIN {if (f) printf "%d", b / f + 4; else print 770}')
	floor=$(build/carillon-ws-bench --send-floor "$n" --frame-bytes "$bytes" --seconds 2)
	echo "reference: $floor"
	fcpu=$(sed -n 's/.*send_cpu_us=\([^ ]*\).*/\1/p' <<<"$floor")
	echo "CPU per delivery: $us us; one loopback send of $bytes bytes: $fcpu us; ratio=$(awk -v a="$us" -v b="$fcpu" 'BEGIN {if (b > 0) printf "%.2f", a / b}') (a delivery costs this many bare sends)"
	idle_p99=$(sed -n 's/.*p99_ms=\([^ ]*\).*/\1/p' <<<"$idle_rest")
	busy_p99=$(sed -n 's/.*p99_ms=\([^ ]*\).*/\1/p' "$dir/rest.during")
	echo "paced REST read (50/s): idle $idle_rest; during the fan-out $(cat "$dir/rest.during"); ratio=$(awk -v a="$busy_p99" -v b="$idle_p99" 'BEGIN {if (b > 0) printf "%.1f", a / b}') (p99 during / p99 idle)"
	;;
connect)
	n=${2:-19000}; users=$(( (n + 18) / 19 ))
	node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers "$users" --channels 1 --members "$users" --out "$dir" >/dev/null
	ref=$(build/carillon-ws-bench --tcp-reference "$n" --bind 127.0.0.9)
	secs=1
	perf_start
	cpu0=$(awk '{print $14+$15}' /proc/$pid/stat)
	ws "$port" "$n" "$dir/receivers.txt" 1
	wait_established "$dir/ws.1"
	cpu1=$(awk '{print $14+$15}' /proc/$pid/stat)
	perf_stop
	wait "${ws_pids[@]}"
	grep established "$dir/ws.1"
	# the node's CPU per session established (read within 0.2 s of the last one): less sensitive to
	# other load on the box than the wall-clock rate
	echo "server CPU: $(( (cpu1 - cpu0) * 10 )) ms for $n sessions: $(awk -v c=$(( (cpu1 - cpu0) * 10 )) -v n="$n" 'BEGIN {printf "%.0f", c * 1000 / n}') us/session"
	echo "reference: $ref"
	rate=$(sed -n 's/.*sessions_per_s=\([0-9]*\).*/\1/p' "$dir/ws.1")
	tcp=$(sed -n 's/.*tcp_connect_close_per_s=\([0-9]*\).*/\1/p' <<<"$ref")
	echo "sessions/s: $rate; loopback TCP connect+close/s: $tcp; ratio=$(awk -v a="$tcp" -v b="$rate" 'BEGIN {if (b > 0) printf "%.1f", a / b}') (a session costs this many bare TCP connections)"
	;;
esac
