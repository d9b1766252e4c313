#!/usr/bin/env bash
# The web chat in one command: examples/web-chat/start.sh
#
# Uses the Carillon at CARILLON_ENDPOINT (default https://127.0.0.1:8080) when one answers there;
# otherwise starts one with scripts/quickstart.sh (embedded PostgreSQL, same data directory as the
# README's quickstart) serving TLS with a self-signed certificate made here (certs/): the
# messaging session of amazon-chime-sdk-js is always wss://, so Carillon must speak TLS.
# The root key comes from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or else `carillon root-key`.
# Then the page is served on http://127.0.0.1:3000 (WEB_CHAT_LISTEN): another origin than the API.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

endpoint=${CARILLON_ENDPOINT:-https://127.0.0.1:8080}
cert=$here/certs/cert.pem
key=$here/certs/key.pem
if [[ ! -f $cert ]]; then
	mkdir -p "$here/certs"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$key" -out "$cert" -days 365 -subj /CN=127.0.0.1 \
		-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
	chmod 0644 "$cert" "$key" # the quickstart as root reads them as root, before it drops privileges
fi

# The quickstart's data directory (scripts/quickstart.sh chooses the same one).
if [[ $(id -u) -eq 0 && -z ${CARILLON_DATABASE_URL:-} && -z ${CARILLON_DATA_DIR:-} ]] &&
	! setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -x "$PWD" 2>/dev/null; then
	export CARILLON_DATA_DIR=/var/lib/carillon
fi

carillon_pid=
stop() {
	if [[ -n $carillon_pid ]]; then kill -TERM "$carillon_pid" 2>/dev/null || true; wait "$carillon_pid" 2>/dev/null || true; fi
}
trap stop EXIT

answers() { curl -s -o /dev/null --cacert "$cert" -m 2 "$endpoint/healthz"; }
if ! answers; then
	if curl -s -o /dev/null -m 2 "http://${endpoint#*://}/healthz"; then
		echo "web-chat: a Carillon without TLS answers on ${endpoint#*://}; the messaging session needs wss://." >&2
		echo "  Stop it (this script then starts one with TLS), or restart it with CARILLON_TLS_CERT=$cert CARILLON_TLS_KEY=$key" >&2
		exit 1
	fi
	hostport=${endpoint#*://}
	echo "web-chat: starting Carillon on $endpoint (scripts/quickstart.sh, TLS with $cert)"
	CARILLON_LISTEN=$hostport CARILLON_TLS_CERT=$cert CARILLON_TLS_KEY=$key CARILLON_PUBLIC_ENDPOINT=$hostport \
		scripts/quickstart.sh &
	carillon_pid=$!
	for _ in $(seq 1 600); do answers && break; kill -0 "$carillon_pid" 2>/dev/null || exit 1; sleep 0.5; done
fi

if [[ -z ${AWS_ACCESS_KEY_ID:-} || -z ${AWS_SECRET_ACCESS_KEY:-} ]]; then
	creds=$(build/carillon root-key)
	AWS_ACCESS_KEY_ID=$(sed -nE 's/^AccessKeyId:[[:space:]]+//p' <<<"$creds")
	AWS_SECRET_ACCESS_KEY=$(sed -nE 's/^SecretAccessKey:[[:space:]]+//p' <<<"$creds")
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
fi

[[ -d $here/node_modules ]] || (cd "$here" && npm ci --no-audit --no-fund)
export CARILLON_ENDPOINT=$endpoint NODE_EXTRA_CA_CERTS=$cert NODE_NO_WARNINGS=1
echo "web-chat: the certificate is self-signed: open $endpoint/healthz once in your browser and accept it" \
	"(or trust $cert), then the page below"
node "$here/server.mjs"
