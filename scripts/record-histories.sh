#!/usr/bin/env bash
# Records the workflow histories the replay test replays (workflows/testdata/),
# from a throwaway dev server, worker and example receiver, with fake events.
# Run it after a deliberate change to DeliveryWorkflow has been guarded (with
# workflow.GetVersion or an input flag): it ADDS histories named with TAG;
# keep the old ones, which running workflows may still have.
#   scripts/record-histories.sh TAG
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:?usage: scripts/record-histories.sh TAG (names the new files, e.g. local-first)}
make -s tools build
dir=$(mktemp -d)
port=7399 rport=9399 rport2=9398
export TEMPORAL_ADDRESS=127.0.0.1:$port
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$dir"' EXIT

printf 'whsec_%s\n' "$(head -c 32 /dev/urandom | base64)" > "$dir/secret"
cat > "$dir/endpoints.yaml" <<YAML
endpoints:
  - {id: parked, url: "http://127.0.0.1:$rport/down", events: ["*"], secret_file: secret, retry_schedule: [1h]}
  - {id: flaky, url: "http://127.0.0.1:$rport/flaky", events: ["*"], secret_file: secret, retry_schedule: [1h, 1h]}
  - {id: bounded, url: "http://127.0.0.1:$rport/down", events: [api_mail_log_delivered], secret_file: secret, retry_schedule: [1h, 1h, 1h, 1h, 1h, 1h, 1h, 1h]}
  - {id: ok, url: "http://127.0.0.1:$rport/ok", events: ["*"], secret_file: secret}
  - {id: pausable, url: "http://127.0.0.1:$rport/ok", events: [api_mail_log_opened], secret_file: secret}
  - {id: rated, url: "http://127.0.0.1:$rport/ok", events: [api_mail_log_opened, api_mail_log_permanent_failure], secret_file: secret, rate_limit: 0.2}
  - {id: probed, url: "http://127.0.0.1:$rport2/flaky", events: [api_mail_log_temporary_failure], secret_file: secret, retry_schedule: [1s, 1h], circuit: {open_after: 1, probe_every: [5s]}}
YAML
bin/temporal server start-dev --ip 127.0.0.1 --port $port --headless --log-level error >"$dir/temporal.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do bin/temporal operator cluster health >/dev/null 2>&1 && break; sleep 0.5; done
bin/receiver --listen 127.0.0.1:$rport --secret-file "$dir/secret" --flaky-failures 1 --flaky-retry-after 0 >"$dir/receiver.log" 2>&1 &
pids+=($!)
# Refuses each webhook-id twice: the first attempt (which opens probed's circuit) and the first probe.
bin/receiver --listen 127.0.0.1:$rport2 --secret-file "$dir/secret" --flaky-failures 2 --flaky-retry-after 0 >"$dir/receiver2.log" 2>&1 &
pids+=($!)
# Plaintext on purpose: the fixtures hold fake data only, and replaying them must not need a key.
bin/worker --endpoints "$dir/endpoints.yaml" --insecure-plaintext --allow-cidr 127.0.0.0/8 --circuit-refresh 200ms >"$dir/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do grep -q '"worker started"' "$dir/worker.log" && break; sleep 0.5; done

# Endpoint health: pause an endpoint, so the next event's delivery parks; resume drains it.
bin/starter endpoint pause pausable --endpoints "$dir/endpoints.yaml" --insecure-plaintext --reason "recorded for the replay test" >/dev/null
for _ in $(seq 1 120); do grep -q '"endpoint circuit changed","endpoint_id":"pausable","state":"paused"' "$dir/worker.log" && break; sleep 0.2; done

ids=$(bin/starter send --insecure-plaintext --endpoints "$dir/endpoints.yaml" --event examples/events/delivered.json --output json |
  sed -E 's/.*"delivery_id":"([^"]+)".*/\1/')
bounded=$(grep '^bounded:' <<<"$ids") parked=$(grep '^parked:' <<<"$ids") flaky=$(grep '^flaky:' <<<"$ids") ok=$(grep '^ok:' <<<"$ids")
opened=$(bin/starter send --insecure-plaintext --endpoints "$dir/endpoints.yaml" --event examples/events/opened.json --output json |
  sed -E 's/.*"delivery_id":"([^"]+)".*/\1/')
first=$(grep '^ok:' <<<"$opened") released=$(grep '^pausable:' <<<"$opened")
# rated's rate_limit (one request every 5 s): the opened event's delivery sends at once; this one's
# first attempt is throttled, waits on a timer for its reserved time and sends as an ordinary activity.
throttled=$(bin/starter send --insecure-plaintext --endpoints "$dir/endpoints.yaml" --event examples/events/permanent_failure.json --output json |
  sed -E 's/.*"delivery_id":"([^"]+)".*/\1/' | grep '^rated:')
# Endpoint health: probed's first attempt fails and opens its circuit; the delivery parks, the first
# probe fails (it parks again, its schedule untouched), the second delivers it.
probed=$(bin/starter send --insecure-plaintext --endpoints "$dir/endpoints.yaml" --event examples/events/temporary_failure.json --output json |
  sed -E 's/.*"delivery_id":"([^"]+)".*/\1/' | grep '^probed:')
starter() { bin/starter "$@" --insecure-plaintext; }
wait_status() { for _ in $(seq 1 120); do starter status "$1" --output json | grep -q "\"status\":\"$2\"" && return; sleep 0.5; done; echo "record: $1 never reached $2" >&2; exit 1; }
wait_status "$parked" retrying
wait_status "$flaky" retrying
starter cancel "$parked" --reason "recorded for the replay test" >/dev/null
starter retry-now "$flaky" --wait >/dev/null
wait_status "$ok" delivered
starter resend "$ok" >/dev/null
wait_status "$ok" delivered
wait_status "$released" parked
# Operator bounds: five resends straight to the frontend act, the sixth is dropped (the bound's
# version marker), and a resend through the CLI over the bound is refused, leaving no trace.
wait_status "$bounded" retrying
for n in 2 3 4 5 6; do
  bin/temporal workflow signal --workflow-id "$bounded" --name resend >/dev/null
  for _ in $(seq 1 120); do starter status "$bounded" --output json | grep -q "\"number\":$n" && break; sleep 0.5; done
done
bin/temporal workflow signal --workflow-id "$bounded" --name resend >/dev/null
for _ in $(seq 1 120); do bin/temporal workflow show --workflow-id "$bounded" --output json | grep -q delivery-bounds && break; sleep 0.5; done
if starter resend "$bounded" >/dev/null 2>&1; then echo "record: the resend over the bound was accepted" >&2; exit 1; fi
starter endpoint resume pausable --endpoints "$dir/endpoints.yaml" >/dev/null
wait_status "$released" delivered

show() { bin/temporal workflow show --workflow-id "$1" --output json > "workflows/testdata/$2"; echo "recorded workflows/testdata/$2"; }
wait_status "$first" delivered
show "$parked" "delivery_canceled_${tag}_history.json"
show "$flaky" "delivery_retry_now_${tag}_history.json"
show "$ok" "delivery_resent_${tag}_history.json"
show "$first" "delivery_first_try_${tag}_history.json"
show "$bounded" "delivery_bounded_${tag}_history.json"
show "$released" "delivery_parked_released_${tag}_history.json"
show "endpoint-health/pausable" "health_paused_resumed_${tag}_history.json"
wait_status "$throttled" delivered
show "$throttled" "delivery_rate_throttled_${tag}_history.json"
wait_status "$probed" delivered
show "$probed" "delivery_probe_parked_again_${tag}_history.json"

# A recovery needs a worker with a delivery log, which seals with payload keys, so it is recorded by
# its integration test on an encrypted run, its payloads decrypted (fake data) as it writes the file.
HOOKRELAY_RECORD_RECOVER_HISTORY="$PWD/workflows/testdata/recover_done_${tag}_history.json" \
  go test -count=1 -run '^TestRecoverAfterOutage$' ./tests/
echo "recorded workflows/testdata/recover_done_${tag}_history.json"

# A first try to a slow endpoint (timeout over the default, answering after 9 s): its delivery starts
# with a workflow task timeout the local attempt fits in, so one workflow task and no heartbeat task.
# Recorded by its integration test, like the recovery.
HOOKRELAY_RECORD_SLOW_HISTORY="$PWD/workflows/testdata/delivery_first_try_slow_${tag}_history.json" \
  go test -count=1 -run '^TestBillableActionsPerDelivery$' ./tests/
echo "recorded workflows/testdata/delivery_first_try_slow_${tag}_history.json"
