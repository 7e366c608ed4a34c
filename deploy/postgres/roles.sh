#!/bin/sh
# hookrelay's database and its two roles (roles.sql), created by PostgreSQL's
# superuser: docker-compose.yml's hookrelay-db job runs it in the postgres
# image, for its psql. Safe to run again.
#
# Settings, from the environment:
#   PGHOST, PGPORT, PGUSER, PGPASSWORD   the superuser's connection (libpq's own variables)
#   HOOKRELAY_DB_OWNER_PASSWORD           the owner role's password (hookrelay_owner)
#   HOOKRELAY_DB_PASSWORD                 the run-time role's password (hookrelay)
# roles.sql reads the passwords from the environment, never from a command line.
set -eu
: "${HOOKRELAY_DB_OWNER_PASSWORD:?HOOKRELAY_DB_OWNER_PASSWORD: the owner role's password}"
: "${HOOKRELAY_DB_PASSWORD:?HOOKRELAY_DB_PASSWORD: the run-time role's password}"
exec psql --no-psqlrc --quiet --dbname "${PGDATABASE:-postgres}" \
	-v owner=hookrelay_owner -v app=hookrelay -v db=hookrelay -f "$(dirname "$0")/roles.sql"
