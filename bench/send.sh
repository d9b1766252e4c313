#!/usr/bin/env bash
# SendChannelMessage throughput and latency (persisted, durable commits: synchronous_commit=on)
# from a loopback client at 1, 16 and 64 requests in flight, into one channel and spread over 100
# channels, RUNS runs each; medians over the runs. The reference, measured in the same invocation on
# the same PostgreSQL with the same durability: pgbench running a one-row durable INSERT per
# transaction (bench/lib.sh pgref_setup), best of 16 and 64 clients; ratio= is Carillon's msg/s at
# 64 in flight into one channel over pgbench's best tps. The cpu: line gives the CPU per message of
# the gateway and of PostgreSQL at 64 in flight into one channel, and PostgreSQL's per reference
# transaction; every run line says how busy the write lane was (batches, their size and duration).
# The floor: and budget: lines put the ratio against what this box can do at all: the same load
# generator against a server that only answers (bench/http_floor.c), PostgreSQL's CPU per row of a
# batched INSERT, and the CPU per message that a ratio of 1.5 leaves on the two cores. The lane: and
# lane vs floor: lines put the write lane (one channel's batches commit one after the other on one
# connection) against the same rows written by plain INSERTs over one connection. The send floor:
# line is the whole path's floor, end to end on the same two cores: the same load generator
# against a server that answers each request once a batch storing its rows has committed, the
# requests that came while one was in flight leaving together as the next (bench/http_floor.c
# --database: no auth, JSON, checks or notification; the rows by plain INSERTs); its ratio is what
# a server that does nothing else reaches on this box with Carillon's rows, one channel's batches
# one at a time.
# The line after it puts the lane's own statement behind the same server (bench_ref.floor_lane; its
# events go to the log and its NOTIFY wakes the Carillon process, which, with no session, reads
# nothing, as for its own): between the two, what the lane's SQL costs; between it and Carillon,
# what the gateway costs (bench/lane-parts.sh weighs the statement's parts).
#   bench/send.sh [seconds-per-run] [runs]
# The long mode: one Carillon process, never restarted, 64 in flight into one channel for MINUTES
# minutes (default 10); prints the rate of every minute (and CPU per message in the gateway and in
# PostgreSQL, and the table statistics), flat= (last minute / first minute), and the statistics of
# the hot tables and the sizes of their indexes at the start and the end. Its reference, measured
# after every minute: the same load for 15 s through a second Carillon process into a second
# database of the same PostgreSQL, emptied of messages and events before each sample, so always
# as small as the run's first minute found it; flat_vs_reference= is flat= over the reference's
# last / first sample: what the growth of the tables costs, without the machine's own drift over
# the run (this box's speed moves by 15-50 % for minutes at a time, the gateway's CPU a message
# with it, whose work does not grow with the tables).
#   bench/send.sh long [minutes]
# The throwaway PostgreSQL runs with the settings of the embedded cluster (bench/lib.sh,
# bench_pg_settings); BENCH_PG_SETTINGS="shared_buffers=1GB ..." changes them for an experiment.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == long ]]; then
	mode=long; minutes=${2:-10}
else
	mode=runs; secs=${1:-5}; runs=${2:-3}
fi
. bench/lib.sh
bench_traps
pg_start "${TMPDIR:-/tmp}" >/dev/null
bench_pg_settings
port=$(free_port); mport=$(free_port)
pid=$(start_node "$port" CARILLON_METRICS_LISTEN="127.0.0.1:$mport"); bench_pids+=("$pid"); wait_port "$port"
dir=; bench_tmpdir # sets dir
node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers 10 --channels 100 --members 10 --out "$dir"
head -1 "$dir/paths.txt" >"$dir/one.txt"
machine
q() { psql -X -At "$CARILLON_TEST_DATABASE_URL" -c "$1"; }
echo "postgres: $(q 'select version()' | cut -d' ' -f1-2), synchronous_commit=$(q 'show synchronous_commit'), fsync=$(q 'show fsync'), shared_buffers=$(q 'show shared_buffers')"

# send CONNECTIONS PATHS-FILE SECONDS TOKEN-TAG [PORT SETUP-DIR]: one carillon-rest-bench run (against
# the node on PORT as the sender set up in SETUP-DIR; default: the node above); its output line in
# $line (not echoed into a command substitution: a signal to the script would wait for the subshell)
send() {
	bg_run "$dir/send.out" build/carillon-rest-bench --port "${5:-$port}" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" \
		--secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" --method POST --paths "$2" --bearer "$(cat "${6:-$dir}/sender.txt")" \
		--expect 201 --connections "$1" --seconds "$3" \
		--body '{"Content":"t={t}","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"'"$4"'n{n}"}'
	line=$(<"$dir/send.out")
}

# The hot tables: row versions, vacuum runs, sizes (kB) of the heap and of each index, and the
# blocks read from outside shared buffers (read) or found in them (hit).
hot="'channels','channel_messages','events'"
table_stats() {
	q "select format('  %s: live=%s dead=%s autovacuum=%s autoanalyze=%s vacuum=%s heap=%s kB', relname,
	        n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, vacuum_count, pg_relation_size(relid) / 1024)
	     from pg_stat_user_tables where schemaname = 'carillon' and relname in ($hot) order by relname"
	q "select format('    index %s: %s kB, blocks read=%s hit=%s', indexrelname, pg_relation_size(indexrelid) / 1024, idx_blks_read, idx_blks_hit)
	     from pg_statio_user_indexes where schemaname = 'carillon' and relname in ($hot) order by relname, indexrelname"
	q "select format('    heap %s: blocks read=%s hit=%s', relname, heap_blks_read, heap_blks_hit)
	     from pg_statio_user_tables where schemaname = 'carillon' and relname in ($hot) order by relname"
}
# Cumulative server counters: WAL bytes, full-page images, checkpoints, blocks read (not in shared
# buffers), dirty buffers a backend had to write itself; wal_stats_delta A B N prints them per message.
wal_stats() {
	q "select w.wal_bytes, w.wal_fpi, b.checkpoints_timed + b.checkpoints_req, d.blks_read, b.buffers_backend
	     from pg_stat_wal w, pg_stat_bgwriter b, pg_stat_database d where d.datname = current_database()"
}
wal_stats_delta() {
	awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {split(a, x, "|"); split(b, y, "|"); if (n < 1) n = 1
		printf "wal_bytes/msg=%.0f fpi/msg=%.2f checkpoints=%d blks_read/msg=%.2f backend_writes/msg=%.2f",
			(y[1] - x[1]) / n, (y[2] - x[2]) / n, y[3] - x[3], (y[4] - x[4]) / n, (y[5] - x[5]) / n}'
}
# The write lane (the pool's write lane: one group-commit batch at a time, sql_handler.c; one channel is one lane), from
# the node's metrics: "batches items seconds" so far; lane_delta A B SECONDS prints the batches'
# mean size and duration and the share of the time the lane was busy.
lane_stats() {
	curl -s "http://127.0.0.1:$mport/metrics" | awk '$1 == "carillon_write_batches_total" {b = $2}
		$1 == "carillon_write_batch_size_sum" {n = $2} $1 == "carillon_write_batch_duration_seconds_sum" {t = $2}
		END {printf "%d %d %.6f\n", b, n, t}'
}
lane_delta() {
	awk -v a="$1" -v b="$2" -v s="$3" 'BEGIN {split(a, x, " "); split(b, y, " "); nb = y[1] - x[1]; if (nb < 1) nb = 1
		printf "write lane: %d batches of %.1f messages, %.2f ms each, busy %.0f%% of the time", nb, (y[2] - x[2]) / nb,
			(y[3] - x[3]) * 1000 / nb, (y[3] - x[3]) * 100 / s}'
}
# A short line per minute: the hot channel's row versions and the event log's rows.
minute_stats() {
	q "select format('channels dead=%s av=%s | messages live=%s | events live=%s dead=%s av=%s',
	        max(n_dead_tup) filter (where relname = 'channels'), max(autovacuum_count) filter (where relname = 'channels'),
	        max(n_live_tup) filter (where relname = 'channel_messages'),
	        max(n_live_tup) filter (where relname = 'events'), max(n_dead_tup) filter (where relname = 'events'),
	        max(autovacuum_count) filter (where relname = 'events'))
	     from pg_stat_user_tables where schemaname = 'carillon' and relname in ($hot)"
}

if [[ $mode == long ]]; then
	# The reference: a second database and a second process, one channel of one member.
	q 'create database carillon_ref' >/dev/null
	ref_url=${CARILLON_TEST_DATABASE_URL/dbname=carillon/dbname=carillon_ref}
	ref_port=$(free_port)
	ref_pid=$(start_node "$ref_port" CARILLON_DATABASE_URL="$ref_url"); bench_pids+=("$ref_pid"); wait_port "$ref_port"
	main_dir=$dir; bench_tmpdir; ref_dir=$dir; dir=$main_dir
	node bench/setup.mjs --endpoint "http://127.0.0.1:$ref_port" --receivers 1 --channels 1 --members 1 --out "$ref_dir" >/dev/null
	head -1 "$ref_dir/paths.txt" >"$ref_dir/one.txt"
	# ref_sample TAG: empties the reference database's messages and events, then 15 s of the same
	# load; sets ref_rps
	ref_sample() {
		psql -X -q -v ON_ERROR_STOP=1 "$ref_url" -c 'truncate carillon.channel_messages, carillon.events' >/dev/null
		send 64 "$ref_dir/one.txt" 15 "$1" "$ref_port" "$ref_dir"
		ref_rps=$(field rps "$line")
	}
	echo "long run: 64 in flight, one channel, one process (pid $pid), $minutes minute(s);" \
		"reference after each minute: 15 s of the same into an emptied second database (pid $ref_pid)"
	echo "at the start:"; table_stats
	rates=(); ref_rates=(); ref_ratios=(); db_gw=()
	for m in $(seq "$minutes"); do
		g0=$(cpu_ticks "$pid"); p0=$(pg_cpu_ticks); w0=$(wal_stats); l0=$(lane_stats)
		send 64 "$dir/one.txt" 60 "L${m}"
		g1=$(cpu_ticks "$pid"); p1=$(pg_cpu_ticks); w1=$(wal_stats); l1=$(lane_stats)
		rps=$(field rps "$line"); n=$(field requests "$line"); rates+=("$rps")
		tick_us=$((1000000 / $(getconf CLK_TCK)))
		gcpu=$(awk -v t=$((g1 - g0)) -v n="$n" -v u="$tick_us" 'BEGIN {if (n) printf "%.0f", t * u / n}')
		pcpu=$(awk -v t=$((p1 - p0)) -v n="$n" -v u="$tick_us" 'BEGIN {if (n) printf "%.0f", t * u / n}')
		db_gw+=("$(ratio "$pcpu" "$gcpu")")
		msg="minute $m: msg/s=$rps p50_ms=$(field p50_ms "$line") p99_ms=$(field p99_ms "$line") errors=$(field errors "$line")
			cpu_us/msg: gateway=$gcpu postgres=$pcpu (${db_gw[-1]}x the gateway's)
			| $(wal_stats_delta "$w0" "$w1" "$n") | $(lane_delta "$l0" "$l1" 60) | $(minute_stats)"
		ref_sample "R${m}"; ref_rates+=("$ref_rps"); ref_ratios+=("$(ratio "$rps" "$ref_rps")")
		printf '%s\n' "$(tr -s '\n\t' '  ' <<<"$msg | reference: msg/s=$ref_rps, ratio=${ref_ratios[-1]}" | sed 's/ *$//')"
	done
	echo "at the end:"; table_stats
	statements_report
	echo "messages stored: $(q 'select count(*) from carillon.channel_messages')"
	echo "flat=$(ratio "${rates[-1]}" "${rates[0]}") (last minute $(printf %s "${rates[-1]}") msg/s / first minute ${rates[0]} msg/s)"
	echo "reference: ${ref_rates[*]} msg/s (each after its minute)"
	echo "flat_vs_reference=$(awk -v a="${rates[-1]}" -v b="${rates[0]}" -v c="${ref_rates[-1]}" -v d="${ref_rates[0]}" \
		'BEGIN {if (b > 0 && c > 0 && d > 0) printf "%.2f", (a / c) / (b / d); else print "n/a"}')" \
		"(last minute / its reference over first minute / its reference)"
	# The same, less exposed to one slow minute: medians of the first and the last three minutes.
	k=$((minutes < 3 ? minutes : 3))
	a=$(median "${ref_ratios[@]:0:k}"); b=$(median "${ref_ratios[@]: -k}")
	echo "ratio to the reference, median of the first $k minute(s) -> of the last $k: $a -> $b (x$(ratio "$b" "$a"))"
	# PostgreSQL's CPU a message over the gateway's, measured over the same seconds: the gateway's
	# work does not grow with the tables, so this moves with what the growth costs the database and
	# little with the machine's speed.
	a=$(median "${db_gw[@]:0:k}"); b=$(median "${db_gw[@]: -k}")
	echo "postgres CPU a message over the gateway's, median of the first $k minute(s) -> of the last $k: $a -> $b (x$(ratio "$b" "$a"))"
	exit 0
fi

pgref_setup "$dir"
declare -A rps p50 p99
refs=(); gw_cpu=(); pg_cpu=(); ref_cpu=(); cl_cpu=(); fl_rps=(); fl_cpu=(); fl_cl=(); pgb_cpu=()
tick_us=$((1000000 / $(getconf CLK_TCK)))
# The floors under the ratio, both on the same two cores as everything else:
# - HTTP: the same load generator, signing the same requests, at 64 in flight against a server
#   that only answers (bench/http_floor.c: one recv and one send a request, no auth, JSON or
#   database); its CPU per request is what any HTTP/1.1 gateway pays at least, the client's is
#   spent whatever the server does.
# - PostgreSQL: pgbench inserting the reference row 16 at a time (one statement, one durable
#   commit: the group commit at its simplest), PostgreSQL's CPU per row.
# floor_run: sets line (the load generator's output), fcpu (server µs/request), bcpu (postgres
# µs/row)
floor_port=$(free_port)
build/carillon-http-floor --port "$floor_port" & floor_pid=$!; bench_pids+=("$floor_pid"); wait_port "$floor_port"
cat >"$dir/pgbatch.sql" <<-'SQL'
	\set n random(1, 9000000000000000)
	insert into bench_ref.messages (id, n, at, body) select md5(:n::text || ':' || :client_id::text || ':' || g), :n + g, now(), 'bench reference row: about one hundred bytes of message content, as a short chat message has it..' from generate_series(1, 16) g;
SQL
floor_run() {
	local f0 f1 p0 p1 t
	f0=$(cpu_ticks "$floor_pid")
	bg_run "$dir/floor.out" build/carillon-rest-bench --port "$floor_port" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" \
		--secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" --method POST --paths "$dir/one.txt" --bearer "$(cat "$dir/sender.txt")" \
		--expect 201 --connections 64 --seconds "$secs" \
		--body '{"Content":"t={t}","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"f{n}"}'
	f1=$(cpu_ticks "$floor_pid"); line=$(<"$dir/floor.out")
	fcpu=$(per $((f1 - f0)) "$(field requests "$line")")
	fl_rps+=("$(field rps "$line")"); fl_cpu+=("$fcpu"); fl_cl+=("$(field client_cpu_us "$line")")
	pgref_truncate
	p0=$(pg_cpu_ticks)
	bg_run "$dir/pgbatch.out" pgbench -n -f "$dir/pgbatch.sql" -c 16 -j 2 -T "$secs" "$CARILLON_TEST_DATABASE_URL" 2>"$dir/pgbench.err" ||
		{ cat "$dir/pgbench.err" >&2; return 1; }
	p1=$(pg_cpu_ticks)
	t=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/pgbatch.out" | head -1)
	bcpu=$(per $((p1 - p0)) "$(awk -v t="$t" -v s="$secs" 'BEGIN {printf "%.0f", t * s * 16}')")
	pgb_cpu+=("$bcpu")
}
# per TICKS COUNT: microseconds of CPU per item
per() { awk -v t="$1" -v n="$2" -v u="$tick_us" 'BEGIN {if (n > 0) printf "%.0f", t * u / n; else print 0}'; }
# The write lane's backend (the connection whose last statement is the batch call) and its time on
# a CPU and waiting for one (/proc/PID/schedstat, ns), so that the lane's time a message splits into
# its own CPU, a CPU it waited for, and the rest (its commit's flush, waiting for the next batch).
# (Its batches are carillon_api.send_messages calls, or invoke_batch_rows for a batch of up to eight;
# of several lanes, the one that ran last.)
lane_pid() {
	q "select pid from pg_stat_activity where (query like '%invoke_batch_rows%' or query like '%carillon_api.send_messages%')
	     and pid <> pg_backend_pid() order by state_change desc nulls last limit 1"
}
sched() { awk '{print $1, $2}' "/proc/$1/schedstat" 2>/dev/null || echo "0 0"; }
# The lane's floor (bench/lib.sh lane_floor_setup, after the runs: it copies a stored message and
# event): lane_floor_run sets lf_ms (a batch), lf_cpu (PostgreSQL µs a message).
lf_ms=(); lf_cpu=()
# (Its backend's CPU from its schedstat over the run but its first and last half second: the
# whole server's, as the cpu: line takes it, would count autovacuum's passes over the tables the
# runs have just filled.)
lane_floor_run() {
	local p fp="" f0 f1 t0 t1 t
	pgbench -n -f "$dir/lanefloor.sql" -c 1 -T "$secs" "$CARILLON_TEST_DATABASE_URL" >"$dir/lanefloor.out" 2>"$dir/pgbench.err" &
	p=$!; bench_pids+=("$p")
	for _ in $(seq 100); do
		fp=$(q "select pid from pg_stat_activity where application_name = 'pgbench' limit 1"); [[ -z $fp ]] || break; sleep 0.05
	done
	sleep 0.5; f0=$(sched "$fp"); t0=$(date +%s%N)
	sleep "$(awk -v s="$secs" 'BEGIN {print (s > 2 ? s - 1.5 : 0.5)}')"
	f1=$(sched "$fp"); t1=$(date +%s%N)
	wait "$p" || { cat "$dir/pgbench.err" >&2; return 1; }
	t=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/lanefloor.out" | head -1)
	lf_ms+=("$(awk -v t="$t" 'BEGIN {if (t > 0) printf "%.2f", 1000 / t; else print 0}')")
	lf_cpu+=("$(awk -v a="$f0" -v b="$f1" -v t="$t" -v ns=$((t1 - t0)) 'BEGIN {split(a, x, " "); split(b, y, " ");
		n = t * ns / 1e9 * 31; if (n > 0) printf "%.0f", (y[1] - x[1]) / 1000 / n; else print 0}')")
}
lane_run=(); lane_wait=(); lane_ms=(); lane_n=()
# The send floor (after lane_floor_setup: bench_ref.floor_batch), and the same with the lane's own
# statement behind it (bench_ref.floor_lane: carillon_api.send_messages). send_floor_run FUNCTION
# sets line, sf_r (msg/s), sf_c (its server's µs a request), sf_p (PostgreSQL's µs a message).
sf_rps=(); sf_cpu=(); sf_pg=(); sl_rps=(); sl_cpu=(); sl_pg=()
declare -A sf_port sf_pid
send_floor_run() {
	local f0 f1 p0 p1 n
	if [[ -z ${sf_port[$1]:-} ]]; then
		sf_port[$1]=$(free_port)
		build/carillon-http-floor --port "${sf_port[$1]}" --database "$CARILLON_TEST_DATABASE_URL" --call "$1" &
		sf_pid[$1]=$!; bench_pids+=("${sf_pid[$1]}"); wait_port "${sf_port[$1]}"
	fi
	f0=$(cpu_ticks "${sf_pid[$1]}"); p0=$(pg_cpu_ticks)
	bg_run "$dir/sfloor.out" build/carillon-rest-bench --port "${sf_port[$1]}" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" \
		--secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" --method POST --paths "$dir/one.txt" --bearer "$(cat "$dir/sender.txt")" \
		--expect 201 --connections 64 --seconds "$secs" \
		--body '{"Content":"t={t}","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"s{n}"}'
	f1=$(cpu_ticks "${sf_pid[$1]}"); p1=$(pg_cpu_ticks); line=$(<"$dir/sfloor.out"); n=$(field requests "$line")
	sf_r=$(field rps "$line"); sf_c=$(per $((f1 - f0)) "$n"); sf_p=$(per $((p1 - p0)) "$n")
}
# ref_run CLIENTS: one pgbench reference run; sets tps and cpu (PostgreSQL's CPU per transaction)
ref_run() {
	local p0 p1
	p0=$(pg_cpu_ticks); tps=$(pgref_tps "$dir" "$1" "$secs"); p1=$(pg_cpu_ticks)
	cpu=$(per $((p1 - p0)) "$(awk -v t="$tps" -v s="$secs" 'BEGIN {printf "%.0f", t * s}')")
}
for r in $(seq "$runs"); do
	for ch in 1 100; do
		paths=$dir/one.txt; [[ $ch == 1 ]] || paths=$dir/paths.txt
		for c in 1 16 64; do
			lp=$(lane_pid); s0=$(sched "$lp")
			g0=$(cpu_ticks "$pid"); p0=$(pg_cpu_ticks); l0=$(lane_stats)
			send "$c" "$paths" "$secs" "c${c}h${ch}r${r}"
			g1=$(cpu_ticks "$pid"); p1=$(pg_cpu_ticks); l1=$(lane_stats); s1=$(sched "$lp")
			echo "run $r, $c in flight, $ch channel(s): $line; $(lane_delta "$l0" "$l1" "$secs")"
			rps[$c,$ch]+=" $(field rps "$line")"; p50[$c,$ch]+=" $(field p50_ms "$line")"; p99[$c,$ch]+=" $(field p99_ms "$line")"
			if [[ $c == 64 && $ch == 1 ]]; then
				gw_cpu+=("$(per $((g1 - g0)) "$(field requests "$line")")")
				pg_cpu+=("$(per $((p1 - p0)) "$(field requests "$line")")")
				cl_cpu+=("$(field client_cpu_us "$line")")
				# the lane backend: on a CPU and waiting for one, µs a message; its batches
				read -r lr lw <<<"$(awk -v a="$s0" -v b="$s1" -v n="$(field requests "$line")" 'BEGIN {split(a, x, " ");
					split(b, y, " "); if (n < 1) n = 1; printf "%.0f %.0f", (y[1] - x[1]) / n / 1000, (y[2] - x[2]) / n / 1000}')"
				lane_run+=("$lr"); lane_wait+=("$lw")
				read -r lb lm <<<"$(awk -v a="$l0" -v b="$l1" 'BEGIN {split(a, x, " "); split(b, y, " "); nb = y[1] - x[1];
					if (nb < 1) nb = 1; printf "%.1f %.2f", (y[2] - x[2]) / nb, (y[3] - x[3]) * 1000 / nb}')"
				lane_n+=("$lb"); lane_ms+=("$lm")
			fi
		done
	done
	ref_run 16; t16=$tps; c16=$cpu
	ref_run 64; t64=$tps; c64=$cpu
	echo "run $r, reference: pgbench -c 16 -j 2: $t16 tps, postgres $c16 µs/transaction; -c 64 -j 2: $t64 tps, postgres $c64 µs/transaction"
	if ((t16 >= t64)); then refs+=("$t16"); ref_cpu+=("$c16"); else refs+=("$t64"); ref_cpu+=("$c64"); fi
	floor_run
	echo "run $r, floor: $line; server $fcpu µs/request; postgres $bcpu µs/row in batches of 16"
	((r > 1)) || lane_floor_setup "$dir"
	lane_floor_run
	echo "run $r, lane floor: a batch of 31 messages and events by plain INSERTs, one connection: ${lf_ms[-1]} ms, postgres ${lf_cpu[-1]} µs/message"
	send_floor_run bench_ref.floor_batch; sf_rps+=("$sf_r"); sf_cpu+=("$sf_c"); sf_pg+=("$sf_p")
	echo "run $r, send floor: $line; server $sf_c µs/request, postgres $sf_p µs/message"
	send_floor_run bench_ref.floor_lane; sl_rps+=("$sf_r"); sl_cpu+=("$sf_c"); sl_pg+=("$sf_p")
	echo "run $r, send floor with the lane's statement: $line; server $sf_c µs/request, postgres $sf_p µs/message"
done
echo
echo "SendChannelMessage, persisted, medians of $runs run(s) of ${secs} s:"
for ch in 1 100; do
	for c in 1 16 64; do
		# shellcheck disable=SC2086 # the lists are space-separated numbers
		printf '  %2d in flight, %3d channel(s): msg/s=%s p50_ms=%s p99_ms=%s (runs:%s)\n' "$c" "$ch" \
			"$(median ${rps[$c,$ch]})" "$(median ${p50[$c,$ch]})" "$(median ${p99[$c,$ch]})" "${rps[$c,$ch]}"
	done
done
# shellcheck disable=SC2086
carillon=$(median ${rps[64,1]}); ref=$(median "${refs[@]}")
echo "reference: pgbench, one durable one-row INSERT per transaction, best of -c 16 and -c 64 (-j 2, -T $secs): $ref tps (runs: ${refs[*]})"
echo "ratio=$(ratio "$carillon" "$ref") (Carillon $carillon msg/s at 64 in flight into one channel / pgbench $ref tps)"
# Where the CPU goes (both on the same cores): per message, the gateway's and PostgreSQL's; per
# transaction of the best pgbench reference, PostgreSQL's (pgbench's own client CPU not counted).
echo "cpu: Carillon at 64 in flight, one channel: gateway $(median "${gw_cpu[@]}") µs/msg, postgres $(median "${pg_cpu[@]}") µs/msg" \
	"(runs: ${gw_cpu[*]} / ${pg_cpu[*]}); pgbench reference: postgres $(median "${ref_cpu[@]}") µs/transaction (runs: ${ref_cpu[*]})"
echo "messages stored: $(q 'select count(*) from carillon.channel_messages')"
# The budget: at the target ratio the two cores have 2,000,000 / (1.5 x reference) µs per message
# for everything on them; the ceiling: the rate if the gateway cost only the HTTP floor and
# PostgreSQL what it costs Carillon now (or only its own batched-INSERT floor).
cl=$(median "${cl_cpu[@]}"); fc=$(median "${fl_cpu[@]}"); flc=$(median "${fl_cl[@]}"); bc=$(median "${pgb_cpu[@]}")
gw=$(median "${gw_cpu[@]}"); pg=$(median "${pg_cpu[@]}")
echo "floor: http_floor at 64 in flight: $(median "${fl_rps[@]}") req/s, server $fc µs/request, client $flc µs/request" \
	"(runs: ${fl_rps[*]} / ${fl_cpu[*]} / ${fl_cl[*]}); pgbench 16 rows per INSERT: postgres $bc µs/row (runs: ${pgb_cpu[*]})"
# The lane: the rate into one channel is the lane's batch over its cycle, whatever the cores have
# left; its backend's CPU a message against the floor's, and the batch's cycle against the floor's.
lr=$(median "${lane_run[@]}"); lw=$(median "${lane_wait[@]}"); lm=$(median "${lane_ms[@]}"); lb=$(median "${lane_n[@]}")
lfm=$(median "${lf_ms[@]}"); lfc=$(median "${lf_cpu[@]}")
echo "lane: at 64 in flight into one channel, batches of $lb messages every $lm ms; its backend on a CPU $lr µs/msg," \
	"waiting for one $lw µs/msg (runs: ${lane_run[*]} / ${lane_wait[*]}); lane floor: $lfm ms a batch of 31, postgres $lfc µs/msg" \
	"(runs: ${lf_ms[*]} / ${lf_cpu[*]})"
awk -v lm="$lm" -v lb="$lb" -v lfm="$lfm" -v lr="$lr" -v lfc="$lfc" -v ref="$ref" 'BEGIN {
	if (lb > 0 && lfm > 0 && lfc > 0)
		printf "lane vs floor: a message takes the lane %.0f µs against the floor'"'"'s %.0f (x%.2f), its CPU %.0f against %.0f µs (x%.2f); one connection committing the floor'"'"'s batches alone: %.0f msg/s, ratio %.2f\n",
			lm * 1000 / lb, lfm * 1000 / 31, (lm / lb) / (lfm / 31), lr, lfc, lr / lfc, 31000 / lfm, 31000 / lfm / ref
}'
awk -v ref="$ref" -v cl="$cl" -v fc="$fc" -v pg="$pg" -v gw="$gw" -v bc="$bc" 'BEGIN {
	budget = 2e6 / (1.5 * ref)
	printf "budget: at ratio 1.5 (%.0f msg/s) %.0f µs of CPU per message on the two cores; Carillon spends client %.0f + gateway %.0f + postgres %.0f = %.0f\n",
		1.5 * ref, budget, cl, gw, pg, cl + gw + pg
	c1 = 2e6 / (cl + fc + pg); c2 = 2e6 / (cl + fc + bc)
	printf "ceiling: a gateway at the HTTP floor with postgres as now: %.0f msg/s, ratio %.2f; with postgres at its batched-INSERT floor too: %.0f msg/s, ratio %.2f\n",
		c1, c1 / ref, c2, c2 / ref
}'
# The whole path's floor against the reference, and Carillon against it.
sfr=$(median "${sf_rps[@]}")
echo "send floor: 64 in flight into a server that stores the same rows a batch at a time and answers at commit: $sfr msg/s," \
	"ratio $(ratio "$sfr" "$ref"); server $(median "${sf_cpu[@]}") µs/request, postgres $(median "${sf_pg[@]}") µs/msg" \
	"(runs: ${sf_rps[*]} / ${sf_cpu[*]} / ${sf_pg[*]}); Carillon at x$(ratio "$carillon" "$sfr") of it"
# The same server with the lane's statement for its batches: what the lane's SQL costs end to end
# (against the send floor), and what the gateway does (Carillon against it).
slr=$(median "${sl_rps[@]}")
echo "send floor with the lane's statement (carillon_api.send_messages): $slr msg/s, ratio $(ratio "$slr" "$ref");" \
	"server $(median "${sl_cpu[@]}") µs/request, postgres $(median "${sl_pg[@]}") µs/msg (runs: ${sl_rps[*]} / ${sl_cpu[*]} / ${sl_pg[*]});" \
	"x$(ratio "$slr" "$sfr") the send floor; Carillon at x$(ratio "$carillon" "$slr") of it"
