package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
)

// roleRE is a role name GrantRuntime accepts: an unquoted identifier.
var roleRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CheckRole checks name is a role name GrantRuntime accepts; the error
// starts with what (a flag's name).
func CheckRole(what, name string) error {
	if !roleRE.MatchString(name) {
		return fmt.Errorf("%s: %q is not a role name: lower-case letters, digits and _, not starting with a digit", what, name)
	}
	return nil
}

// GrantRuntime grants role, in the PostgreSQL database dsn names (the
// current schema), what run-time processes need and nothing more: SELECT,
// INSERT, UPDATE and DELETE on every table, SELECT alone on versionTables,
// the sequences, and EXECUTE on the schema's functions (the delivery log's
// partition functions); and the same on what the connected role creates
// later (attempt partitions). Run it as the schema's owner, after the
// migrations.
func GrantRuntime(ctx context.Context, dsn, role string, versionTables ...string) error {
	if err := CheckRole("runtime role", role); err != nil {
		return err
	}
	d, conn, err := parseDSN("database", dsn)
	if err != nil {
		return err
	}
	if d.Name != Postgres.Name {
		return fmt.Errorf("grant to %s: %s has no roles (PostgreSQL only)", role, Redact(dsn))
	}
	db, err := sql.Open(driverName(d), conn)
	if err != nil {
		return err
	}
	defer db.Close()
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("grant to %s: %s: %w", role, Redact(dsn), connectHint(dsn, err))
	}
	for _, stmt := range grants(quoteIdent(schema), role, versionTables) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("grant to %s: %s: %w", role, stmt, err)
		}
	}
	return nil
}

func grants(schema, role string, versionTables []string) []string {
	stmts := []string{
		"GRANT USAGE ON SCHEMA " + schema + " TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + schema + " TO " + role,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA " + schema + " TO " + role,
		"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA " + schema + " TO " + role,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + role,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT USAGE, SELECT ON SEQUENCES TO " + role,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT EXECUTE ON FUNCTIONS TO " + role,
	}
	for _, t := range versionTables {
		stmts = append(stmts, "REVOKE INSERT, UPDATE, DELETE ON "+schema+"."+quoteIdent(t)+" FROM "+role)
	}
	return stmts
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
