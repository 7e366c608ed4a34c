package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/signing"
)

var _ endpoint.Source = (*Registry)(nil)

// Resolve returns endpoint id with its current secret and the previous ones
// not yet expired, whatever its account (the attempt checks that). A
// deleted endpoint is endpoint.ErrDeleted, an id never seen endpoint.ErrNotFound.
func (r *Registry) Resolve(ctx context.Context, id string) (endpoint.Endpoint, error) {
	rows, err := r.query(ctx, `SELECT `+columns+` FROM endpoints WHERE id = ?`, id)
	switch {
	case err != nil:
		return endpoint.Endpoint{}, fmt.Errorf("resolve endpoint %q: %w", id, err)
	case len(rows) == 0:
		return endpoint.Endpoint{}, fmt.Errorf("endpoint %q is not in the registry: %w", id, endpoint.ErrNotFound)
	case rows[0].deleted.Valid:
		return endpoint.Endpoint{}, fmt.Errorf("endpoint %q: %w", id, endpoint.ErrDeleted)
	}
	return r.withSecrets(rows[0])
}

// Route returns the enabled endpoints of accountID subscribed to eventName,
// in id order, with their secrets.
func (r *Registry) Route(ctx context.Context, accountID, eventName string) ([]endpoint.Endpoint, error) {
	rows, err := r.query(ctx, `SELECT `+columns+` FROM endpoints WHERE account_id = ? AND deleted_at IS NULL AND enabled = ? ORDER BY id`, accountID, true)
	if err != nil {
		return nil, fmt.Errorf("route %s of account %s: %w", eventName, accountID, err)
	}
	var out []endpoint.Endpoint
	var refused []endpoint.Refused
	for _, row := range rows {
		ep, err := r.withSecrets(row)
		switch {
		case err == nil && ep.Subscribes(eventName):
			out = append(out, ep)
		case err != nil && row.claims(eventName):
			// This endpoint alone: the account's others still route.
			refused = append(refused, endpoint.Refused{ID: row.id, Err: err})
		}
	}
	if refused != nil {
		return out, &endpoint.RouteError{Refused: refused}
	}
	return out, nil
}

// claims reports whether a row, as stored, subscribes to eventName: a
// refused row is reported only for the events it claims.
func (r row) claims(eventName string) bool {
	var events []string
	if json.Unmarshal([]byte(r.events), &events) != nil {
		return true
	}
	return endpoint.Endpoint{Events: events}.Subscribes(eventName)
}

func (r *Registry) withSecrets(row row) (endpoint.Endpoint, error) {
	if err := r.checkMAC(row); err != nil {
		return endpoint.Endpoint{}, err
	}
	e, err := row.entry()
	if err != nil {
		return endpoint.Endpoint{}, err
	}
	set, err := r.open(row.id, row.secrets)
	if err != nil {
		return endpoint.Endpoint{}, err
	}
	current, err := signing.ParseSecret(set.Current)
	if err != nil {
		return endpoint.Endpoint{}, fmt.Errorf("endpoint %q: current secret: %w", row.id, err)
	}
	now := r.now().UnixMilli()
	var previous []signing.Secret
	for _, p := range set.Previous {
		if p.ExpiresAt <= now {
			continue
		}
		s, err := signing.ParseSecret(p.Secret)
		if err != nil {
			return endpoint.Endpoint{}, fmt.Errorf("endpoint %q: previous secret: %w", row.id, err)
		}
		previous = append(previous, s)
	}
	e.SetSecrets(current, previous...)
	return e.Endpoint, nil
}

// columns are the endpoints table's columns in row's order.
const columns = `id, account_id, url, events, description, timeout_ms, retry_schedule, enabled, circuit, trace_context, max_in_flight, rate_limit, secrets, version, created_at, updated_at, deleted_at, mac`

// row is one endpoints row as stored.
type row struct {
	id, accountID, url, events, description string
	timeoutMS                               int64
	retrySchedule                           string
	enabled                                 bool
	circuit                                 string
	traceContext                            bool
	maxInFlight                             int
	rateLimit                               float64
	secrets                                 []byte
	version, created, updated               int64
	deleted                                 sql.NullInt64
	mac                                     []byte
}

func (r *row) scan(s interface{ Scan(...any) error }) error {
	return s.Scan(&r.id, &r.accountID, &r.url, &r.events, &r.description, &r.timeoutMS, &r.retrySchedule,
		&r.enabled, &r.circuit, &r.traceContext, &r.maxInFlight, &r.rateLimit, &r.secrets, &r.version, &r.created, &r.updated, &r.deleted, &r.mac)
}

// toRow is an endpoint's configuration as stored (id, account and
// configuration; the caller sets secrets and times).
func toRow(ep endpoint.Endpoint) (row, error) {
	events, err := json.Marshal(ep.Events)
	if err != nil {
		return row{}, err
	}
	delays := make([]int64, len(ep.RetrySchedule))
	for i, d := range ep.RetrySchedule {
		delays[i] = d.Milliseconds()
	}
	schedule, err := json.Marshal(delays)
	if err != nil {
		return row{}, err
	}
	circuit, err := json.Marshal(ep.Circuit)
	if err != nil {
		return row{}, err
	}
	return row{id: ep.ID, accountID: ep.AccountID, url: ep.URL.String(), events: string(events), description: ep.Description,
		timeoutMS: ep.Timeout.Milliseconds(), retrySchedule: string(schedule), enabled: ep.Enabled, circuit: string(circuit),
		traceContext: ep.TraceContext, maxInFlight: ep.EffectiveMaxInFlight(), rateLimit: ep.RateLimit}, nil
}

// entry decodes a live row's configuration.
func (r row) entry() (Entry, error) {
	e := Entry{
		Endpoint: endpoint.Endpoint{ID: r.id, AccountID: r.accountID, Description: r.description,
			Timeout: time.Duration(r.timeoutMS) * time.Millisecond, Enabled: r.enabled, TraceContext: r.traceContext,
			MaxInFlight: r.maxInFlight, RateLimit: r.rateLimit},
		CreatedAt: time.UnixMilli(r.created).UTC(),
		UpdatedAt: time.UnixMilli(r.updated).UTC(),
	}
	var err error
	if e.URL, err = url.Parse(r.url); err != nil {
		return Entry{}, fmt.Errorf("endpoint %q: stored url does not parse", r.id)
	}
	if err := json.Unmarshal([]byte(r.events), &e.Events); err != nil {
		return Entry{}, fmt.Errorf("endpoint %q: stored events: %w", r.id, err)
	}
	var delays []int64
	if err := json.Unmarshal([]byte(r.retrySchedule), &delays); err != nil {
		return Entry{}, fmt.Errorf("endpoint %q: stored retry_schedule: %w", r.id, err)
	}
	e.RetrySchedule = make([]time.Duration, len(delays))
	for i, ms := range delays {
		e.RetrySchedule[i] = time.Duration(ms) * time.Millisecond
	}
	e.Circuit = endpoint.DefaultCircuit()
	if err := json.Unmarshal([]byte(r.circuit), &e.Circuit); err != nil {
		return Entry{}, fmt.Errorf("endpoint %q: stored circuit: %w", r.id, err)
	}
	// A row registered before the built-in bounds applied is served, and
	// shown, with its values brought within them.
	e.Endpoint = endpoint.DefaultBounds().Within(e.Endpoint)
	return e, nil
}

func (r *Registry) query(ctx context.Context, q string, args ...any) ([]row, error) {
	return r.queryOn(ctx, r.db, q, args...)
}

// queryOn is query on db, or on a transaction.
func (r *Registry) queryOn(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args ...any) ([]row, error) {
	rs, err := db.QueryContext(ctx, r.dialect.rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var row row
		if err := row.scan(rs); err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, rs.Err()
}

// exec runs a write and returns the rows it affected.
func (r *Registry) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := r.db.ExecContext(ctx, r.dialect.rebind(q), args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, errors.Join(errors.New("rows affected"), err)
	}
	return n, nil
}
