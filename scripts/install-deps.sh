#!/usr/bin/env bash
# Installs what building and running Carillon needs on Debian 12, and nothing that is already there.
#
#   scripts/install-deps.sh          build + run dependencies (compiler, libraries, PostgreSQL 15, haproxy),
#                                    and clang with its libFuzzer/sanitizer runtimes for tests/fuzz
#   scripts/install-deps.sh --node   also Node.js (>= 18, or what tests/conformance/package.json
#                                    asks for) and npm, and the conformance tests' npm packages
#                                    (npm ci in tests/conformance when its package-lock.json changed),
#                                    Chromium and the web chat example's packages (examples/web-chat)
#   scripts/install-deps.sh --package   also what tests/package/run.sh needs to build and check the
#                                    Debian package: dpkg-dev, lintian, systemd (systemd-analyze)
#
# Idempotent; needs no stdin (CI=true is fine). Runs apt-get update only when something is missing.
# As a non-root user it uses sudo (non-interactively when there is no terminal).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

cd "$(dirname "$0")/.."

with_node=0
with_package=0
for arg in "$@"; do
	case "$arg" in
	--node) with_node=1 ;;
	--package) with_package=1 ;;
	-h | --help)
		sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "install-deps: unknown option: $arg" >&2
		exit 2
		;;
	esac
done

packages=(
	build-essential cmake pkg-config git ca-certificates
	libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libpq-dev libjansson-dev libsodium-dev libcmocka-dev
	# outbound HTTP (src/outbound): libcurl with OpenSSL, HTTP/2 (nghttp2) and the threaded resolver;
	# OpenSSL's libssl/libcrypto for the extra CA store and JWT signing
	libcurl4-openssl-dev libssl-dev
	postgresql-15 # the server; on Debian 12 it also provides postgresql-contrib-15
	haproxy
	curl # the CLI: the HTTP/2 tests sign requests with curl --aws-sigv4
	openssl # the CLI: tests/conformance/lib/realtime.mjs makes the test certificate with it
	python3-boto3 awscli # Debian's boto3 and AWS CLI, driven by tests/conformance/python-clients.test.mjs
	# The fuzz harnesses (tests/fuzz): clang 14, and libclang-rt-14-dev for -fsanitize=fuzzer,address,undefined
	# (libclang_rt.fuzzer-x86_64.a, libclang_rt.asan-*.a; only a Recommends of clang's packages).
	clang libclang-rt-14-dev
)

if [[ $(id -u) -eq 0 ]]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	if [[ -t 0 ]]; then as_root=(sudo); else as_root=(sudo -n); fi
else
	as_root=(missing-sudo)
fi

is_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

apt_updated=0
apt_install() {
	if [[ ${as_root[0]-} == missing-sudo ]]; then
		echo "install-deps: these packages are missing: $*" >&2
		echo "install-deps: run this script as root, or install sudo, or install them yourself" >&2
		exit 1
	fi
	echo "install-deps: installing: $*"
	if [[ $apt_updated -eq 0 ]]; then
		"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
		apt_updated=1
	fi
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

if [[ $with_package -eq 1 ]]; then
	# tests/package/run.sh: cpack's dpkg-shlibdeps and dpkg-buildflags, lintian, systemd-analyze
	# (systemd-sysusers and systemd-tmpfiles, which the package's postinst uses, come with it).
	packages+=(dpkg-dev lintian systemd)
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: this script needs Debian (dpkg and apt-get); install the equivalents of:" >&2
	echo "  ${packages[*]}" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	is_installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	apt_install "${missing[@]}"
fi

node_major() {
	local v
	v=$(node --version 2>/dev/null) || return 1
	v=${v#v}
	echo "${v%%.*}"
}

# The lowest Node.js major the conformance tests accept: their package.json's engines.node (">=N"),
# and never below 18 (node --test with reporters).
required_node_major() {
	local m
	m=$(sed -nE 's/.*"node"[[:space:]]*:[[:space:]]*">=[[:space:]]*v?([0-9]+).*/\1/p' \
		tests/conformance/package.json 2>/dev/null | head -n 1)
	if [[ -z $m || $m -lt 18 ]]; then m=18; fi
	echo "$m"
}

if [[ $with_node -eq 1 ]]; then
	# Debian 12's nodejs is Node 18 without npm (that is the separate npm package); other builds
	# (NodeSource's, say) bundle npm, so npm is added only if still missing once node is there.
	if ! command -v node >/dev/null 2>&1; then
		apt_install nodejs
		hash -r
	fi
	if ! command -v npm >/dev/null 2>&1; then
		apt_install npm
		hash -r
	fi
	need=$(required_node_major)
	major=$(node_major || echo 0)
	if [[ $major -lt $need ]]; then
		# Newer than Debian has: the official build, as shipped in the npm registry's
		# node-linux-<arch> package, installed under /usr/local (ahead of /usr/bin in PATH).
		case $(uname -m) in
		x86_64) arch=x64 ;;
		aarch64) arch=arm64 ;;
		armv7l) arch=armv7l ;;
		ppc64le) arch=ppc64le ;;
		s390x) arch=s390x ;;
		*)
			echo "install-deps: need Node.js >= $need, have $(node --version), and no build for $(uname -m)" >&2
			exit 1
			;;
		esac
		echo "install-deps: node $(node --version) < $need; installing node-linux-$arch@$need from the npm registry"
		if [[ ${as_root[0]-} == missing-sudo ]]; then
			echo "install-deps: run this script as root, or install sudo, or install Node.js >= $need yourself" >&2
			exit 1
		fi
		"${as_root[@]}" npm install --global --prefix /usr/local --no-audit --no-fund "node-linux-$arch@$need"
		hash -r
		major=$(node_major || echo 0)
		if [[ $major -lt $need ]]; then
			echo "install-deps: need Node.js >= $need, but $(command -v node) is $(node --version)" \
				"(is /usr/local/bin ahead of /usr/bin in PATH?)" >&2
			exit 1
		fi
	fi

	# Headless Chromium for the web chat's browser test (tests/conformance/web-chat.test.mjs drives
	# it with puppeteer-core): a test dependency, so only with --node.
	is_installed chromium || apt_install chromium

	# The npm packages of the conformance tests and of the web chat example (its browser test
	# bundles the page), reinstalled only when a package-lock.json changed.
	for dir in tests/conformance examples/web-chat; do
		if [[ -f $dir/package-lock.json ]]; then
			want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
			have=$(cat "$dir/node_modules/.carillon-lock-hash" 2>/dev/null || true)
			if [[ ! -d $dir/node_modules || $want != "$have" ]]; then
				echo "install-deps: npm ci in $dir"
				(cd "$dir" && npm ci --no-audit --no-fund)
				echo "$want" >"$dir/node_modules/.carillon-lock-hash"
			fi
		fi
	done
fi

echo "install-deps: all dependencies present"
