# Shared by the bench scripts: a throwaway PostgreSQL (durable commits) and Carillon nodes.
. tests/lib/pg.sh
export CARILLON_ROOT_ACCESS_KEY_ID=AKIABENCHBENCHBENCH0 CARILLON_ROOT_SECRET_ACCESS_KEY=benchSecretKeyBenchSecretKeyBenchSecret0
export CARILLON_MASTER_KEY=${CARILLON_MASTER_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
# The benchmarks hold many sessions per user (38,000 over 1,000 users): above the per-user quota.
export CARILLON_MAX_SESSIONS_PER_USER=${CARILLON_MAX_SESSIONS_PER_USER:-100000}
export NODE_NO_WARNINGS=1
bench_pids=()
bench_dirs=()
# On exit, Ctrl-C or kill: the Carillon nodes and load generators this script started (by pid), any
# other child left, the throwaway PostgreSQL and the temporary directories.
bench_cleanup() {
	local p
	trap - INT TERM
	for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	pkill -P $$ 2>/dev/null || true
	wait 2>/dev/null || true
	pg_stop
	for p in "${bench_dirs[@]}"; do rm -rf -- "$p"; done
}
# bench_traps: cleanup on exit, and an exit (hence cleanup) on Ctrl-C and SIGTERM.
bench_traps() { trap bench_cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; }
# bench_tmpdir: a temporary directory removed by bench_cleanup (call it in the script's own shell)
bench_tmpdir() { dir=$(mktemp -d); bench_dirs+=("$dir"); }
# bg_run FILE CMD...: CMD's output into FILE, waited for in the background so that a signal to the
# script is handled at once (a foreground child would delay the trap until it ends).
bg_run() {
	local out=$1 p; shift
	"$@" >"$out" &
	p=$!; bench_pids+=("$p")
	wait "$p"
}
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# start_node PORT [extra env...]: a Carillon process on 127.0.0.1:PORT (one worker unless CARILLON_WORKERS
# says otherwise; with more, the pid is the supervisor's); echoes its pid
start_node() {
	local port=$1; shift
	env CARILLON_DATABASE_URL="$CARILLON_TEST_DATABASE_URL" CARILLON_LISTEN="127.0.0.1:$port" CARILLON_WORKERS="${CARILLON_WORKERS:-1}" "$@" \
		build/carillon serve >>"${BENCH_LOG:-/tmp/carillon-bench.log}" 2>&1 &
	echo $!
}
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
machine() { echo "machine: $(nproc) cores, $(awk '/MemTotal/{print int($2/1024/1024)" GiB"}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"; }
# median V...: the median of the numbers given (the mean of the middle two for an even count)
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# field NAME LINE: the value of NAME=value in LINE
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p;s/^$1=\([^[:space:]]*\).*/\1/p" <<<"$2" | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

# The PostgreSQL reference: pgbench on the same server and database, with the same durability, one
# durable one-row INSERT per transaction into a throwaway table whose row is like a message's (a
# text key from a hash, as message ids are; a bigint; a timestamptz; ~100 bytes of text).
# pgref_setup DIR: creates the table and DIR/pgref.sql (the pgbench script)
pgref_setup() {
	psql -X -q -v ON_ERROR_STOP=1 "$CARILLON_TEST_DATABASE_URL" -c 'create schema if not exists bench_ref' \
		-c 'drop table if exists bench_ref.messages' \
		-c 'create table bench_ref.messages (id text primary key, n bigint not null, at timestamptz not null, body text not null)'
	cat >"$1/pgref.sql" <<-'SQL'
		\set n random(1, 9000000000000000)
		insert into bench_ref.messages (id, n, at, body) values (md5(:n::text || ':' || :client_id::text), :n, now(), 'bench reference row: about one hundred bytes of message content, as a short chat message has it..');
	SQL
}
pgref_truncate() { psql -X -q "$CARILLON_TEST_DATABASE_URL" -c 'truncate bench_ref.messages'; }
# pgref_tps DIR CLIENTS SECONDS: tps of the INSERT script at CLIENTS clients (2 threads)
pgref_tps() {
	pgref_truncate
	bg_run "$1/pgbench.out" pgbench -n -f "$1/pgref.sql" -c "$2" -j 2 -T "$3" "$CARILLON_TEST_DATABASE_URL" 2>"$1/pgbench.err" ||
		{ cat "$1/pgbench.err" >&2; return 1; }
	sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$1/pgbench.out" | head -1 | awk '{printf "%.0f\n", $1}'
}
# pgref_latency DIR RATE CLIENTS SECONDS: p50 and p99 (ms) of the INSERT script paced at RATE/s over
# CLIENTS clients, from pgbench's per-transaction log. Prints "p50_ms=.. p99_ms=.. tps=..
# lag_p99_ms=.." where latency is pgbench's own (from the scheduled start, so any schedule lag counts,
# as it does in Carillon's paced sends) and lag is the part of it spent waiting for a client.
pgref_latency() {
	local d=$1
	pgref_truncate
	rm -f "$d"/pgl.*
	bg_run "$d/pgbench.out" pgbench -n -f "$d/pgref.sql" -R "$2" -c "$3" -j 2 -T "$4" -l --log-prefix="$d/pgl" \
		"$CARILLON_TEST_DATABASE_URL" 2>"$d/pgbench.err" || { cat "$d/pgbench.err" >&2; return 1; }
	local tps
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$d/pgbench.out" | head -1)
	echo "$(cat "$d"/pgl.* | awk '{print $3 / 1000}' | sort -g | pct 50 99) tps=$tps lag_p99_ms=$(cat "$d"/pgl.* | awk '{print $7 / 1000}' | sort -g | pct 99)"
}
# pct P...: percentiles of sorted numbers on stdin, as "p<P>_ms=<v>" (for one P, just the value)
pct() { awk -v ps="$*" '{v[NR] = $1} END {n = split(ps, p, " "); for (i = 1; i <= n; i++) {x = v[int(NR * p[i] / 100) + 1]; if (n == 1) printf "%.2f", x; else printf "%sp%s_ms=%.2f", (i > 1 ? " " : ""), p[i], x}}'; }
# cpu_ticks PID: CPU time (clock ticks) of a process so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# pg_cpu_ticks: CPU time (clock ticks) of the throwaway PostgreSQL so far: the postmaster, its live
# children (backends, autovacuum, checkpointer, walwriter...) and the children it has reaped
pg_cpu_ticks() {
	local pm c t
	pm=$(head -1 "$PG_TEST_DIR/data/postmaster.pid")
	t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
	for c in $(ps -o pid= --ppid "$pm"); do t=$((t + $(cpu_ticks "$c"))); done
	echo "$t"
}
# bench_pg_settings: the settings Carillon writes for its embedded PostgreSQL (src/db/embedded.c,
# write_settings: shared_buffers an eighth of the memory between 128 and 512 MB, the background
# writer, max_wal_size), so that the benches measure the database as Carillon ships it (the
# references run on the same server); then BENCH_PG_SETTINGS="name=value ..." (e.g.
# shared_buffers=1GB) for experiments (what a setting changes). Applied to the throwaway PostgreSQL
# with ALTER SYSTEM and a restart, before any Carillon process connects, and printed so that a
# result is never read without them.
bench_pg_settings() {
	local kv sb
	sb=$(awk '/MemTotal/ {mb = int($2 / 1024 / 8); print (mb < 128 ? 128 : mb > 512 ? 512 : mb)}' /proc/meminfo)
	BENCH_PG_SETTINGS="shared_buffers=${sb}MB bgwriter_delay=20ms bgwriter_lru_maxpages=1000 bgwriter_lru_multiplier=4.0 max_wal_size=4GB ${BENCH_PG_SETTINGS:-}"
	# BENCH_PG_STATEMENTS=1: pg_stat_statements loaded and tracking nested statements and planning
	[[ -n ${BENCH_PG_STATEMENTS:-} ]] && BENCH_PG_SETTINGS="${BENCH_PG_SETTINGS} shared_preload_libraries=pg_stat_statements"
	for kv in $BENCH_PG_SETTINGS; do
		psql -X -q -v ON_ERROR_STOP=1 "$CARILLON_TEST_DATABASE_URL" -c "alter system set ${kv%%=*} = '${kv#*=}'"
	done
	pg_as_user "$(pg_bindir)/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/postgres.log" -w -t 60 restart >/dev/null
	if [[ -n ${BENCH_PG_STATEMENTS:-} ]]; then
		psql -X -q "$CARILLON_TEST_DATABASE_URL" -c 'create extension if not exists pg_stat_statements' \
			-c "alter system set pg_stat_statements.track = 'all'" \
			-c "alter system set pg_stat_statements.track_planning = on" -c 'select pg_reload_conf()' >/dev/null
	fi
	echo "postgres settings for this run: $BENCH_PG_SETTINGS"
}

# BENCH_PG_STATEMENTS=1: PostgreSQL's time by statement (pg_stat_statements, nested statements of
# the functions included), to see where the database's share goes. statements_reset starts the
# count (after the setup); statements_report prints the top 15 by total time, with the planning time
# per call.
statements_reset() {
	[[ -n ${BENCH_PG_STATEMENTS:-} ]] || return 0
	psql -X -q -At "$CARILLON_TEST_DATABASE_URL" -c 'select pg_stat_statements_reset()' >/dev/null
}
statements_report() {
	[[ -n ${BENCH_PG_STATEMENTS:-} ]] || return 0
	echo "postgres time by statement (pg_stat_statements, top 15 by total time):"
	psql -X -At "$CARILLON_TEST_DATABASE_URL" -c "select format('  %8s ms %9s calls %8s ms/call (planning %s) %9s rows  %s',
	        round(total_exec_time), calls, round((total_exec_time / calls)::numeric, 3),
	        round((total_plan_time / calls)::numeric, 3), rows, regexp_replace(left(query, 100), '\s+', ' ', 'g'))
	     from pg_stat_statements order by total_exec_time desc limit 15"
}

# bench_one_channel: the throwaway PostgreSQL with the shipped settings, one Carillon process
# ($port, $pid) and one channel of one member set up by bench/setup.mjs in $dir ($dir/one.txt: its
# path); prints the machine. Call it in the script's own shell (bench/lane-ir.sh, lane-parts.sh).
bench_one_channel() {
	pg_start "${TMPDIR:-/tmp}" >/dev/null
	bench_pg_settings
	port=$(free_port)
	pid=$(start_node "$port"); bench_pids+=("$pid"); wait_port "$port"
	bench_tmpdir # sets dir
	node bench/setup.mjs --endpoint "http://127.0.0.1:$port" --receivers 1 --channels 1 --members 1 --out "$dir" >/dev/null
	head -1 "$dir/paths.txt" >"$dir/one.txt"
	machine
}

# The lane's floor: the rows of one batch of 31 sends — 31 messages and their 31 events, in copies
# of Carillon's two tables with their own indexes (and, as they, no foreign key), the values of a
# stored message and event — written by two plain INSERTs in one durable transaction over one
# connection, as the lane writes its batches one after the other. What PostgreSQL needs at least
# for the data a send stores, with no checks, no JSON and no PL/pgSQL. lane_floor_setup DIR, once
# messages are stored (it copies one message and its event): the tables, the script
# DIR/lanefloor.sql (bench/send.sh, bench/lane-ir.sh), and bench_ref.floor_batch(n, key), the same
# rows for a batch of n requests (the send floor: bench/http_floor.c --database).
lane_floor_setup() {
	local dir=$1
	psql -X -q -v ON_ERROR_STOP=1 "$CARILLON_TEST_DATABASE_URL" -c 'set client_min_messages = warning' \
		-c 'create schema if not exists bench_ref' \
		-c 'drop table if exists bench_ref.lane_messages, bench_ref.lane_events, bench_ref.msg_tpl, bench_ref.ev_tpl' \
		-c 'drop sequence if exists bench_ref.lane_seq' -c 'create sequence bench_ref.lane_seq' \
		-c 'create table bench_ref.lane_messages (like carillon.channel_messages including all)' \
		-c 'create table bench_ref.lane_events (like carillon.events including all)' \
		-c "create table bench_ref.msg_tpl as select * from carillon.channel_messages where type = 'STANDARD' order by seq desc limit 1" \
		-c "create table bench_ref.ev_tpl as select * from carillon.events where event_type = 'CREATE_CHANNEL_MESSAGE' order by position desc limit 1"
	cat >"$dir/lanefloor.sql" <<-'SQL'
		\set k random(1, 9000000000000000)
		begin;
		insert into bench_ref.lane_messages (channel_arn, message_id, request_key, seq, sender_arn, type, content, metadata, content_type, attributes, push_notification, created_at, updated_at, status) select t.channel_arn, lpad(to_hex(x.s), 32, '0'), md5(x.g::text || '-' || :k)::uuid, x.s, t.sender_arn, t.type, t.content, t.metadata, t.content_type, t.attributes, t.push_notification, now(), now(), t.status from bench_ref.msg_tpl t, (select g, nextval('bench_ref.lane_seq') s from generate_series(1, 31) g) x;
		insert into bench_ref.lane_events (position, created_at, app_instance_id, channel_arn, event_type, message_type, payload, payload_text, audience) select nextval('bench_ref.lane_seq'), now(), t.app_instance_id, t.channel_arn, t.event_type, t.message_type, t.payload, t.payload_text, t.audience from bench_ref.ev_tpl t, generate_series(1, 31);
		commit;
	SQL
	# The same rows for a batch of N requests, for the send floor (bench/http_floor.c --database).
	psql -X -q -v ON_ERROR_STOP=1 "$CARILLON_TEST_DATABASE_URL" <<-'SQL'
		create or replace function bench_ref.floor_batch(p_n int, p_k bigint) returns int language plpgsql as $$
		begin
		    insert into bench_ref.lane_messages (channel_arn, message_id, request_key, seq, sender_arn, type, content, metadata, content_type, attributes, push_notification, created_at, updated_at, status) select t.channel_arn, lpad(to_hex(x.s), 32, '0'), md5(x.g::text || '-' || p_k)::uuid, x.s, t.sender_arn, t.type, t.content, t.metadata, t.content_type, t.attributes, t.push_notification, now(), now(), t.status from bench_ref.msg_tpl t, (select g, nextval('bench_ref.lane_seq') s from generate_series(1, p_n) g) x;
		    insert into bench_ref.lane_events (position, created_at, app_instance_id, channel_arn, event_type, message_type, payload, payload_text, audience) select nextval('bench_ref.lane_seq'), now(), t.app_instance_id, t.channel_arn, t.event_type, t.message_type, t.payload, t.payload_text, t.audience from bench_ref.ev_tpl t, generate_series(1, p_n);
		    return p_n;
		end $$;
		-- The write lane's own statement for a batch of N requests (the send floor with the lane's
		-- SQL: bench/send.sh): carillon_api.send_messages with the columns the gateway would pass
		-- for N persistent sends of the stored message's sender into its channel by the root key
		-- (src/api/send_batch.c: time-ordered ids, random request keys, the event document's head
		-- and tail). Building the columns here costs PostgreSQL a little more than receiving them.
		create or replace function bench_ref.floor_lane(p_n int, p_k bigint) returns int language plpgsql as $$
		declare
		    t record;
		    v_now bigint := (extract(epoch from clock_timestamp()) * 1000)::bigint;
		    v_ids text[];
		begin
		    select channel_arn, sender_arn into t from bench_ref.msg_tpl;
		    v_ids := array(select lpad(to_hex(v_now), 12, '0') || substr(md5(g::text || 'i' || p_k), 1, 20)
		                     from generate_series(1, p_n) g);
		    if carillon_api.send_messages(
		           array[t.channel_arn], array_fill(t.channel_arn, array[p_n]), array_fill(t.sender_arn, array[p_n]),
		           array_fill('root'::text, array[p_n]), array_fill(null::text, array[p_n]),
		           array_fill(null::bigint, array[p_n]), array_fill('STANDARD'::text, array[p_n]),
		           array_fill('t=1795871462160869'::text, array[p_n]), array_fill(null::text, array[p_n]),
		           array_fill(null::text, array[p_n]), array_fill(null::jsonb, array[p_n]),
		           array_fill(null::jsonb, array[p_n]),
		           array(select md5(g::text || '-' || p_k)::uuid from generate_series(1, p_n) g), v_ids,
		           array_fill(v_now, array[p_n]),
		           array(select '{"ChannelArn": "' || t.channel_arn || '", "MessageId": "' || i
		                        || '", "Content": "t=1795871462160869", "Type": "STANDARD", "CreatedTimestamp": "'
		                   from unnest(v_ids) i),
		           array_fill(', "Redacted": false, "Persistence": "PERSISTENT", "Status": {"Value": "SENT"}}'::text,
		                      array[p_n])) is null then
		        raise exception 'send_messages declined the batch';
		    end if;
		    return p_n;
		end $$;
	SQL
}
