// Package registry is the endpoint registry in a database: PostgreSQL
// (postgres://..., shared by every worker and API host of a fleet) or an
// embedded SQLite file (sqlite:PATH, one host, no server to run). It is an
// endpoint.Source for attempts and routing, and manages endpoints for the
// HTTP API and the CLI: every management call is scoped to one account, and
// another account's endpoint is not found.
//
// Secrets are generated here and stored sealed under the endpoint-secrets
// keys (package codec derives them from the key file), bound to their
// endpoint's id, so a dump of the database holds no usable secret. Each
// live row carries a MAC over its id, account, URL and events under the
// row-MAC keys: a row changed in the database without them is refused,
// that endpoint alone, with an error naming it. A deleted endpoint leaves a tombstone, so its open
// deliveries end with endpoint_deleted at their next attempt. The schema is
// migrated on Open (versioned SQL files, one set per dialect), safely when
// several processes open one database at once.
package registry

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/sqldb"
	"github.com/hookrelay/hookrelay/internal/throttle"
)

//go:embed migrations
var migrations embed.FS

// Keys is the key file (*codec.Codec, as temporalclient.Options.Codec
// loads it): the registry uses its endpoint-secrets and row-MAC keys.
type Keys interface {
	For(p codec.Purpose) *codec.Codec
}

// Options configure a Registry.
type Options struct {
	// Codec is the key file endpoint secrets are sealed and rows MACed
	// under, each with keys of its own purpose. Required.
	Codec Keys
	// Guard vets a URL's addresses (and, with its port rule, its port) at
	// registration, as attempts do when they connect; nil refuses every
	// non-public range and every port outside netguard.DefaultPorts.
	Guard *netguard.Guard
	// HTTPSOnly refuses plain http URLs at registration.
	HTTPSOnly bool
	// Bounds are the limits registration and update hold endpoint values
	// to; the zero value is endpoint.DefaultBounds.
	Bounds endpoint.Bounds
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// OnChange is told of every write, so a cache in this process can
	// forget what it holds of the account at once.
	OnChange func(accountID, endpointID string)
	// NoMigrate: Open only checks the schema is at this build's version
	// and refuses one behind, naming sqldb.MigrateCommand (Migrate runs
	// the migrations).
	NoMigrate bool
}

// Registry is the endpoint registry on one database.
type Registry struct {
	db        *sql.DB
	dialect   dialect
	secrets   *codec.Codec // codec.EndpointSecrets
	macs      *codec.Codec // codec.RowMACs
	guard     *netguard.Guard
	httpsOnly bool
	bounds    endpoint.Bounds
	now       func() time.Time
	onChange  func(accountID, endpointID string)
	// rates is the rate limits' schedule on SQLite, one process's.
	rates throttle.Rates
}

// dialect is what differs between the two databases.
type dialect struct {
	name string // "postgres" or "sqlite", also the migrations folder
	// rebind turns the ? placeholders the queries are written with into the
	// database's own.
	rebind func(query string) string
}

var (
	postgres = dialect{name: sqldb.Postgres.Name, rebind: sqldb.Postgres.Rebind}
	sqlite   = dialect{name: sqldb.SQLite.Name, rebind: sqldb.SQLite.Rebind}
)

// Open connects to the database dsn names, postgres://... (or
// postgresql://...) or sqlite:PATH, and migrates its schema to this
// version's. Errors name the database with its password redacted.
func Open(ctx context.Context, dsn string, o Options) (*Registry, error) {
	if o.Codec == nil {
		return nil, errors.New("endpoint registry: no key file to seal endpoint secrets with")
	}
	r := &Registry{secrets: o.Codec.For(codec.EndpointSecrets), macs: o.Codec.For(codec.RowMACs), guard: o.Guard, httpsOnly: o.HTTPSOnly, bounds: o.Bounds, now: o.Now, onChange: o.OnChange}
	if r.bounds == (endpoint.Bounds{}) {
		r.bounds = endpoint.DefaultBounds()
	}
	if r.guard == nil {
		r.guard = netguard.New().WithPortRule()
	}
	if r.now == nil {
		r.now = time.Now
	}
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	db, d, err := sqldb.Open(ctx, dsn, schema(files, o.NoMigrate))
	if err != nil {
		return nil, err
	}
	r.db = db
	r.dialect = sqlite
	if d.Name == postgres.name {
		r.dialect = postgres
	}
	if err := r.backfillMACs(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

// Close closes the database.
func (r *Registry) Close() error { return r.db.Close() }

// Dialect is "postgres" or "sqlite".
func (r *Registry) Dialect() string { return r.dialect.name }

// Redact hides a DSN's password, for errors and logs.
func Redact(dsn string) string { return sqldb.Redact(dsn) }
