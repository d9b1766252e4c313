#!/usr/bin/env bash
# The write lane's instructions a batch: one batch of 31 persistent sends into one channel, as the
# gateway hands it to carillon_api.send_messages (typed columns: src/api/send_batch.c) and, for
# comparison, to carillon_api.invoke_batch_rows (the items' documents as src/api/sql_handler.c
# writes them, the path of a batch send_messages declined), executed BATCHES times by one
# connection to a PostgreSQL run under valgrind's callgrind; against it, its floor, the same rows
# written by two plain INSERTs (bench/lib.sh lane_floor_setup, the lane floor of bench/send.sh).
# Instructions, unlike times, do not move with this machine's phases (the same build's rate moved
# 40 % within minutes, and the guest has no hardware counters), so a change of the lane's SQL is
# weighed exactly, in minutes: the figure for each batch is the backend's instructions over
# BATCHES+10 executions less those over 10 (its start-up and first plans), divided by BATCHES. The
# replay's own work -- its statement's text parsed (the batch is a literal in it: pgbench's prepared
# mode would read the document's colons as its variables), fresh request tokens substituted into it
# -- is counted apart, by a statement that does only that, and taken out. Not a time: an instruction
# of the lane's JSON and PL/pgSQL costs less time than one of the floor's index, buffer and WAL work
# (session 17: the lane spent ~3.6x the floor's instructions and ~1.5-1.9x its CPU time; session
# 18, as columns: 1.77x and 1.1-1.4x; BENCHMARKS.md, issue 11).
#   bench/lane-ir.sh [batches]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "lane-ir.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
batches=${1:-50}
. bench/lib.sh
bench_traps
dir=; bench_one_channel # sets port, pid, dir
# Some history first (3 s at 64 in flight), so that the tables and their indexes are not empty.
build/carillon-rest-bench --port "$port" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" --secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" \
	--method POST --paths "$dir/one.txt" --bearer "$(cat "$dir/sender.txt")" --expect 201 --connections 64 --seconds 3 \
	--body '{"Content":"t={t}","Type":"STANDARD","Persistence":"PERSISTENT","ClientRequestToken":"w{n}"}' >/dev/null
kill "$pid"; wait "$pid" 2>/dev/null || true
lane_floor_setup "$dir"

# The batch: 31 items of the sender into the channel, each {"fn", "ctx", "input"} with the members
# the gateway writes for a persistent SendChannelMessage of the root key; TOKEN and NOWMS are
# replaced at each execution (a retry would be declined to the item path).
channel=$(node -e 'const p = require("fs").readFileSync(process.argv[1], "utf8").trim(); console.log(decodeURIComponent(p.split("/")[2]))' "$dir/one.txt")
cat >"$dir/batch.js" <<'JS'
const fs = require('fs');
const [channel, sender, port, out] = process.argv.slice(2);
const [, , , region, account] = channel.split(':');
const items = [];
for (let i = 0; i < 31; i++)
  items.push({
    fn: 'send_channel_message',
    ctx: { now_ms: 'NOWMS', region, account, principal: 'root', request_id: require('crypto').randomUUID(),
           public_endpoint: `127.0.0.1:${port}`, idempotency_member: 'ClientRequestToken', idempotency_token: `TOKEN${i}` },
    input: { Content: 't=1795871462160869', Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: `TOKEN${i}`,
             ChannelArn: channel, ChimeBearer: sender },
  });
const text = JSON.stringify(items).replace(/"NOWMS"/g, 'NOWMS').replace(/'/g, "''");
const fresh = `replace(replace('${text}', 'TOKEN', 'b' || :n || '-'), 'NOWMS', (extract(epoch from clock_timestamp()) * 1000)::bigint::text)`;
fs.writeFileSync(`${out}/lane.sql`, `\\set n random(1, 9000000000000000)\nselect sum(length(ok)) from carillon_api.invoke_batch_rows(${fresh}::jsonb);\n`);
fs.writeFileSync(`${out}/subst.sql`, `\\set n random(1, 9000000000000000)\nselect length(${fresh});\n`);
// The same batch as the gateway sends it now (src/api/send_batch.c): carillon_api.send_messages'
// seventeen columns (the event documents' heads carry a placeholder of the message id's length: the
// database only joins them to the time and sender). pgbench sends text, not the binary arrays the gateway sends: the arrays are
// literals here, parsed by array_in, and colsubst.sql parses the same literals (and makes the same
// fresh request keys, message ids and times) alone, to be taken out.
const lit = (a) => "'{" + a.map((x) => '"' + x.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"').join(',') + "}'::text[]";
const col = (f) => lit(items.map(f));
const nulls = (type) => `array_fill(null::${type}, array[31])`;
const args = [lit([channel]), col((x) => x.input.ChannelArn), col((x) => x.input.ChimeBearer), col(() => 'root'),
  nulls('text'), nulls('bigint'), col((x) => x.input.Type), col((x) => x.input.Content), nulls('text'), nulls('text'),
  nulls('jsonb'), nulls('jsonb'),
  "array(select md5('c' || :n || '-' || g)::uuid from generate_series(1, 31) g)",
  "array(select lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0') || left(md5('c' || :n || '-' || g), 20) from generate_series(1, 31) g)",
  'array_fill((extract(epoch from clock_timestamp()) * 1000)::bigint, array[31])',
  col((x) => `{"ChannelArn": ${JSON.stringify(x.input.ChannelArn)}, "MessageId": "${'0'.repeat(32)}", "Content": ${JSON.stringify(x.input.Content)}, "Type": "${x.input.Type}", "CreatedTimestamp": "`),
  col(() => ', "Redacted": false, "Persistence": "PERSISTENT", "Status": {"Value": "SENT"}}')];
fs.writeFileSync(`${out}/cols.sql`, `\\set n random(1, 9000000000000000)\nselect sum(length(t)) from unnest(carillon_api.send_messages(${args.join(', ')})) t;\n`);
fs.writeFileSync(`${out}/colsubst.sql`, `\\set n random(1, 9000000000000000)\nselect ${args.map((a) => `cardinality(${a})`).join(' + ')};\n`);
JS
node "$dir/batch.js" "$channel" "$(cat "$dir/sender.txt")" "$port" "$dir"

# The same cluster under callgrind (autovacuum off: its workers would come and go at random).
pg_as_user "$(pg_bindir)/pg_ctl" -D "$PG_TEST_DIR/data" -w -t 60 stop >/dev/null
cg=$PG_TEST_DIR/callgrind; mkdir -p "$cg"
[[ $(id -u) -ne 0 ]] || chown "$PG_TEST_OS_USER:" "$cg"
pg_as_user valgrind --tool=callgrind --callgrind-out-file="$cg/cg.%p" "$(pg_bindir)/postgres" -D "$PG_TEST_DIR/data" \
	-c autovacuum=off >"$PG_TEST_DIR/valgrind.log" 2>&1 &
for _ in $(seq 600); do psql -X -At "$CARILLON_TEST_DATABASE_URL" -c 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql -X -At "$CARILLON_TEST_DATABASE_URL" -c 'select 1' >/dev/null

# settle: until every profile written so far is complete and no new one has come for 0.5 s (a
# connection that ended just before a measurement, such as the start-up probe's last psql, writes
# its profile late: taken for the client's, it spoiled the first figure). A running process's file
# is empty until it exits.
settle() {
	local last='' now f t
	for _ in $(seq 100); do
		now=$(find "$cg" -name 'cg.*' -size +0 | sort); t=1
		for f in $now; do grep -q '^totals:' "$f" || t=0; done
		[[ $t == 1 && $now == "$last" ]] && return 0
		last=$now; sleep 0.5
	done
}
# ir SCRIPT N: the instructions of the backend that ran SCRIPT N times (pgbench's one client; its
# other connection, the larger count of the two files written, is not the one: the client's is).
ir() {
	local before after new f n t
	settle
	before=$(find "$cg" -name 'cg.*' | sort)
	pgbench -n -f "$1" -t "$2" "$CARILLON_TEST_DATABASE_URL" >"$dir/pgbench.out" 2>&1 || { head -c 2000 "$dir/pgbench.out" >&2; return 1; }
	for _ in $(seq 200); do
		after=$(find "$cg" -name 'cg.*' | sort); new=$(comm -13 <(echo "$before") <(echo "$after"))
		n=$(grep -c . <<<"$new" || true); t=0
		for f in $new; do grep -q '^totals:' "$f" && t=$((t + 1)); done
		((n >= 2 && t == n)) && break
		sleep 0.2
	done
	for f in $new; do awk '/^totals:/ {print $2}' "$f"; done | sort -n | tail -1
}
# per_batch SCRIPT: instructions a batch, in millions
per_batch() {
	local a b
	a=$(ir "$1" 10); b=$(ir "$1" $((batches + 10)))
	awk -v a="$a" -v b="$b" -v n="$batches" 'BEGIN {printf "%.2f", (b - a) / n / 1e6}'
}
cols=$(per_batch "$dir/cols.sql"); colsubst=$(per_batch "$dir/colsubst.sql")
lane=$(per_batch "$dir/lane.sql"); subst=$(per_batch "$dir/subst.sql"); floor=$(per_batch "$dir/lanefloor.sql")
net=$(awk -v l="$lane" -v s="$subst" 'BEGIN {printf "%.2f", l - s}')
colnet=$(awk -v l="$cols" -v s="$colsubst" 'BEGIN {printf "%.2f", l - s}')
echo "lane instructions, a batch of 31 sends into one channel, one connection ($batches batches under callgrind):"
echo "  as columns, carillon_api.send_messages (the gateway's path): ${colnet} M (${cols} M with the replay's own statement, ${colsubst} M)"
echo "  as JSON, carillon_api.invoke_batch_rows (a declined batch's path): ${net} M (${lane} M with the replay's own statement, ${subst} M)"
echo "  lane floor (31 messages and 31 events by two plain INSERTs): ${floor} M"
echo "ratio=$(ratio "$colnet" "$floor") (the lane's instructions a batch as columns / the floor's; as JSON: $(ratio "$net" "$floor"))"
