// Package registry is the endpoint registry in a database: PostgreSQL
// (postgres://..., shared by every worker and API host of a fleet) or an
// embedded SQLite file (sqlite:PATH, one host, no server to run). It is an
// endpoint.Source for attempts and routing, and manages endpoints for the
// HTTP API and the CLI: every management call is scoped to one account, and
// another account's endpoint is not found.
//
// Secrets are generated here and stored sealed with the payload keys
// (package codec), bound to their endpoint's id, so a dump of the database
// holds no usable secret. A deleted endpoint leaves a tombstone, so its open
// deliveries end with endpoint_deleted at their next attempt. The schema is
// migrated on Open (versioned SQL files, one set per dialect), safely when
// several processes open one database at once.
package registry

import (
	"context"
	"database/sql"
	"embed"
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

	"github.com/hookrelay/hookrelay/internal/netguard"
)

//go:embed migrations
var migrations embed.FS

// Sealer seals and opens endpoint secrets with the payload keys
// (*codec.Codec, as temporalclient.Options.Codec loads it).
type Sealer interface {
	Seal(plain, additionalData []byte) ([]byte, error)
	Open(sealed, additionalData []byte) ([]byte, error)
}

// Options configure a Registry.
type Options struct {
	// Codec seals and opens endpoint secrets: the payload keys. Required.
	Codec Sealer
	// Guard vets a URL's addresses at registration, as attempts do when
	// they connect; nil refuses every non-public range.
	Guard *netguard.Guard
	// HTTPSOnly refuses plain http URLs at registration.
	HTTPSOnly bool
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// OnChange is told of every write, so a cache in this process can
	// forget what it holds of the account at once.
	OnChange func(accountID, endpointID string)
}

// Registry is the endpoint registry on one database.
type Registry struct {
	db        *sql.DB
	dialect   dialect
	codec     Sealer
	guard     *netguard.Guard
	httpsOnly bool
	now       func() time.Time
	onChange  func(accountID, endpointID string)
}

// dialect is what differs between the two databases.
type dialect struct {
	name string // "postgres" or "sqlite", also the migrations folder
	// rebind turns the ? placeholders the queries are written with into the
	// database's own.
	rebind func(query string) string
}

var (
	postgres = dialect{name: "postgres", rebind: dollarPlaceholders}
	sqlite   = dialect{name: "sqlite", rebind: func(q string) string { return q }}
)

func dollarPlaceholders(q string) string {
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

// Open connects to the database dsn names, postgres://... (or
// postgresql://...) or sqlite:PATH, and migrates its schema to this
// version's. Errors name the database with its password redacted.
func Open(ctx context.Context, dsn string, o Options) (*Registry, error) {
	if o.Codec == nil {
		return nil, errors.New("endpoint registry: no payload keys to seal endpoint secrets with")
	}
	kind, conn, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	where := Redact(dsn)
	r := &Registry{codec: o.Codec, guard: o.Guard, httpsOnly: o.HTTPSOnly, now: o.Now, onChange: o.OnChange}
	if r.guard == nil {
		r.guard = netguard.New()
	}
	if r.now == nil {
		r.now = time.Now
	}
	switch kind {
	case postgres.name:
		r.dialect = postgres
		r.db, err = sql.Open("pgx", conn)
	default:
		r.dialect = sqlite
		r.db, err = sql.Open("sqlite", conn)
	}
	if err != nil {
		return nil, fmt.Errorf("endpoint registry %s: %w", where, err)
	}
	if r.dialect.name == sqlite.name {
		// One writer at a time; more connections only queue on its lock.
		r.db.SetMaxOpenConns(4)
	} else {
		// Every worker and API host holds a pool: keep each small, and idle
		// connections open for the next burst rather than reconnecting.
		r.db.SetMaxOpenConns(10)
		r.db.SetMaxIdleConns(10)
		r.db.SetConnMaxIdleTime(5 * time.Minute)
	}
	if r.dialect.name == sqlite.name {
		// The first connection to a fresh file switches it to WAL, which
		// needs the file to itself: SQLite may refuse a concurrent opener
		// at once (SQLITE_BUSY) rather than wait, so openers on one file
		// connect and migrate one at a time.
		unlock, err := lockFile(sqlitePath(conn) + ".migrate-lock")
		if err != nil {
			r.db.Close()
			return nil, fmt.Errorf("endpoint registry %s: %w", where, err)
		}
		defer unlock()
	}
	if err := r.db.PingContext(ctx); err != nil {
		r.db.Close()
		return nil, fmt.Errorf("endpoint registry %s: connect: %w", where, err)
	}
	if err := r.migrate(kind, conn); err != nil {
		r.db.Close()
		return nil, fmt.Errorf("endpoint registry %s: migrate the schema: %w", where, err)
	}
	return r, nil
}

// Close closes the database.
func (r *Registry) Close() error { return r.db.Close() }

// Dialect is "postgres" or "sqlite".
func (r *Registry) Dialect() string { return r.dialect.name }

// parseDSN tells the database kind and the driver's connection string.
func parseDSN(dsn string) (kind, conn string, err error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return "", "", fmt.Errorf("endpoint registry: %s is not a postgres:// URL", Redact(dsn))
		}
		return postgres.name, dsn, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		switch {
		case path == "":
			return "", "", errors.New("endpoint registry: sqlite: needs a file path, as in sqlite:/var/lib/hookrelay/endpoints.db")
		case strings.ContainsAny(path, "?#"):
			return "", "", fmt.Errorf("endpoint registry: sqlite:%s: the path must not contain ? or #", path)
		}
		// WAL lets processes read while one writes; a writer waits for
		// another's lock rather than failing; writes take the lock up front.
		return sqlite.name, "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate", nil
	default:
		return "", "", fmt.Errorf("endpoint registry: %q is not a database URL: want postgres://... or sqlite:PATH", Redact(dsn))
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

// migrate brings the schema to the newest version. PostgreSQL serialises
// concurrent migrations with an advisory lock (the migrate library's);
// SQLite's driver locks only within a process, so Open holds a file lock
// beside the database around connecting and migrating.
func (r *Registry) migrate(kind, conn string) error {
	files, err := fs.Sub(migrations, "migrations/"+kind)
	if err != nil {
		return err
	}
	src, err := iofs.New(files, ".")
	if err != nil {
		return err
	}
	// A connection of its own: closing the migrator closes it.
	db, err := sql.Open(map[string]string{"postgres": "pgx", "sqlite": "sqlite"}[kind], conn)
	if err != nil {
		return err
	}
	var driver database.Driver
	if kind == postgres.name {
		driver, err = migratepgx.WithInstance(db, &migratepgx.Config{})
	} else {
		driver, err = migratesqlite.WithInstance(db, &migratesqlite.Config{})
	}
	if err != nil {
		db.Close()
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, kind, driver)
	if err != nil {
		driver.Close()
		return err
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		var dirty migrate.ErrDirty
		if errors.As(err, &dirty) {
			return fmt.Errorf("migration %d failed part way and left the schema dirty; repair it by hand, then set schema_migrations.dirty to false: %w", dirty.Version, err)
		}
		return err
	}
	return nil
}
