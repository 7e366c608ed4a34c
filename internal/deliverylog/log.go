// Package deliverylog is the delivery log in a database: one record per
// delivery (one event to one endpoint) and one per attempt (one POST), in
// PostgreSQL (postgres://..., the endpoint registry's database or another)
// or an embedded SQLite file (sqlite:PATH). Every read is scoped to one
// account: another account's delivery is not found.
//
// An attempt is written once: RecordAttempt is idempotent on (delivery id,
// run id, attempt number), so a retried task or a replayed activity writes
// nothing more. Nothing a payload holds (subject, from, to, headers) is
// stored; the first KiB of the receiver's answer is sealed with the payload
// keys (package codec). In PostgreSQL the attempts are partitioned by month,
// so retention (Prune) drops whole partitions; in SQLite it deletes in
// bounded batches.
package deliverylog

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/sqldb"
)

//go:embed migrations
var migrations embed.FS

// MigrationsTable keeps the log's schema version, apart from the endpoint
// registry's, so both live in one database.
const MigrationsTable = "log_schema_migrations"

// ExcerptBytes is how much of a response body an attempt record keeps.
const ExcerptBytes = 1024

// ErrNotFound means no delivery of that id in that account.
var ErrNotFound = errors.New("delivery not found")

// Sealer seals and opens response excerpts (*codec.Codec, as
// temporalclient.Options.Codec loads it; Open uses its response-excerpts
// keys, derived from the key file for that purpose alone).
type Sealer interface {
	Seal(plain, additionalData []byte) ([]byte, error)
	Open(sealed, additionalData []byte) ([]byte, error)
}

// Options configure a Log.
type Options struct {
	// Codec seals and opens response excerpts: the key file, whose
	// response-excerpts keys are used if it derives keys per purpose. Required.
	Codec Sealer
	// Now is the clock partitions are created ahead of; nil is time.Now.
	Now func() time.Time
	// NoMigrate: Open only checks the schema is at this build's version
	// and refuses one behind, naming sqldb.MigrateCommand (Migrate runs
	// the migrations).
	NoMigrate bool
}

// Log is the delivery log on one database.
type Log struct {
	db      *sql.DB
	dialect sqldb.Dialect
	codec   Sealer
	now     func() time.Time

	mu         sync.Mutex
	partitions map[string]bool // PostgreSQL: attempt partitions known to exist
}

// Open connects to the database dsn names, postgres://... or sqlite:PATH,
// migrates the log's schema and, in PostgreSQL, creates the attempt
// partitions of this month and the next two.
func Open(ctx context.Context, dsn string, o Options) (*Log, error) {
	if o.Codec == nil {
		return nil, errors.New("delivery log: no payload keys to seal response excerpts with")
	}
	db, d, err := sqldb.Open(ctx, dsn, schema(o.NoMigrate))
	if err != nil {
		return nil, err
	}
	l := &Log{db: db, dialect: d, codec: o.Codec, now: o.Now, partitions: map[string]bool{}}
	if keys, ok := o.Codec.(interface {
		For(codec.Purpose) *codec.Codec
	}); ok {
		l.codec = keys.For(codec.ResponseExcerpts)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if err := l.ensureAhead(ctx, l.now()); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

// Close closes the database.
func (l *Log) Close() error { return l.db.Close() }

// Dialect is "postgres" or "sqlite".
func (l *Log) Dialect() string { return l.dialect.Name }

func (l *Log) postgres() bool { return l.dialect.Name == sqldb.Postgres.Name }

func (l *Log) q(query string) string { return l.dialect.Rebind(query) }

// Delivery is one event to one endpoint as the log holds it.
type Delivery struct {
	AccountID  string
	DeliveryID string
	EndpointID string
	EventID    string
	EventName  string
	MailLogID  string
	Status     string // a workflows.Status
	Attempts   int
	CreatedAt  time.Time
	// LastAttemptAt, LastStatusCode and NextAttemptAt are zero until known.
	LastAttemptAt  time.Time
	LastStatusCode int
	NextAttemptAt  time.Time
}

// AttemptRecord is one finished attempt and where it left its delivery.
type AttemptRecord struct {
	AccountID  string
	DeliveryID string
	RunID      string
	Attempt    int
	Started    time.Time
	Duration   time.Duration
	StatusCode int    // 0: no HTTP answer
	Outcome    string // a workflows.Outcome
	ErrorClass string
	// Response is the receiver's answer; the first ExcerptBytes are kept,
	// sealed.
	Response []byte
	// Status and NextAttemptAt are the delivery's after this attempt
	// ("" keeps its status; zero: no next attempt).
	Status        string
	NextAttemptAt time.Time
}

// Attempt is one attempt as the log holds it.
type Attempt struct {
	RunID           string
	Attempt         int
	StartedAt       time.Time
	Duration        time.Duration
	StatusCode      int
	Outcome         string
	ErrorClass      string
	ResponseExcerpt []byte // nil once past content retention
}

// ms is t in unix milliseconds, or NULL for the zero time.
func ms(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMS is the inverse of ms.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}
