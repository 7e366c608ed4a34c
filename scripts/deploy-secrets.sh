#!/usr/bin/env bash
# make deploy-secrets: the docker compose stack's secrets, generated once and then kept.
#   secrets/codec.key       payload encryption key (KEY_ID:BASE64 of 32 bytes)
#   secrets/codec-token     the codec server's bearer token
#   secrets/api-token       the ingestion API's bearer token
#   secrets/webhook-secret  the example receiver's whsec_ signing secret
#   secrets/temporal-*.pem, hookrelay-temporal*.pem
#                           mutual TLS with Temporal (openssl): two CAs, temporal-ca (the
#                           frontend's and the internode certificates) and temporal-client-ca
#                           (every client's: hookrelay's, the UI's, the worker service's, an
#                           admin's for the namespace job and operators); their keys stay in
#                           secrets/pki/, which compose mounts nowhere
#   .env                    POSTGRES_PASSWORD, which the postgres and temporal images take only
#                           as a variable, the passwords of hookrelay's database roles
#                           (HOOKRELAY_DB_OWNER_PASSWORD, HOOKRELAY_DB_PASSWORD), in its
#                           connection strings, and HOOKRELAY_CODEC_TOKEN, for the dev-only UI
#                           (docker-compose.dev-ui.yml). The UI's sign-in settings (HOOKRELAY_OIDC_*,
#                           TEMPORAL_UI_OIDC_*) are your identity provider's: add them yourself.
# Both secrets/ and .env are git-ignored. Existing values are never replaced: the database
# and Temporal's history hold what they sealed. Rotate the payload key by appending a line
# to secrets/codec.key (docs/security.md, "Encryption and key rotation").
set -euo pipefail
cd "$(dirname "$0")/.."

umask 077
mkdir -p secrets
# Only you may enter secrets/. The files inside are readable by others because compose
# bind-mounts secret files as they are, and the containers run as uid 65532, not as you.
chmod 700 secrets

random() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

write() { # write FILE CONTENT: only if FILE is missing or empty
  if [ -s "$1" ]; then
    echo "kept    $1"
  else
    printf '%s\n' "$2" > "$1"
    echo "created $1"
  fi
  chmod 644 "$1"
}

write secrets/codec.key "$(printf '# hookrelay payload keys: the last line encrypts, every line decrypts\nk%s:%s' \
  "$(date +%Y%m%d)" "$(head -c 32 /dev/urandom | base64)")"
write secrets/codec-token "$(random)"
write secrets/api-token "$(random)"
write secrets/webhook-secret "whsec_$(head -c 32 /dev/urandom | base64)"

# Certificates for mutual TLS with Temporal. A CA is made once; a certificate is issued
# only where its file is missing (delete one to have it issued again by the same CA).
mkdir -p secrets/pki
chmod 700 secrets/pki
ca() { # ca NAME: secrets/NAME.pem, its key in secrets/pki/
  if [ -s "secrets/$1.pem" ] && [ -s "secrets/pki/$1-key.pem" ]; then
    echo "kept    secrets/$1.pem"
    return
  fi
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=$1" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "secrets/pki/$1-key.pem" -out "secrets/$1.pem" 2> /dev/null
  chmod 644 "secrets/$1.pem"
  echo "created secrets/$1.pem"
}
issue() { # issue CA NAME EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]: secrets/NAME.pem and NAME-key.pem
  if [ -s "secrets/$2.pem" ] && [ -s "secrets/$2-key.pem" ]; then
    echo "kept    secrets/$2.pem"
    return
  fi
  local ext="extendedKeyUsage=$3"$'\n'"keyUsage=critical,digitalSignature"
  [ -z "${4:-}" ] || ext+=$'\n'"subjectAltName=$4"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "secrets/$2-key.pem" -out "secrets/pki/$2.csr" 2> /dev/null
  openssl x509 -req -in "secrets/pki/$2.csr" -CA "secrets/$1.pem" -CAkey "secrets/pki/$1-key.pem" \
    -CAserial "secrets/pki/$1.srl" -CAcreateserial -days 825 -extfile <(printf '%s\n' "$ext") \
    -out "secrets/$2.pem" 2> /dev/null
  rm -f "secrets/pki/$2.csr"
  chmod 644 "secrets/$2.pem" "secrets/$2-key.pem"
  echo "created secrets/$2.pem"
}
ca temporal-ca
ca temporal-client-ca
issue temporal-ca temporal-frontend serverAuth "DNS:temporal-frontend,DNS:localhost,IP:127.0.0.1"
issue temporal-ca temporal-internode serverAuth,clientAuth "DNS:temporal-internode"
for client in temporal-system-worker hookrelay-temporal temporal-ui temporal-admin; do
  issue temporal-client-ca "$client" clientAuth
done

# .env: compose reads it for ${...} in docker-compose.yml. The dev-only UI's codec endpoint
# carries the codec server's token, so it is the token in secrets/codec-token.
touch .env
chmod 600 .env
setenv() { # setenv NAME VALUE: only if .env lacks NAME
  if grep -q "^$1=" .env; then
    echo "kept    .env $1"
  else
    printf '%s=%s\n' "$1" "$2" >> .env
    echo "created .env $1"
  fi
}
setenv POSTGRES_PASSWORD "$(random)"
# hookrelay's two database roles (deploy/postgres/roles.sql): the owner, which migrates,
# and the run-time role every hookrelay service connects as.
setenv HOOKRELAY_DB_OWNER_PASSWORD "$(random)"
setenv HOOKRELAY_DB_PASSWORD "$(random)"
setenv HOOKRELAY_CODEC_TOKEN "$(cat secrets/codec-token)"
if [ "$(grep '^HOOKRELAY_CODEC_TOKEN=' .env | cut -d= -f2-)" != "$(cat secrets/codec-token)" ]; then
  echo "deploy-secrets: HOOKRELAY_CODEC_TOKEN in .env differs from secrets/codec-token; make them equal" >&2
  exit 1
fi
if ! grep -q '^HOOKRELAY_OIDC_ISSUER=.' .env; then
  echo "note    the UI signs users in through your OIDC provider: set HOOKRELAY_OIDC_ISSUER, HOOKRELAY_OIDC_AUDIENCE," \
    "TEMPORAL_UI_OIDC_CLIENT_ID and TEMPORAL_UI_OIDC_CLIENT_SECRET in .env (docs/deployment.md)"
fi
