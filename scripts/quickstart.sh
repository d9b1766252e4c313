#!/usr/bin/env bash
# Installs what is missing, builds Carillon and starts it: scripts/quickstart.sh [serve options]
# With no CARILLON_DATABASE_URL, Carillon runs its own PostgreSQL under its data directory
# (CARILLON_DATA_DIR, by default ./carillon-data; as root /var/lib/carillon). It prints its endpoint
# and root access key id; the root secret is printed once, on the terminal, when it is generated at
# the first start (later: `build/carillon root-key`, with the same settings, prints it).
# As root, Carillon runs as the unprivileged user CARILLON_USER ("carillon", created if missing)
# once its port is bound, and the data directory belongs to that user.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"

# As root, the embedded PostgreSQL runs as an unprivileged user, which cannot reach a data directory
# inside a checkout under /root (mode 0700). Then default to /var/lib/carillon instead.
if [[ $(id -u) -eq 0 && -z ${CARILLON_DATABASE_URL:-} && -z ${CARILLON_DATA_DIR:-} ]] &&
	! setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -x "$PWD" 2>/dev/null; then
	export CARILLON_DATA_DIR=/var/lib/carillon
	echo "quickstart: $PWD is not reachable by unprivileged users; data directory: $CARILLON_DATA_DIR"
fi

exec build/carillon serve "$@"
