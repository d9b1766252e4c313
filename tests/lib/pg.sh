#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: its own cluster in a temporary directory, listening only on a
# unix socket in that directory (no TCP), trust authentication, fsync and synchronous_commit on.
#
# Sourced (by scripts/test.sh):
#   pg_start <parent-dir>   initdb + start in a new directory under <parent-dir> (or under /tmp when
#                           the cluster user cannot reach it or the socket path would be too long);
#                           exports CARILLON_TEST_DATABASE_URL (a libpq conninfo) and PG_TEST_DIR
#   pg_stop [<cluster-dir>] stop it and delete its directory (kept if PG_TEST_KEEP=1)
#   pg_user_dir <parent-dir> <prefix>
#                           print a new empty directory (mode 0711) that the cluster user can reach
#   pg_as_user <cmd...>     run a command as the cluster user
# Run directly: tests/lib/pg.sh start <parent-dir> | stop <cluster-dir>
#
# PostgreSQL refuses to run as root: as root the cluster runs as the system user "carillon" (created
# if missing, like `carillon serve` does); otherwise as the current user. The PostgreSQL role is
# "carillon" either way.

PG_TEST_OS_USER=carillon

pg_bindir() {
	local d
	if [[ -n ${CARILLON_PG_BINDIR:-} ]]; then
		echo "$CARILLON_PG_BINDIR"
		return 0
	fi
	d=$(pg_config --bindir 2>/dev/null) || true
	if [[ -n $d && -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
		echo "$d"
		return 0
	fi
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -V -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
			return 0
		fi
	done
	echo "pg.sh: PostgreSQL server binaries not found (install postgresql-15)" >&2
	return 1
}

pg_ensure_user() {
	[[ $(id -u) -eq 0 ]] || return 0
	getent passwd "$PG_TEST_OS_USER" >/dev/null && return 0
	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
		"$PG_TEST_OS_USER" || getent passwd "$PG_TEST_OS_USER" >/dev/null
}

pg_as_user() {
	if [[ $(id -u) -eq 0 ]]; then
		# setpriv (util-linux) execs the command directly: no shell, no PAM session. From /, as the
		# current directory may be out of the user's reach (a checkout under /root); paths are absolute.
		(cd / && exec setpriv --reuid="$PG_TEST_OS_USER" --regid="$PG_TEST_OS_USER" --init-groups -- "$@")
	else
		"$@"
	fi
}

# A new empty directory, mode 0711, under <parent> if the cluster user can reach it there and a unix
# socket path inside it stays short enough, else under /tmp.
pg_user_dir() {
	local parent=$1 prefix=$2 dir
	pg_ensure_user || return 1
	mkdir -p "$parent" || return 1
	parent=$(cd "$parent" && pwd) || return 1
	dir=$(mktemp -d "$parent/$prefix.XXXXXX") || return 1
	chmod 0711 "$dir"
	# 107 bytes of sun_path, minus what goes under the directory (".../postgres/run/.s.PGSQL.5432").
	if [[ ${#dir} -gt 60 ]] || ! pg_as_user test -x "$dir"; then
		rmdir "$dir"
		dir=$(mktemp -d "${TMPDIR:-/tmp}/carillon-$prefix.XXXXXX") || return 1
		chmod 0711 "$dir"
	fi
	echo "$dir"
}

# libpq conninfo value: quoted when needed, with \ and ' escaped.
pg_conninfo_value() {
	local v=$1
	if [[ -n $v && $v != *[[:space:]\'\\]* ]]; then
		printf '%s' "$v"
	else
		v=${v//\\/\\\\}
		v=${v//\'/\\\'}
		printf "'%s'" "$v"
	fi
}

pg_start() {
	local parent=${1:?pg_start <parent-dir>} bindir dir
	bindir=$(pg_bindir) || return 1
	dir=$(pg_user_dir "$parent" pg) || return 1
	case $dir in *[\"\$\`\\]*)
		echo "pg.sh: unusable directory name (initdb passes it through sh): $dir" >&2
		return 1 ;;
	esac
	mkdir -m 0700 "$dir/run"
	if [[ $(id -u) -eq 0 ]]; then
		chown "$PG_TEST_OS_USER:" "$dir" "$dir/run"
	fi
	if ! pg_as_user "$bindir/initdb" -D "$dir/data" -U carillon --auth-local=trust --auth-host=reject \
		-E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		echo "pg.sh: initdb failed" >&2
		return 1
	fi
	local run_q=${dir//\'/\'\'}/run
	cat >>"$dir/data/postgresql.conf" <<-EOF

		# tests/lib/pg.sh
		listen_addresses = ''
		port = 5432
		unix_socket_directories = '$run_q'
		unix_socket_permissions = 0700
		max_connections = 200
		fsync = on
		synchronous_commit = on
		full_page_writes = on
	EOF
	if ! pg_as_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null; then
		cat "$dir/postgres.log" >&2 || true
		echo "pg.sh: pg_ctl start failed" >&2
		return 1
	fi
	if ! "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -p 5432 -U carillon -d postgres \
		-c 'CREATE DATABASE carillon' >/dev/null; then
		echo "pg.sh: CREATE DATABASE failed" >&2
		pg_stop "$dir"
		return 1
	fi
	PG_TEST_DIR=$dir
	CARILLON_TEST_DATABASE_URL="host=$(pg_conninfo_value "$dir/run") port=5432 dbname=carillon user=carillon"
	export PG_TEST_DIR CARILLON_TEST_DATABASE_URL
	echo "pg.sh: PostgreSQL running in $dir ($CARILLON_TEST_DATABASE_URL)" >&2
}

pg_stop() {
	local dir=${1:-${PG_TEST_DIR:-}} bindir
	[[ -n $dir && -d $dir ]] || return 0
	if [[ -e $dir/data/postmaster.pid ]]; then
		bindir=$(pg_bindir) || return 1
		pg_as_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ||
			echo "pg.sh: pg_ctl stop failed in $dir" >&2
	fi
	if [[ ${PG_TEST_KEEP:-0} != 1 && ! -e $dir/data/postmaster.pid ]]; then
		rm -rf -- "$dir"
	fi
	if [[ $dir == "${PG_TEST_DIR:-}" ]]; then
		unset PG_TEST_DIR CARILLON_TEST_DATABASE_URL
	fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	case ${1:-} in
	start)
		pg_start "${2:?usage: pg.sh start <parent-dir>}"
		echo "PG_TEST_DIR=$(printf '%q' "$PG_TEST_DIR")"
		echo "CARILLON_TEST_DATABASE_URL=$(printf '%q' "$CARILLON_TEST_DATABASE_URL")"
		;;
	stop) pg_stop "${2:?usage: pg.sh stop <cluster-dir>}" ;;
	*)
		echo "usage: $0 start <parent-dir> | stop <cluster-dir>" >&2
		exit 2
		;;
	esac
fi
