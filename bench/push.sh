#!/usr/bin/env bash
# Push delivery: one SendChannelMessage with PushNotification to a channel of MEMBERS members, each
# with one endpoint (APNs and FCM mixed by default), delivered to the local APNs and FCM stand-ins
# (HTTP/2 over TLS, tests/conformance/lib). Prints the time from the send to the last push, pushes/s,
# the server's CPU per push, REST p99 with and without pushes, and the reference measured in the same
# run (the same FCM request through the outbound module alone, on loopback HTTP/2) and ratio=
# (reference requests per push's time).
# Needs a build in build/ and tests/conformance/node_modules; starts a throwaway PostgreSQL.
#   bench/push.sh [members] [both|apns|fcm] [rest-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
members=${1:-10000}; mix=${2:-both}; rest_secs=${3:-5}
. bench/lib.sh
trap bench_cleanup EXIT
pg_start "${TMPDIR:-/tmp}" >/dev/null
bench_pg_settings # the embedded cluster's settings (and BENCH_PG_SETTINGS), as bench/send.sh
machine
node bench/push.mjs --members "$members" --mix "$mix" --rest-seconds "$rest_secs"
