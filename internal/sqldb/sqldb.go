// Package sqldb opens hookrelay's own databases, PostgreSQL
// (postgres://...) or an embedded SQLite file (sqlite:PATH): it parses the
// DSN, sizes the connection pool, and migrates a schema of versioned SQL
// files (one folder per dialect) under a lock, safely when several
// processes open one database at once. Each schema keeps its version in a
// table of its own, so the endpoint registry and the delivery log can share
// one database. A schema already current is opened without any DDL, so a
// run-time role without DDL privileges opens it; with Schema.CheckOnly a
// schema behind is refused, naming MigrateCommand, and GrantRuntime gives
// that role what it needs once the owner has migrated.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Dialect is what differs between the two databases.
type Dialect struct {
	Name string // "postgres" or "sqlite", also the migrations folder
	// Rebind turns the ? placeholders the queries are written with into the
	// database's own.
	Rebind func(query string) string
}

var (
	Postgres = Dialect{Name: "postgres", Rebind: DollarPlaceholders}
	SQLite   = Dialect{Name: "sqlite", Rebind: func(q string) string { return q }}
)

// DollarPlaceholders numbers a query's ? placeholders $1, $2, ...
func DollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Schema is what Open migrates a database to.
type Schema struct {
	// What names the database in errors: "endpoint registry".
	What string
	// Migrations holds a folder per dialect (postgres/, sqlite/) of
	// golang-migrate files: N_name.up.sql and N_name.down.sql.
	Migrations fs.FS
	// Table keeps the schema's version; "" is schema_migrations.
	Table string
	// CheckOnly: Open migrates nothing; it refuses a database whose schema
	// is behind this build's, naming MigrateCommand. Run-time processes
	// connected as a role without DDL privileges open their databases so.
	CheckOnly bool
}

// MigrateCommand is what brings a database's schemas to this build's
// versions, as the database's owner role; errors of Open name it.
const MigrateCommand = "starter migrate --db DSN"

func (s Schema) table() string {
	if s.Table == "" {
		return "schema_migrations"
	}
	return s.Table
}

// Open connects to the database dsn names, postgres://... (or
// postgresql://...) or sqlite:PATH, and migrates s to its newest version.
// Errors name the database with its password redacted.
func Open(ctx context.Context, dsn string, s Schema) (*sql.DB, Dialect, error) {
	d, conn, err := parseDSN(s.What, dsn)
	if err != nil {
		return nil, Dialect{}, err
	}
	where := s.What + " " + Redact(dsn)
	db, err := sql.Open(driverName(d), conn)
	if err != nil {
		return nil, Dialect{}, fmt.Errorf("%s: %w", where, err)
	}
	if d.Name == SQLite.Name {
		// One writer at a time; more connections only queue on its lock.
		db.SetMaxOpenConns(4)
		// The first connection to a fresh file switches it to WAL, which
		// needs the file to itself: SQLite may refuse a concurrent opener
		// at once (SQLITE_BUSY) rather than wait, so openers on one file
		// connect and migrate one at a time.
		unlock, err := lockFile(sqlitePath(conn) + ".migrate-lock")
		if err != nil {
			db.Close()
			return nil, Dialect{}, fmt.Errorf("%s: %w", where, err)
		}
		defer unlock()
	} else {
		// Every worker and API host holds a pool: keep each small, and idle
		// connections open for the next burst rather than reconnecting.
		db.SetMaxOpenConns(10)
		db.SetMaxIdleConns(10)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, Dialect{}, fmt.Errorf("%s: connect: %w", where, connectHint(dsn, err))
	}
	if err := upToDate(ctx, db, d, conn, s); err != nil {
		db.Close()
		return nil, Dialect{}, fmt.Errorf("%s: %w", where, err)
	}
	return db, d, nil
}

// upToDate leaves a schema at this build's version as it is (so a role
// without DDL privileges opens it), else migrates it or, with CheckOnly,
// says what to run.
func upToDate(ctx context.Context, db *sql.DB, d Dialect, conn string, s Schema) error {
	v, err := CheckVersion(ctx, db, d, s)
	if err == nil {
		return nil
	}
	var behind *BehindError
	if !errors.As(err, &behind) || s.CheckOnly {
		return err
	}
	if err := migrateUp(d, conn, s); err != nil {
		if isPermissionDenied(err) {
			return fmt.Errorf("migrate the schema from version %d to %d: %w; this role may not change the schema: run %q as the database's owner role, and start this process with --migrate=false", v, behind.Want, err, MigrateCommand)
		}
		return fmt.Errorf("migrate the schema: %w", err)
	}
	return nil
}

func driverName(d Dialect) string {
	if d.Name == Postgres.Name {
		return "pgx"
	}
	return "sqlite"
}

// CheckDSN checks dsn names a database this package opens, before it is
// opened; the error starts with what (a flag's name).
func CheckDSN(what, dsn string) error {
	_, _, err := parseDSN(what, dsn)
	return err
}

// parseDSN tells the dialect and the driver's connection string.
func parseDSN(what, dsn string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return Dialect{}, "", fmt.Errorf("%s: %s is not a postgres:// URL", what, Redact(dsn))
		}
		if err := checkSSLMode(u); err != nil {
			return Dialect{}, "", fmt.Errorf("%s: %s: %w", what, Redact(dsn), err)
		}
		return Postgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		switch {
		case path == "":
			return Dialect{}, "", fmt.Errorf("%s: sqlite: needs a file path, as in sqlite:/var/lib/hookrelay/endpoints.db", what)
		case strings.ContainsAny(path, "?#"):
			return Dialect{}, "", fmt.Errorf("%s: sqlite:%s: the path must not contain ? or #", what, path)
		}
		// WAL lets processes read while one writes; a writer waits for
		// another's lock rather than failing; writes take the lock up front.
		return SQLite, "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate", nil
	default:
		return Dialect{}, "", fmt.Errorf("%s: %q is not a database URL: want postgres://... or sqlite:PATH", what, Redact(dsn))
	}
}

// sqlitePath is the file of a SQLite connection string.
func sqlitePath(conn string) string {
	return strings.TrimPrefix(strings.SplitN(conn, "?", 2)[0], "file:")
}

// Redact hides a DSN's password, for errors and logs.
func Redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	if strings.Contains(dsn, "@") && !strings.HasPrefix(dsn, "sqlite:") {
		return "(a database URL that does not parse)"
	}
	return dsn
}

// migrateUp brings the schema to the newest version. PostgreSQL serialises
// concurrent migrations with an advisory lock (the migrate library's, keyed
// by the version table); SQLite's driver locks only within a process, so
// Open holds a file lock beside the database around connecting and
// migrating.
func migrateUp(d Dialect, conn string, s Schema) error {
	files, err := fs.Sub(s.Migrations, d.Name)
	if err != nil {
		return err
	}
	src, err := iofs.New(files, ".")
	if err != nil {
		return err
	}
	// A connection of its own: closing the migrator closes it.
	db, err := sql.Open(driverName(d), conn)
	if err != nil {
		return err
	}
	var driver database.Driver
	if d.Name == Postgres.Name {
		driver, err = migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: s.Table})
	} else {
		driver, err = migratesqlite.WithInstance(db, &migratesqlite.Config{MigrationsTable: s.Table})
	}
	if err != nil {
		db.Close()
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, d.Name, driver)
	if err != nil {
		driver.Close()
		return err
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		table := s.table()
		var dirty migrate.ErrDirty
		if errors.As(err, &dirty) {
			return fmt.Errorf("migration %d failed part way and left the schema dirty; repair it by hand, then set %s.dirty to false: %w", dirty.Version, table, err)
		}
		return err
	}
	return nil
}
