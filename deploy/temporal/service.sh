#!/bin/sh
# Runs one Temporal service (frontend, history, matching or worker) from the
# config.yaml beside this script: the one command line docker-compose.yml's
# temporal-* services and internal/temporalcluster (make test-cluster) both use.
#
#   service.sh frontend
#
# The settings are config.yaml's variables, from the environment. Where none
# says which address to bind and broadcast (a container), it binds every
# interface and broadcasts its own address, as the temporalio/server image's
# entrypoint does. TEMPORAL_SERVER is the server binary (temporal-server, as
# in that image).
set -eu

case "${1:-}" in
frontend | history | matching | worker) ;;
*)
	echo "usage: $0 frontend|history|matching|worker" >&2
	exit 2
	;;
esac

: "${BIND_ON_IP:=0.0.0.0}"
if [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
	TEMPORAL_BROADCAST_ADDRESS=$(getent hosts "$(hostname)" | awk '{ print $1; exit }')
fi
export BIND_ON_IP TEMPORAL_BROADCAST_ADDRESS

# --config-file names the one file the server reads (the older --root,
# --config and --env, a directory and an environment name, are deprecated).
# No flag waives authentication: config.yaml sets an authorizer and mutual
# TLS, and the frontend admits only clients with a certificate of the client
# CA; only the dev server (make dev, the tests' default) runs without
# authentication.
dir=$(cd "$(dirname "$0")" && pwd)
exec "${TEMPORAL_SERVER:-temporal-server}" --config-file "$dir/config.yaml" start --service "$1"
