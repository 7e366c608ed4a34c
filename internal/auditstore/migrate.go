package auditstore

import (
	"context"
	"io/fs"

	"github.com/hookrelay/hookrelay/internal/sqldb"
)

func schema(checkOnly bool) sqldb.Schema {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded folder is there, or the build is broken
	}
	return sqldb.Schema{What: "audit trail", Migrations: files, Table: MigrationsTable, CheckOnly: checkOnly}
}

// Migrate brings the audit schema in the database dsn names to this
// build's version; run it as the database's owner role.
func Migrate(ctx context.Context, dsn string) error {
	db, _, err := sqldb.Open(ctx, dsn, schema(false))
	if err != nil {
		return err
	}
	return db.Close()
}
