#!/bin/sh
# Temporal's two PostgreSQL databases (persistence and visibility), created
# and brought to the schema version the server expects, with temporal-sql-tool.
# The one list of schema steps: docker-compose.yml's temporal-schema job runs
# it in the temporalio/admin-tools image, and internal/temporalcluster (make
# test-cluster) runs it with the binaries `make tools-cluster` builds.
#
#   schema.sh setup            create both databases if absent, then apply every versioned step
#   schema.sh drop             drop both databases (an absent one is fine)
#   schema.sh create-db NAME   create one more, empty database if absent, on the same server
#                              (compose: hookrelay's endpoint registry, which migrates itself)
#
# Both are safe to run again: create-database accepts an existing database,
# setup-schema -v 0.0 only creates the version tables, and update-schema
# applies only the steps a database lacks.
#
# Settings, from the environment (the variable names of the server's config):
#   DBNAME, VISIBILITY_DBNAME   the two databases (temporal, temporal_visibility)
#   POSTGRES_SEEDS, DB_PORT     PostgreSQL's host and port (required; 5432)
#   POSTGRES_USER               its user (required), with CREATEDB
#   POSTGRES_PWD                its password, if any (passed as SQL_PASSWORD, which
#                               temporal-sql-tool reads, never on the command line)
#   DB                          the SQL plugin (postgres12; postgres12_pgx works too)
#   DEFAULT_DB                  the database connected to for CREATE and DROP (postgres)
#   SCHEMA_DIR                  the server's schema directory (/etc/temporal/schema,
#                               as in the admin-tools image)
#   SQL_TOOL                    temporal-sql-tool's path (temporal-sql-tool)
set -eu

: "${DBNAME:=temporal}" "${VISIBILITY_DBNAME:=temporal_visibility}"
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS: PostgreSQL host}" "${POSTGRES_USER:?POSTGRES_USER: PostgreSQL user}"
: "${DB_PORT:=5432}" "${DB:=postgres12}" "${DEFAULT_DB:=postgres}"
: "${SCHEMA_DIR:=/etc/temporal/schema}" "${SQL_TOOL:=temporal-sql-tool}"
SQL_PASSWORD=${POSTGRES_PWD:-}
export SQL_PASSWORD

sql() {
	db=$1
	shift
	echo "---- temporal-sql-tool --db $db $*"
	"$SQL_TOOL" --plugin "$DB" --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" --db "$db" "$@"
}

case "${1:-}" in
setup)
	for pair in "$DBNAME:temporal" "$VISIBILITY_DBNAME:visibility"; do
		db=${pair%:*}
		sql "$db" create-database --defaultdb "$DEFAULT_DB"
		sql "$db" setup-schema -v 0.0
		sql "$db" update-schema -d "$SCHEMA_DIR/postgresql/v12/${pair##*:}/versioned"
	done
	;;
create-db)
	name=${2:?usage: $0 create-db NAME}
	sql "$name" create-database --defaultdb "$DEFAULT_DB"
	;;
drop)
	status=0
	for db in "$DBNAME" "$VISIBILITY_DBNAME"; do
		sql "$db" drop-database --defaultdb "$DEFAULT_DB" --force || status=1
	done
	exit $status
	;;
*)
	echo "usage: $0 setup|drop|create-db NAME (settings from the environment; see the top of this file)" >&2
	exit 2
	;;
esac
