package registry

import (
	"context"
	"io/fs"

	"github.com/hookrelay/hookrelay/internal/sqldb"
)

// MigrationsTable keeps the registry's schema version.
const MigrationsTable = "schema_migrations"

func schema(files fs.FS, checkOnly bool) sqldb.Schema {
	return sqldb.Schema{What: "endpoint registry", Migrations: files, Table: MigrationsTable, CheckOnly: checkOnly}
}

// Migrate brings the registry's schema in the database dsn names to this
// build's version; run it as the database's owner role.
func Migrate(ctx context.Context, dsn string) error {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	db, _, err := sqldb.Open(ctx, dsn, schema(files, false))
	if err != nil {
		return err
	}
	return db.Close()
}
