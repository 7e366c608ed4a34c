#!/usr/bin/env bash
# make demo: a Temporal dev server with its UI, a worker, an example receiver,
# one sample event of each kind, and each delivery's outcome.
# Ports: TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233), RECEIVER_PORT (9000), CODEC_PORT (8081).
# DEMO_KEEP_RUNNING=0 stops everything after printing the outcomes.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
RECEIVER_PORT=${RECEIVER_PORT:-9000}
CODEC_PORT=${CODEC_PORT:-8081}
DEMO_KEEP_RUNNING=${DEMO_KEEP_RUNNING:-1}
dir=.temporal/demo
mkdir -p "$dir"
rm -f "$dir"/temporal.db* # a fresh server each run: the sample events would otherwise be duplicates
export TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT" "$RECEIVER_PORT" "$CODEC_PORT"; do
  port_free "$p" || { echo "demo: port $p is in use (set TEMPORAL_PORT, TEMPORAL_UI_PORT, RECEIVER_PORT or CODEC_PORT)" >&2; exit 1; }
done

# A fresh payload encryption key for this demo's fresh server: worker and starter
# read it from HOOKRELAY_CODEC_KEY_FILE, and Temporal stores only ciphertext.
printf 'demo-%s:%s\n' "$(date +%Y%m%d)" "$(head -c 32 /dev/urandom | base64)" > "$dir/codec.key"
chmod 600 "$dir/codec.key"
export HOOKRELAY_CODEC_KEY_FILE=$dir/codec.key
# The codec server's token; the UI gets it in the codec endpoint's path (it cannot send headers).
head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$dir/codec-token"
chmod 600 "$dir/codec-token"

# A fresh signing secret for this demo; the endpoints file names the file, never the secret.
printf 'whsec_%s\n' "$(head -c 32 /dev/urandom | base64)" > "$dir/secret"
chmod 600 "$dir/secret"
cat > "$dir/endpoints.yaml" <<YAML
endpoints:
  - id: clinic-crm           # takes every event at once
    url: http://127.0.0.1:$RECEIVER_PORT/ok
    events: ["*"]
    secret_file: secret
  - id: billing              # answers 503 + Retry-After twice, then 200
    url: http://127.0.0.1:$RECEIVER_PORT/flaky
    events: [api_mail_log_delivered, api_mail_log_permanent_failure]
    secret_file: secret
    retry_schedule: [2s, 2s, 2s]
  - id: legacy-archive       # answers 410 Gone: hookrelay stops at once
    url: http://127.0.0.1:$RECEIVER_PORT/gone
    events: [api_mail_log_opened]
    secret_file: secret
YAML

wait_for() { # wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds, for up to 60s
  local what=$1; shift
  for _ in $(seq 1 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "demo: $what did not come up; see $dir/*.log" >&2; exit 1
}

echo "== starting codec server on 127.0.0.1:$CODEC_PORT, for the UI (logs: $dir/codec-server.log)"
bin/worker codec-server --listen "127.0.0.1:$CODEC_PORT" --token-file "$dir/codec-token" \
  --ui-origin "http://127.0.0.1:$TEMPORAL_UI_PORT" --accept-path-token >"$dir/codec-server.log" 2>&1 &
pids+=($!)

echo "== starting Temporal dev server (logs: $dir/temporal.log)"
bin/temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
  --db-filename "$dir/temporal.db" --log-level warn --dynamic-config-value matching.enableFairness=true \
  --ui-codec-endpoint "http://127.0.0.1:$CODEC_PORT/$(cat "$dir/codec-token")" >"$dir/temporal.log" 2>&1 &
pids+=($!)
wait_for "Temporal" bin/temporal operator cluster health --address "$TEMPORAL_ADDRESS"

echo "== starting example receiver on 127.0.0.1:$RECEIVER_PORT (logs: $dir/receiver.log)"
bin/receiver --listen "127.0.0.1:$RECEIVER_PORT" --secret-file "$dir/secret" >"$dir/receiver.log" 2>&1 &
pids+=($!)

echo "== starting worker (logs: $dir/worker.log)"
# The receiver is on loopback, which the network guard refuses unless admitted.
bin/worker --endpoints "$dir/endpoints.yaml" --allow-cidr 127.0.0.0/8 >"$dir/worker.log" 2>&1 &
pids+=($!)
wait_for "worker" grep -q '"worker started"' "$dir/worker.log"

echo "== sending one event of each kind"
ids=()
for ev in delivered temporary_failure permanent_failure opened; do
  while IFS= read -r line; do
    echo "   $ev: $line"
    ids+=("$(printf '%s' "$line" | sed -E 's/.*"delivery_id":"([^"]+)".*/\1/')")
  done < <(bin/starter send --endpoints "$dir/endpoints.yaml" --event "examples/events/$ev.json" --output json)
done

echo "== outcomes"
for id in "${ids[@]}"; do
  state=$(bin/starter status "$id" --wait --output json)
  st=$(printf '%s' "$state" | sed -E 's/.*"status":"([a-z]+)".*/\1/')
  n=$(printf '%s' "$state" | grep -o '"number":' | wc -l)
  printf '   %-56s %-9s after %d attempt(s)\n' "$id" "$st" "$n"
done

echo
echo "Temporal UI: http://127.0.0.1:$TEMPORAL_UI_PORT/namespaces/default/workflows (payloads decrypted by the codec server)"
echo "Inspect one: bin/starter status <workflow-id>    Receiver log: $dir/receiver.log"
if [ "$DEMO_KEEP_RUNNING" = 1 ]; then
  echo "Press Ctrl-C to stop the demo."
  wait
fi
