#!/usr/bin/env bash
# REST throughput of DescribeAppInstanceUser (a signed GET, one database round trip) from a loopback
# client: starts a throwaway PostgreSQL and one Carillon process, creates one user, then runs
# carillon-rest-bench at 1, 16 and 64 connections, RUNS times each, and prints each run plus the
# server's RSS at idle and after the load. Needs a build in build/ (cmake -S . -B build && cmake --build build)
# and tests/conformance/node_modules (scripts/install-deps.sh --node).
#   bench/rest.sh [seconds-per-run] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
runs=${2:-3}
. tests/lib/pg.sh
trap 'kill $pid 2>/dev/null || true; pg_stop' EXIT
pg_start "${TMPDIR:-/tmp}"
port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export CARILLON_DATABASE_URL=$CARILLON_TEST_DATABASE_URL CARILLON_LISTEN=127.0.0.1:$port \
	CARILLON_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
	CARILLON_ROOT_ACCESS_KEY_ID=AKIABENCHBENCHBENCH0 CARILLON_ROOT_SECRET_ACCESS_KEY=benchSecretKeyBenchSecretKeyBenchSecret0 \
	CARILLON_WORKERS=${CARILLON_WORKERS:-1} # CARILLON_WORKERS=2 bench/rest.sh: two workers (RSS figures are then the parent's)
build/carillon serve >/tmp/carillon-bench.log 2>&1 &
pid=$!
for _ in $(seq 50); do
	(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
	sleep 0.2
done
arn=$(cd tests/conformance && node --no-warnings -e '
const { ChimeSDKIdentityClient, CreateAppInstanceCommand, CreateAppInstanceUserCommand } = require("@aws-sdk/client-chime-sdk-identity");
const c = new ChimeSDKIdentityClient({ endpoint: "http://" + process.env.CARILLON_LISTEN, region: "us-east-1",
  credentials: { accessKeyId: process.env.CARILLON_ROOT_ACCESS_KEY_ID, secretAccessKey: process.env.CARILLON_ROOT_SECRET_ACCESS_KEY } });
(async () => {
  const a = await c.send(new CreateAppInstanceCommand({ Name: "bench" }));
  const u = await c.send(new CreateAppInstanceUserCommand({ AppInstanceArn: a.AppInstanceArn, AppInstanceUserId: "bench-user", Name: "Bench User" }));
  console.log(u.AppInstanceUserArn);
})();' 2>/dev/null)
path="/app-instance-users/$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$arn")"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{print int($2/1024/1024)" GiB"}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "idle RSS: $(awk '/VmRSS/{print $2" kB"}' /proc/$pid/status)"
for c in 1 16 64; do
	for r in $(seq "$runs"); do
		build/carillon-rest-bench --port "$port" --akid "$CARILLON_ROOT_ACCESS_KEY_ID" \
			--secret "$CARILLON_ROOT_SECRET_ACCESS_KEY" --path "$path" --connections "$c" --seconds "$secs"
	done
done
echo "RSS after load: $(awk '/VmRSS/{print $2" kB"}' /proc/$pid/status)"
