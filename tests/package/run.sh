#!/usr/bin/env bash
# The Debian package, built and checked end to end (scripts/test.sh runs it as its "package" step;
# CARILLON_SKIP_PACKAGE_TEST=1 there skips it). Needs root: it installs the package on this machine
# (CI runs as root in a fresh container) and removes it again.
#
#   1. scripts/install-deps.sh --node --package (dpkg-dev, lintian, systemd for systemd-analyze)
#   2. builds in build-deb with Debian's build flags (dpkg-buildflags, hardening=+all), cpack -G DEB
#   3. dpkg-deb -I: name, version, architecture, Depends (computed by dpkg-shlibdeps) naming every
#      library Carillon links, Recommends postgresql-15, the conffiles and maintainer scripts
#   4. dpkg-deb -c: exactly the expected files, owners and modes
#   5. /etc/carillon/carillon.conf is what the packaged binary's `carillon config --defaults`
#      prints, lists every setting of `carillon --help`, and is accepted with every line uncommented
#   6. lintian: no error (warnings are printed)
#   7. installs it (apt-get install ./carillon_*.deb: dpkg -i plus its dependencies, waiting for the
#      dpkg lock): the carillon user, /var/lib/carillon (0700), the conffile registered
#   8. systemd-analyze verify on the installed units (and an instance of the template): no
#      message at all (verify exits 0 even on unknown keys); systemd-analyze security --offline
#   9. /usr/bin/carillon as the unit runs it (user carillon, no_new_privs, STATE_DIRECTORY, --config
#      /etc/carillon/carillon.conf) with its embedded PostgreSQL in a throwaway state directory:
#      /healthz answers 200, the AWS SDK creates and reads an AppInstance signed with the root key
#      from `carillon root-key`, a wrong signature is refused; SIGTERM stops it and its PostgreSQL
#  10. dpkg -r keeps the conffile, dpkg --purge removes it (through apt-get/dpkg with the lock wait)
#
# The units' sandboxing itself needs a booted systemd, which a container does not have: it is
# checked statically (verify, security) only. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

# shellcheck source=tests/lib/pg.sh
. tests/lib/pg.sh

build=${CARILLON_PACKAGE_BUILD_DIR:-build-deb}
lock_wait=(-o DPkg::Lock::Timeout=600)
installed=0
state_created=0
server_pid=
work=

log() { echo "package: $*" >&2; }
fail() {
	log "FAIL: $*"
	exit 1
}

cleanup() {
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [[ -n $work && -e $work/state/postgres/data/postmaster.pid ]]; then
		(cd / && setpriv --reuid=carillon --regid=carillon --init-groups -- \
			"$(pg_bindir)/pg_ctl" -D "$work/state/postgres/data" -m immediate -w stop >/dev/null 2>&1) || true
	fi
	if [[ $installed -eq 1 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get "${lock_wait[@]}" purge -y -q carillon >/dev/null 2>&1 || true
	fi
	if [[ $state_created -eq 1 ]]; then
		rmdir /var/lib/carillon 2>/dev/null || true
	fi
	[[ -z $work ]] || rm -rf -- "$work"
}
trap cleanup EXIT

[[ $(id -u) -eq 0 ]] || fail "needs root (it installs the package); set CARILLON_SKIP_PACKAGE_TEST=1 to skip it"

# ---- 1. dependencies ---------------------------------------------------------------------------
scripts/install-deps.sh --node --package </dev/null >&2 || fail "scripts/install-deps.sh --node --package failed"
if dpkg-query -W -f='${Status}' carillon 2>/dev/null | grep -qv 'not-installed'; then
	fail "a carillon package is already installed on this machine: remove it first (dpkg --purge carillon)"
fi
[[ -e /var/lib/carillon ]] || state_created=1

# ---- 2. build ----------------------------------------------------------------------------------
version=$(sed -nE 's/^project\(carillon VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)
arch=$(dpkg --print-architecture)
[[ -n $version ]] || fail "no version in CMakeLists.txt"
log "building carillon $version ($arch) in $build"
(
	export DEB_BUILD_MAINT_OPTIONS=hardening=+all
	eval "$(dpkg-buildflags --export=sh)"
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=None -DCARILLON_WERROR=ON -DCARILLON_SANITIZE= \
		-DCMAKE_C_FLAGS="$CFLAGS $CPPFLAGS" -DCMAKE_EXE_LINKER_FLAGS="$LDFLAGS" >/dev/null
	cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target carillon carillon-package-files
	rm -f "$build"/carillon_*.deb
	cd "$build" && cpack -G DEB >/dev/null
) >&2 || fail "building the package failed"
deb=$root/$build/carillon_${version}_${arch}.deb
[[ -f $deb ]] || fail "cpack made no $deb"
work=$(mktemp -d /tmp/carillon-package.XXXXXX)
chmod 0711 "$work"

# ---- 3. control fields -------------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == carillon ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version" ]] || fail "Version: $(field Version), expected $version"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture: $(field Architecture)"
depends=$(field Depends)
for lib in libc6 libwebsockets libpq5 libuv1 libjansson4 libsodium23 libcurl4 libssl3; do
	[[ ", $depends" == *", $lib"* ]] || fail "Depends lacks $lib: $depends"
done
[[ $(field Recommends) == *postgresql-15* ]] || fail "Recommends: $(field Recommends)"
dpkg-deb -e "$deb" "$work/control"
[[ $(cat "$work/control/conffiles") == /etc/carillon/carillon.conf ]] ||
	fail "conffiles: $(cat "$work/control/conffiles")"
for s in postinst prerm postrm; do
	[[ -x $work/control/$s ]] || fail "no executable $s"
	sh -n "$work/control/$s" || fail "$s is not valid sh"
done
log "dpkg-deb -I: ok (Depends: $depends)"

# ---- 4. contents -------------------------------------------------------------------------------
expected="-rwxr-xr-x root/root ./usr/bin/carillon
-rw-r--r-- root/root ./etc/carillon/carillon.conf
-rw-r--r-- root/root ./lib/systemd/system/carillon.service
-rw-r--r-- root/root ./lib/systemd/system/carillon@.service
-rw-r--r-- root/root ./usr/lib/sysusers.d/carillon.conf
-rw-r--r-- root/root ./usr/lib/tmpfiles.d/carillon.conf
-rw-r--r-- root/root ./usr/share/doc/carillon/README.md
-rw-r--r-- root/root ./usr/share/doc/carillon/changelog.gz
-rw-r--r-- root/root ./usr/share/doc/carillon/compatibility.md
-rw-r--r-- root/root ./usr/share/doc/carillon/copyright
-rw-r--r-- root/root ./usr/share/doc/carillon/examples/haproxy.cfg
-rw-r--r-- root/root ./usr/share/doc/carillon/operations.md
-rw-r--r-- root/root ./usr/share/man/man1/carillon.1.gz"
actual=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $1, $2, $6 }')
if [[ $(sort <<<"$actual") != $(sort <<<"$expected") ]]; then
	diff <(sort <<<"$expected") <(sort <<<"$actual") >&2 || true
	fail "dpkg-deb -c: unexpected contents (< expected, > found)"
fi
bad_dirs=$(dpkg-deb -c "$deb" | awk '$1 ~ /^d/ && ($1 != "drwxr-xr-x" || $2 != "root/root")')
[[ -z $bad_dirs ]] || fail "directories not root-owned 0755: $bad_dirs"
log "dpkg-deb -c: ok ($(wc -l <<<"$actual") files)"

# ---- 5. the config file ------------------------------------------------------------------------
dpkg-deb -x "$deb" "$work/x"
bin_x=$work/x/usr/bin/carillon
conf_x=$work/x/etc/carillon/carillon.conf
diff -u <("$bin_x" config --defaults) "$conf_x" >&2 || fail "carillon.conf differs from 'carillon config --defaults'"
help_keys=$("$bin_x" --help | sed -nE 's/^  (CARILLON_[A-Z0-9_]+) .*/\1/p' | grep -vx CARILLON_CONFIG | sort)
conf_keys=$(sed -nE 's/^#(CARILLON_[A-Z0-9_]+)=.*/\1/p' "$conf_x" | sort)
[[ -n $help_keys && $help_keys == "$conf_keys" ]] ||
	fail "the settings of carillon.conf and of --help differ: $(diff <(echo "$help_keys") <(echo "$conf_keys") | tr '\n' ' ')"
grep -qx '#CARILLON_LISTEN=127.0.0.1:8080' "$conf_x" || fail "carillon.conf lacks the listen default"
sed -E 's/^#(CARILLON_[A-Z0-9_]+=)/\1/' "$conf_x" >"$work/all-set.conf"
chmod 0600 "$work/all-set.conf"
env -u CARILLON_CONFIG "$bin_x" --config "$work/all-set.conf" --version >/dev/null ||
	fail "carillon refuses its own carillon.conf with every setting uncommented"
log "carillon.conf: ok ($(wc -l <<<"$conf_keys") settings, each with its default)"

# ---- 6. lintian --------------------------------------------------------------------------------
lintian_out=$work/lintian.txt
if ! lintian --fail-on error "$deb" >"$lintian_out" 2>&1; then
	cat "$lintian_out" >&2
	fail "lintian reports errors"
fi
grep -E '^[EW]:' "$lintian_out" >&2 || true
log "lintian: no error ($(grep -c '^W:' "$lintian_out" || true) warnings)"

# ---- 7. install ----------------------------------------------------------------------------------
log "installing $deb"
installed=1
DEBIAN_FRONTEND=noninteractive apt-get "${lock_wait[@]}" install -y -q --no-install-recommends "$deb" >&2 ||
	fail "apt-get install $deb failed"
[[ $(dpkg-query -W -f='${Status}' carillon) == "install ok installed" ]] || fail "carillon is not installed"
[[ $(/usr/bin/carillon --version) == "carillon $version" ]] || fail "/usr/bin/carillon --version: $(/usr/bin/carillon --version)"
getent passwd carillon >/dev/null || fail "postinst made no carillon user"
[[ $(stat -c '%U %a' /var/lib/carillon) == "carillon 700" ]] ||
	fail "/var/lib/carillon is $(stat -c '%U %a' /var/lib/carillon), expected carillon 700"
dpkg-query -W -f='${Conffiles}' carillon | grep -q '^ /etc/carillon/carillon.conf ' ||
	fail "/etc/carillon/carillon.conf is not a registered conffile"
log "install: ok"

# ---- 8. systemd-analyze ------------------------------------------------------------------------
# verify exits 0 on unknown keys and unparsable values, so any message at all is a failure.
mkdir "$work/units"
cp /lib/systemd/system/carillon@.service "$work/units/carillon@ci.service"
for unit in /lib/systemd/system/carillon.service "$work/units/carillon@ci.service"; do
	out=$(cd "$work/units" && systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
	[[ -z $out ]] || fail "systemd-analyze verify $unit: $out"
	out=$(systemd-analyze security --offline=yes --threshold=30 "$unit" 2>&1) ||
		fail "systemd-analyze security $unit: exposure above 3.0: $(tail -n 1 <<<"$out")"
	log "systemd-analyze: $(basename "$unit"): verified; $(tail -n 1 <<<"$out" | sed 's/^→ //')"
done

# ---- 9. run the installed binary as the unit does ----------------------------------------------
port=$(node -e 'const s = require("net").createServer();
	s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
state=$work/state
install -d -m 0700 -o carillon -g carillon "$state"
# Run in a subshell: it becomes carillon (exec), so $! is carillon's pid.
as_unit() {
	cd / && exec setpriv --reuid=carillon --regid=carillon --init-groups --no-new-privs -- \
		env -i PATH=/usr/bin:/bin STATE_DIRECTORY="$state" CARILLON_LISTEN="127.0.0.1:$port" \
		/usr/bin/carillon --config /etc/carillon/carillon.conf "$@"
}
log "starting /usr/bin/carillon as user carillon on 127.0.0.1:$port, state in $state"
(as_unit serve) </dev/null >"$work/serve.log" 2>&1 &
server_pid=$!
status=
for ((i = 0; i < 600; i++)); do # 120 s: the first start runs initdb
	kill -0 "$server_pid" 2>/dev/null || break
	status=$(node -e 'require("http").get(process.argv[1], (r) => console.log(r.statusCode))
		.on("error", () => console.log(0))' "http://127.0.0.1:$port/healthz")
	[[ $status == 200 ]] && break
	sleep 0.2
done
[[ $status == 200 ]] || { cat "$work/serve.log" >&2; fail "GET /healthz never answered 200 (last: ${status:-none})"; }
[[ -e $state/postgres/data/postmaster.pid ]] ||
	{ cat "$work/serve.log" >&2; fail "no embedded PostgreSQL under STATE_DIRECTORY ($state/postgres)"; }
[[ $(stat -c %U "$state/master.key") == carillon ]] || fail "master.key is not carillon's"
keys=$(as_unit root-key) || fail "carillon root-key failed"
akid=$(sed -nE 's/^AccessKeyId: +//p' <<<"$keys")
secret=$(sed -nE 's/^SecretAccessKey: +//p' <<<"$keys")
[[ -n $akid && -n $secret ]] || fail "carillon root-key printed no credential"
out=$(node tests/package/signed-call.mjs "http://127.0.0.1:$port" "$akid" "$secret" 2>"$work/node.err") ||
	{ cat "$work/serve.log" "$work/node.err" >&2; fail "signed API call failed"; }
log "installed binary: /healthz 200, signed calls: $out"
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[[ $rc -eq 0 ]] || { cat "$work/serve.log" >&2; fail "carillon exited with status $rc after SIGTERM"; }
[[ ! -e $state/postgres/data/postmaster.pid ]] || fail "the embedded PostgreSQL outlived carillon"
log "SIGTERM: clean exit"

# ---- 10. remove and purge ----------------------------------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get "${lock_wait[@]}" remove -y -q carillon >/dev/null || fail "remove failed"
[[ ! -e /usr/bin/carillon ]] || fail "/usr/bin/carillon survived dpkg -r"
[[ -f /etc/carillon/carillon.conf ]] || fail "dpkg -r removed the conffile"
[[ $(dpkg-query -W -f='${Status}' carillon) == "deinstall ok config-files" ]] || fail "after remove: $(dpkg-query -W -f='${Status}' carillon)"
DEBIAN_FRONTEND=noninteractive apt-get "${lock_wait[@]}" purge -y -q carillon >/dev/null || fail "purge failed"
installed=0
[[ ! -e /etc/carillon/carillon.conf ]] || fail "dpkg --purge left /etc/carillon/carillon.conf"
st=$(dpkg-query -W -f='${Status}' carillon 2>/dev/null || true)
[[ -z $st || $st == *not-installed ]] || fail "after purge: $st"
log "remove/purge: ok (the state directory and the carillon user are kept, by design)"
echo "package: ok"
