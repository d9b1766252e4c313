#!/usr/bin/env bash
# Runs every test suite and ends with one line: "N passed, N failed".
#
#   1. installs what is missing (scripts/install-deps.sh --node)
#   2. builds in build-test with -DCARILLON_WERROR=ON (or, with CARILLON_SANITIZE=address,undefined
#      in the environment, in build-asan with -DCARILLON_SANITIZE=...)
#   3. unit tests: ctest
#   4. smoke test: `carillon serve` with no CARILLON_DATABASE_URL (embedded PostgreSQL) answers
#      GET /healthz, exits 0 on SIGTERM and stops its PostgreSQL
#  4b. the Debian package (tests/package/run.sh, as root): builds it, checks it with dpkg-deb,
#      lintian and systemd-analyze, installs it, runs /usr/bin/carillon, purges it; one test.
#      Skipped only with CARILLON_SKIP_PACKAGE_TEST=1
#   5. conformance tests: node --test tests/conformance, against a throwaway PostgreSQL
#      (tests/lib/pg.sh), with CARILLON_BIN and CARILLON_TEST_DATABASE_URL set; then the SQL-level
#      tests (tests/sql/run.sh) on the same database
#   6. fuzzing (tests/fuzz/README.md): the libFuzzer harnesses, built with clang in build-fuzz
#      (ASan + UBSan); each replays its regression inputs, then fuzzes from its seed corpus for
#      CARILLON_FUZZ_SECONDS (default 60; 0 skips the step); one test per harness
#
# Needs no stdin. Exits non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# shellcheck source=tests/lib/pg.sh
. tests/lib/pg.sh

passed=0
failed=0
smoke_pid=
smoke_dir=

log() { echo "test.sh: $*" >&2; }

summary_and_exit() {
	cleanup
	echo "$passed passed, $failed failed"
	if [[ $failed -ne 0 ]]; then
		exit 1
	fi
	exit 0
}

# Idempotent; run by the EXIT trap too, so an interrupted run leaves no server behind.
cleanup() {
	if [[ -n $smoke_pid ]] && kill -0 "$smoke_pid" 2>/dev/null; then
		kill -KILL "$smoke_pid" 2>/dev/null || true
		wait "$smoke_pid" 2>/dev/null || true
	fi
	smoke_pid=
	if [[ -n $smoke_dir ]]; then
		pg_stop_embedded "$smoke_dir/data"
		[[ -e $smoke_dir/data/postgres/data/postmaster.pid ]] || rm -rf -- "$smoke_dir"
		smoke_dir=
	fi
	pg_stop
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stops an embedded cluster left running under a Carillon data directory.
pg_stop_embedded() {
	local data=$1/postgres/data bindir
	[[ -e $data/postmaster.pid ]] || return 0
	bindir=$(pg_bindir) || return 0
	if [[ $(id -u) -eq 0 ]]; then
		(cd / && exec setpriv --reuid="$(stat -c %u "$data")" --regid="$(stat -c %g "$data")" --clear-groups -- \
			"$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null) || true
	else
		"$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
	fi
}

free_port() {
	node -e 'const s = require("net").createServer();
		s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# GET http://127.0.0.1:<port><path>, prints the status code (bash /dev/tcp: curl may be absent).
http_status() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 5 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n" "$2" "$1" >&3
		read -r _ code _ <&3 && echo "$code"' _ "$1" "$2" 2>/dev/null
}

# ---- 1. dependencies -------------------------------------------------------------------------
if ! scripts/install-deps.sh --node </dev/null; then
	log "scripts/install-deps.sh failed"
	failed=$((failed + 1))
	summary_and_exit
fi

# ---- 2. build --------------------------------------------------------------------------------
if [[ -n ${CARILLON_SANITIZE:-} ]]; then
	build="build-asan"
	cmake_args=(-DCARILLON_SANITIZE="$CARILLON_SANITIZE")
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	# The loop-stall tests assert 100 ms; a sanitizer build is 2-3x slower per loop turn and is run
	# for memory errors, so its bound is 300 ms (the plain build keeps 100 ms).
	export CARILLON_TEST_STALL_MS=${CARILLON_TEST_STALL_MS:-300}
else
	build="build-test"
	cmake_args=(-DCARILLON_SANITIZE=)
fi
jobs=$(nproc 2>/dev/null || echo 2)
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCARILLON_WERROR=ON "${cmake_args[@]}" ||
	! cmake --build "$build" -j "$jobs"; then
	log "build failed"
	failed=$((failed + 1))
	summary_and_exit
fi
bin=$root/$build/carillon

# ---- 3. unit tests ---------------------------------------------------------------------------
ctest_log=$build/ctest.log
set +e
ctest --test-dir "$build" --output-on-failure -j "$jobs" 2>&1 | tee "$ctest_log"
ctest_rc=${PIPESTATUS[0]}
set -e
# "100% tests passed, 0 tests failed out of 7"
counts=$(sed -nE 's/.*[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1 \2/p' "$ctest_log" | tail -n 1)
if [[ -n $counts ]]; then
	read -r ct_failed ct_total <<<"$counts"
	passed=$((passed + ct_total - ct_failed))
	failed=$((failed + ct_failed))
	if [[ $ctest_rc -ne 0 && $ct_failed -eq 0 ]]; then
		failed=$((failed + 1))
	fi
elif [[ $ctest_rc -ne 0 ]] || ! grep -q 'No tests were found' "$ctest_log"; then
	log "ctest failed (exit $ctest_rc)"
	failed=$((failed + 1))
fi

# ---- 4. smoke test: carillon serve with its embedded PostgreSQL --------------------------------
smoke_test() {
	local port log_file status="" rc i
	smoke_dir=$(pg_user_dir "$root/$build" smoke) || return 1
	port=$(free_port) || return 1
	log_file=$smoke_dir/carillon.log
	log "smoke: carillon serve on 127.0.0.1:$port, data in $smoke_dir/data"
	env -u CARILLON_DATABASE_URL CARILLON_DATA_DIR="$smoke_dir/data" CARILLON_LISTEN="127.0.0.1:$port" \
		"$bin" serve </dev/null >"$log_file" 2>&1 &
	smoke_pid=$!
	for ((i = 0; i < 300; i++)); do # 60 s: the first start runs initdb
		if ! kill -0 "$smoke_pid" 2>/dev/null; then
			log "smoke: carillon exited before answering"
			break
		fi
		status=$(http_status "$port" /healthz || true)
		[[ $status == 200 ]] && break
		sleep 0.2
	done
	if [[ $status != 200 ]]; then
		log "smoke: GET /healthz never answered 200 (last: ${status:-no answer})"
		cat "$log_file" >&2
		return 1
	fi
	if [[ ! -e $smoke_dir/data/postgres/data/postmaster.pid ]]; then
		log "smoke: no embedded PostgreSQL running under $smoke_dir/data"
		cat "$log_file" >&2
		return 1
	fi
	kill -TERM "$smoke_pid"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$smoke_pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$smoke_pid" 2>/dev/null; then
		log "smoke: carillon still running 60 s after SIGTERM"
		cat "$log_file" >&2
		return 1
	fi
	rc=0
	wait "$smoke_pid" || rc=$?
	smoke_pid=
	if [[ $rc -ne 0 ]]; then
		log "smoke: carillon exited with status $rc after SIGTERM"
		cat "$log_file" >&2
		return 1
	fi
	if [[ -e $smoke_dir/data/postgres/data/postmaster.pid ]]; then
		log "smoke: the embedded PostgreSQL is still running after carillon exited"
		cat "$log_file" >&2
		return 1
	fi
	log "smoke: ok"
}

if [[ -x $bin ]]; then
	if smoke_test; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
	cleanup
else
	log "smoke: $bin was not built"
	failed=$((failed + 1))
fi

# ---- 4b. the Debian package --------------------------------------------------------------------
if [[ ${CARILLON_SKIP_PACKAGE_TEST:-} == 1 ]]; then
	log "package: CARILLON_SKIP_PACKAGE_TEST=1; skipped"
elif tests/package/run.sh </dev/null; then
	log "package: ok"
	passed=$((passed + 1))
else
	log "package: failed (tests/package/run.sh)"
	failed=$((failed + 1))
fi

# node --test <args...>, TAP into <tap>; adds its counts to n_pass and n_fail.
node_tests() {
	local tap=$1 rc=0 p f c
	shift
	rm -f "$tap"
	CARILLON_BIN=$bin CARILLON_TEST_DATABASE_URL=$CARILLON_TEST_DATABASE_URL \
		node --test --test-reporter=spec --test-reporter-destination=stdout \
		--test-reporter=tap --test-reporter-destination="$tap" "$@" </dev/null || rc=$?
	p=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$tap" 2>/dev/null | tail -n 1)
	f=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$tap" 2>/dev/null | tail -n 1)
	c=$(sed -nE 's/^# cancelled ([0-9]+)$/\1/p' "$tap" 2>/dev/null | tail -n 1)
	f=$((${f:-0} + ${c:-0}))
	if [[ $rc -ne 0 && $f -eq 0 ]]; then
		log "conformance: node --test exited with status $rc"
		f=1
	fi
	n_pass=$((n_pass + ${p:-0}))
	n_fail=$((n_fail + f))
}

# ---- 5. conformance tests --------------------------------------------------------------------
mapfile -t conformance < <(find tests/conformance -name node_modules -prune -o -type f \
	\( -name '*.test.mjs' -o -name '*.test.js' -o -name '*.test.cjs' \) -print 2>/dev/null | sort)
if [[ ${#conformance[@]} -eq 0 ]]; then
	log "conformance: no tests/conformance/*.test.mjs yet; skipped"
elif ! pg_start "$root/$build"; then
	log "conformance: could not start PostgreSQL"
	failed=$((failed + 1))
else
	n_pass=0
	n_fail=0
	# One file at a time (the suites share the database): --test-concurrency=1 where this node
	# has it, else one node --test per file.
	if node --test-concurrency=1 -e 0 >/dev/null 2>&1; then
		node_tests "$root/$build/conformance.tap" --test-concurrency=1 "${conformance[@]}"
	else
		for ((i = 0; i < ${#conformance[@]}; i++)); do
			node_tests "$root/$build/conformance.$i.tap" "${conformance[i]}"
		done
	fi
	# SQL-level tests (tests/sql/run.sh) on the same database: each test rolls back.
	sql_log=$root/$build/sql-tests.log
	set +e
	CARILLON_BIN=$bin tests/sql/run.sh "$CARILLON_TEST_DATABASE_URL" </dev/null 2>&1 | tee "$sql_log"
	sql_rc=${PIPESTATUS[0]}
	set -e
	sql_counts=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$sql_log" | tail -n 1)
	if [[ -n $sql_counts ]]; then
		read -r sql_pass sql_fail <<<"$sql_counts"
		n_pass=$((n_pass + sql_pass))
		n_fail=$((n_fail + sql_fail))
	fi
	if [[ $sql_rc -ne 0 && ${sql_fail:-0} -eq 0 ]]; then
		log "sql tests: tests/sql/run.sh exited with status $sql_rc"
		n_fail=$((n_fail + 1))
	fi
	pg_stop
	passed=$((passed + n_pass))
	failed=$((failed + n_fail))
fi

# ---- 6. fuzzing ------------------------------------------------------------------------------
fuzz_seconds=${CARILLON_FUZZ_SECONDS:-60}
fuzz_build="build-fuzz"

# One harness: replay tests/fuzz/regressions/<name>/, then fuzz from tests/fuzz/corpus/<name>/.
# New inputs go to a scratch corpus under build-fuzz (the committed seeds stay as they are).
fuzz_one() {
	local name=$1 bin=$root/$fuzz_build/fuzz_$1 dir=$root/tests/fuzz log execs
	local scratch=$root/$fuzz_build/corpus/$1 artifacts=$root/$fuzz_build/artifacts/$1/
	local regressions=() opts=()
	mkdir -p "$scratch" "$artifacts"
	log=$root/$fuzz_build/fuzz_$1.log
	: >"$log"
	mapfile -t regressions < <(find "$dir/regressions/$name" -type f ! -name '.*' 2>/dev/null | sort)
	if [[ ${#regressions[@]} -gt 0 ]] && ! "$bin" "${regressions[@]}" >>"$log" 2>&1; then
		log "fuzz: $name: a regression input fails again"
		tail -n 60 "$log" >&2
		return 1
	fi
	[[ -f $dir/dict/$name.dict ]] && opts+=(-dict="$dir/dict/$name.dict")
	if ! "$bin" "${opts[@]}" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$artifacts" "$scratch" "$dir/corpus/$name" >>"$log" 2>&1; then
		log "fuzz: $name: crash, hang or sanitizer report; input saved under $artifacts" \
			"(add it to tests/fuzz/regressions/$name/ once fixed)"
		grep -E '^(==[0-9]+==|SUMMARY|.*runtime error|    #[0-9]+ 0x|artifact_prefix|Test unit written)' "$log" |
			head -n 60 >&2 || true
		return 1
	fi
	execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
	log "fuzz: $name: ${execs:-?} executions in ${fuzz_seconds} s, ${#regressions[@]} regression inputs, no crash"
}

if [[ $fuzz_seconds == 0 ]]; then
	log "fuzz: CARILLON_FUZZ_SECONDS=0; skipped"
elif ! command -v clang >/dev/null 2>&1; then
	log "fuzz: clang is missing (scripts/install-deps.sh installs it)"
	failed=$((failed + 1))
elif ! CC=clang cmake -S . -B "$fuzz_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCARILLON_FUZZ=ON \
	-DCARILLON_SANITIZE= >/dev/null || ! cmake --build "$fuzz_build" --target fuzzers -j "$jobs"; then
	log "fuzz: building the harnesses failed"
	failed=$((failed + 1))
else
	for src in tests/fuzz/fuzz_*.c; do
		name=$(basename "$src" .c)
		name=${name#fuzz_}
		# FUZZ_STRICT_MESSAGES: fuzz_model also fails on an error message that is not valid UTF-8.
		if FUZZ_STRICT_MESSAGES=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 fuzz_one "$name"; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
		fi
	done
fi

summary_and_exit
