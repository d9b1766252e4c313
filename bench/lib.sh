# Shared by the bench scripts: a throwaway PostgreSQL (durable commits) and Carillon nodes.
. tests/lib/pg.sh
export CARILLON_ROOT_ACCESS_KEY_ID=AKIABENCHBENCHBENCH0 CARILLON_ROOT_SECRET_ACCESS_KEY=benchSecretKeyBenchSecretKeyBenchSecret0
export CARILLON_MASTER_KEY=${CARILLON_MASTER_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
# The benchmarks hold many sessions per user (38,000 over 1,000 users): above the per-user quota.
export CARILLON_MAX_SESSIONS_PER_USER=${CARILLON_MAX_SESSIONS_PER_USER:-100000}
export NODE_NO_WARNINGS=1
bench_pids=()
bench_cleanup() { for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pg_stop; }
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# start_node PORT [extra env...]: a Carillon process on 127.0.0.1:PORT (one worker unless CARILLON_WORKERS
# says otherwise; with more, the pid is the supervisor's); echoes its pid
start_node() {
	local port=$1; shift
	env CARILLON_DATABASE_URL="$CARILLON_TEST_DATABASE_URL" CARILLON_LISTEN=127.0.0.1:$port CARILLON_WORKERS="${CARILLON_WORKERS:-1}" "$@" \
		build/carillon serve >>"${BENCH_LOG:-/tmp/carillon-bench.log}" 2>&1 &
	echo $!
}
rss_kb() { awk '/VmRSS/{print $2}' /proc/$1/status; }
machine() { echo "machine: $(nproc) cores, $(awk '/MemTotal/{print int($2/1024/1024)" GiB"}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"; }
