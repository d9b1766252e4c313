#!/usr/bin/env bash
# SQL-level tests of the operation functions (sql/api/*.sql), run with psql against a real database.
#
#   tests/sql/run.sh [CONNINFO]
#
# CONNINFO is a libpq connection string or URL; without it, CARILLON_TEST_DATABASE_URL. The
# migrations are applied first with `carillon migrate` (the binary: CARILLON_BIN, else build/carillon
# of this checkout), so the functions tested are the ones of this tree.
#
# Layout: every tests/sql/*.sql file holds tests, each starting at a line "-- test: NAME" and running
# to the next such line. What comes before the first test is the file's setup. Each test runs in its
# own psql session as: begin; lib/common.sql; the file's setup; the test; rollback -- so tests share
# nothing and leave nothing behind (names are random too, for a database others use at the same
# time). A test passes when psql runs it without an error (ON_ERROR_STOP): a test asserts with
# plain SQL `do $$ ... assert ... $$` blocks or the helpers of lib/common.sql.
#
# Prints one line per test ("ok"/"FAIL", file and name, and the error under a failure) and ends with
# "N passed, N failed". Exits non-zero if a test failed or the tests could not run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

conn=${1:-${CARILLON_TEST_DATABASE_URL:-}}
if [[ -z $conn ]]; then
	echo "run.sh: no database: pass a libpq connection string or set CARILLON_TEST_DATABASE_URL" >&2
	exit 2
fi
bin=${CARILLON_BIN:-$root/build/carillon}
if [[ ! -x $bin ]]; then
	echo "run.sh: $bin is not an executable (build first, or set CARILLON_BIN)" >&2
	exit 2
fi
command -v psql >/dev/null || { echo "run.sh: psql not found" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/carillon-sqltest.XXXXXX") || exit 2
trap 'rm -rf -- "$work"' EXIT

# `carillon migrate` wants the deployment's master key; the migrations do not use it, so any key
# does. The data directory is a throwaway one: with CARILLON_DATABASE_URL set nothing is kept there,
# and the default one (as root /var/lib/carillon) must not be touched.
master=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
if ! (cd "$work" && CARILLON_DATABASE_URL=$conn CARILLON_MASTER_KEY=$master CARILLON_DATA_DIR=$work/data \
	CARILLON_LOG_LEVEL=warn "$bin" migrate) >"$work/migrate.log" 2>&1; then
	echo "run.sh: carillon migrate failed:" >&2
	sed 's/^/    /' "$work/migrate.log" >&2
	exit 2
fi

passed=0
failed=0
for file in "$here"/*.sql; do
	[[ -e $file ]] || continue
	base=$(basename "$file" .sql)
	# The setup (before the first "-- test:" line), then one file per test.
	awk -v dir="$work" -v base="$base" '
		/^-- test: / { n++; name = substr($0, 10); out = sprintf("%s/%s.%03d.sql", dir, base, n);
		               print name > (out ".name"); close(out ".name");
		               print NR > (out ".line"); close(out ".line") }
		{ if (n == 0) print > (dir "/" base ".setup.sql"); else print > out }
	' "$file"
	touch "$work/$base.setup.sql"
	for t in "$work/$base".[0-9][0-9][0-9].sql; do
		[[ -e $t ]] || continue
		name=$(cat "$t.name")
		if out=$(printf '%s\n' 'begin;' "\\i '$here/lib/common.sql'" "\\i '$work/$base.setup.sql'" "\\i '$t'" 'rollback;' |
			psql "$conn" -X -q -o /dev/null -v ON_ERROR_STOP=1 2>&1); then
			passed=$((passed + 1))
			echo "ok   $base: $name"
		else
			failed=$((failed + 1))
			echo "FAIL $base: $name"
			# psql names the pieces it ran; name the lines of the test file instead.
			awk -v t="psql:$t:" -v setup="psql:$work/$base.setup.sql:" -v src="tests/sql/$base.sql:" \
				-v start="$(cat "$t.line")" '
				function relabel(line, piece, offset,   i, rest, n) {
					i = index(line, piece)
					if (i == 0) return line
					rest = substr(line, i + length(piece))
					n = rest + 0
					return substr(line, 1, i - 1) src (n + offset) substr(rest, length(n "") + 1)
				}
				{ print "    " relabel(relabel($0, t, start - 1), setup, 0) }' <<<"$out"
		fi
	done
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
