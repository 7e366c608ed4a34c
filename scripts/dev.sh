#!/usr/bin/env bash
# make dev: a Temporal dev server with its UI, its database in .temporal/dev.db and
# hookrelay's search attributes, plus a codec server so the UI shows decrypted payloads.
# The payload key (.temporal/codec.key) and the codec server's token (.temporal/codec-token)
# are generated on the first run and then kept: the database holds payloads sealed with that key.
# Ports: TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233), CODEC_PORT (8081).
# Arguments are passed to `temporal server start-dev` (the Makefile passes the search attributes).
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
CODEC_PORT=${CODEC_PORT:-8081}
mkdir -p .temporal
umask 077
if [ ! -s .temporal/codec.key ]; then
  printf '# hookrelay payload keys, KEY_ID:BASE64 of 32 bytes; the last line encrypts, all decrypt\ndev-%s:%s\n' \
    "$(date +%Y%m%d)" "$(head -c 32 /dev/urandom | base64)" > .temporal/codec.key
fi
if [ ! -s .temporal/codec-token ]; then
  head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > .temporal/codec-token
fi
token=$(cat .temporal/codec-token)

# DEV ONLY: the dev server's UI cannot send an Authorization header, so it gets the
# token as the first path segment of the codec endpoint (--accept-path-token, which the
# codec server warns about). The token is then on the dev server's command line and in
# the UI's settings, seen by whoever can open the UI on this machine: who it decrypts for.
bin/worker codec-server --listen "127.0.0.1:$CODEC_PORT" --codec-key-file .temporal/codec.key \
  --token-file .temporal/codec-token --ui-origin "http://127.0.0.1:$TEMPORAL_UI_PORT" --accept-path-token &
codec_pid=$!
trap 'kill "$codec_pid" 2>/dev/null || true' EXIT INT TERM

cat <<EOT
== codec server on 127.0.0.1:$CODEC_PORT; open the UI as http://127.0.0.1:$TEMPORAL_UI_PORT (the one origin it serves)
== worker and starter: export HOOKRELAY_CODEC_KEY_FILE=$PWD/.temporal/codec.key
== CLI (the token from the environment, not the command line, where ps shows it):
   TEMPORAL_CODEC_ENDPOINT=http://127.0.0.1:$CODEC_PORT TEMPORAL_CODEC_AUTH="Bearer \$(cat .temporal/codec-token)" bin/temporal workflow show -w ID
EOT
bin/temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
  --db-filename .temporal/dev.db --ui-codec-endpoint "http://127.0.0.1:$CODEC_PORT/$token" \
  --dynamic-config-value matching.enableFairness=true "$@"
