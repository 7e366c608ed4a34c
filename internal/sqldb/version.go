package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgconn"
)

// BehindError says a database's schema is older than this build's.
type BehindError struct {
	Table      string // the schema's version table
	Have, Want uint   // Have 0: no schema yet
	Dirty      bool   // a migration failed part way
}

func (e *BehindError) Error() string {
	switch {
	case e.Dirty:
		return fmt.Sprintf("the schema is dirty at version %d (a migration failed part way; table %s): repair it, then run %q as the database's owner role", e.Have, e.Table, MigrateCommand)
	case e.Have == 0:
		return fmt.Sprintf("the schema is not created (no version in table %s; this build needs version %d): run %q as the database's owner role first", e.Table, e.Want, MigrateCommand)
	default:
		return fmt.Sprintf("the schema is at version %d, this build needs %d (table %s): run %q as the database's owner role first", e.Have, e.Want, e.Table, MigrateCommand)
	}
}

// CheckVersion reads the version of s in db and returns it, with a
// *BehindError when it is older than the newest of s's migrations (or
// dirty). A newer version is accepted: a build rolled out after the
// migration of the next one reads the schema it knows.
func CheckVersion(ctx context.Context, db *sql.DB, d Dialect, s Schema) (uint, error) {
	want, err := newestVersion(d, s)
	if err != nil {
		return 0, fmt.Errorf("read the migrations: %w", err)
	}
	have, dirty, err := readVersion(ctx, db, d, s.table())
	if err != nil {
		return 0, fmt.Errorf("read the schema version (table %s): %w", s.table(), err)
	}
	if dirty || have < want {
		return have, &BehindError{Table: s.table(), Have: have, Want: want, Dirty: dirty}
	}
	return have, nil
}

// readVersion is the version golang-migrate recorded in table; 0 when the
// table is absent or empty.
func readVersion(ctx context.Context, db *sql.DB, d Dialect, table string) (uint, bool, error) {
	var exists bool
	var err error
	if d.Name == Postgres.Name {
		err = db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists)
	} else {
		err = db.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&exists)
	}
	if err != nil || !exists {
		return 0, false, err
	}
	var v int64
	var dirty bool
	err = db.QueryRowContext(ctx, `SELECT version, dirty FROM `+table+` LIMIT 1`).Scan(&v, &dirty)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && v < 0) {
		return 0, false, nil
	}
	return uint(v), dirty, err
}

// newestVersion is the highest version among the dialect's migrations.
func newestVersion(d Dialect, s Schema) (uint, error) {
	files, err := fs.Sub(s.Migrations, d.Name)
	if err != nil {
		return 0, err
	}
	src, err := iofs.New(files, ".")
	if err != nil {
		return 0, err
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return 0, err
	}
	for {
		next, err := src.Next(v)
		if errors.Is(err, os.ErrNotExist) {
			return v, nil
		}
		if err != nil {
			return 0, err
		}
		v = next
	}
}

// isPermissionDenied tells PostgreSQL's insufficient_privilege; the
// migrate library's errors keep only the text of the driver's.
func isPermissionDenied(err error) bool {
	var pg *pgconn.PgError
	return (errors.As(err, &pg) && pg.Code == "42501") || strings.Contains(err.Error(), "(SQLSTATE 42501)")
}

// SSLModes are the values of a postgres:// DSN's sslmode.
var SSLModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// checkSSLMode refuses an sslmode PostgreSQL's clients do not know.
func checkSSLMode(u *url.URL) error {
	mode := u.Query().Get("sslmode")
	if mode == "" {
		return nil
	}
	for _, m := range SSLModes {
		if mode == m {
			return nil
		}
	}
	return fmt.Errorf("sslmode=%s is not one of %v", mode, SSLModes)
}

// connectHint adds to a failed connection what its sslmode asked for, so
// a server without TLS reads as such rather than as a network fault.
func connectHint(dsn string, err error) error {
	u, perr := url.Parse(dsn)
	if perr != nil {
		return err
	}
	switch mode := u.Query().Get("sslmode"); mode {
	case "require", "verify-ca", "verify-full":
		return fmt.Errorf("sslmode=%s: only a TLS connection is accepted, and it failed (a server without TLS, or a certificate not trusted): %w", mode, err)
	}
	return err
}
