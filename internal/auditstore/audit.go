// Package auditstore is the audit trail in a database: who changed what, when,
// in which account. The HTTP API records every change made through it
// (endpoint create, update, delete, secret rotation and reveal; delivery
// resend, cancel, retry-now; ...) and the codec server every decode. A record
// names the credential that acted (an id, never its secret) and the fields
// a change touched (names, never values), so no record holds a secret or
// personal data.
//
// It lives in PostgreSQL (postgres://..., normally the endpoint registry's
// database) or an embedded SQLite file (sqlite:PATH), its schema versioned
// apart from the registry's and the delivery log's (MigrationsTable), so all
// three share one database. Retention (Prune) is the delivery log's.
package auditstore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/internal/sqldb"
)

// The record's types live in package audit, which the public HTTP API names.
type (
	Record     = audit.Record
	Query      = audit.Query
	Page       = audit.Page
	FieldError = audit.FieldError
)

// maxID bounds a target, as audit.Record.Check does.
const maxID = 1024

//go:embed migrations
var migrations embed.FS

// MigrationsTable keeps the audit schema's version, apart from the
// registry's and the delivery log's.
const MigrationsTable = "audit_schema_migrations"

// Options configure a Store.
type Options struct {
	// Now stamps records; nil is time.Now.
	Now func() time.Time
	// NoMigrate: Open only checks the schema is at this build's version
	// and refuses one behind, naming sqldb.MigrateCommand (Migrate runs
	// the migrations).
	NoMigrate bool
}

// Store is the audit trail on one database.
type Store struct {
	db      *sql.DB
	dialect sqldb.Dialect
	now     func() time.Time
}

// Open connects to the database dsn names, postgres://... or sqlite:PATH,
// and migrates the audit schema.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	db, d, err := sqldb.Open(ctx, dsn, schema(o.NoMigrate))
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, dialect: d, now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Dialect is "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect.Name }

func (s *Store) q(query string) string { return s.dialect.Rebind(query) }

// Record writes r, stamped now unless r.At is set, and returns its id.
func (s *Store) Record(ctx context.Context, r Record) (int64, error) {
	if err := r.Check(); err != nil {
		return 0, err
	}
	if r.At.IsZero() {
		r.At = s.now()
	}
	if r.Changes == nil {
		r.Changes = []string{}
	}
	changes, err := json.Marshal(r.Changes)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.db.QueryRowContext(ctx, s.q(`INSERT INTO audit_records (at, account_id, credential, action, target, changes)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`), r.At.UnixMilli(), r.AccountID, r.Credential, r.Action, r.Target, string(changes)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("audit trail: record %s: %w", r.Action, err)
	}
	return id, nil
}

// Settle completes record id once its change is known: made with target
// (a created object's id, unknown before), or not made at all, which
// removes the record. Records are written before their change, so a change
// is never made unrecorded; Settle keeps the trail from listing changes
// that were refused.
func (s *Store) Settle(ctx context.Context, id int64, made bool, target string) error {
	var err error
	switch {
	case !made:
		_, err = s.db.ExecContext(ctx, s.q(`DELETE FROM audit_records WHERE id = ?`), id)
	case target != "":
		if len(target) > maxID {
			return errors.New("audit: a target of more than 1024 bytes")
		}
		_, err = s.db.ExecContext(ctx, s.q(`UPDATE audit_records SET target = ? WHERE id = ?`), target, id)
	}
	if err != nil {
		return fmt.Errorf("audit trail: settle record %d: %w", id, err)
	}
	return nil
}
