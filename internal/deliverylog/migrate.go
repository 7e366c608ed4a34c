package deliverylog

import (
	"context"
	"io/fs"
	"time"

	"github.com/hookrelay/hookrelay/internal/sqldb"
)

func schema(checkOnly bool) sqldb.Schema {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded folder is there, or the build is broken
	}
	return sqldb.Schema{What: "delivery log", Migrations: files, Table: MigrationsTable, CheckOnly: checkOnly}
}

// Migrate brings the log's schema in the database dsn names to this
// build's version and, in PostgreSQL, creates the attempt partitions of
// now's month and the next two; run it as the database's owner role.
func Migrate(ctx context.Context, dsn string, now time.Time) error {
	db, d, err := sqldb.Open(ctx, dsn, schema(false))
	if err != nil {
		return err
	}
	l := &Log{db: db, dialect: d, partitions: map[string]bool{}}
	defer l.Close()
	return l.ensureAhead(ctx, now)
}
