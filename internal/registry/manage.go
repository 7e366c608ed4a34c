package registry

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/signing"
)

// Limits of the management calls.
const (
	DefaultListLimit = 50
	MaxListLimit     = 100
	// DefaultOverlap is how long a rotated-out secret keeps signing beside
	// the new one, so receivers switch without losing a delivery.
	DefaultOverlap = 24 * time.Hour
	MaxOverlap     = 30 * 24 * time.Hour
	// maxPrevious bounds the secrets still signed with after rotations in
	// quick succession; the oldest go first.
	maxPrevious = 4
	// secretBytes is the length of a generated signing key.
	secretBytes = 32
)

// The management calls' types live in package endpoint, so the HTTP API,
// which outside programs may import, names only public types.
type (
	// Fields are an endpoint's settable fields (endpoint.Fields).
	Fields = endpoint.Fields
	// Entry is a registered endpoint as management calls return it (endpoint.Entry).
	Entry = endpoint.Entry
	// Page is one page of List (endpoint.Page).
	Page = endpoint.Page
	// Rotated is the answer to RotateSecret (endpoint.Rotated).
	Rotated = endpoint.Rotated
	// View is an endpoint as the HTTP API and the CLI show it (endpoint.View).
	View = endpoint.View
)

func fieldErr(field, format string, args ...any) error {
	return &event.FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// fieldFrom turns a shared rule's error into a field error. Some rules name
// a more precise field themselves ("retry_schedule[2]: ...").
func fieldFrom(field string, err error) error {
	if f, problem, ok := strings.Cut(err.Error(), ": "); ok && strings.HasPrefix(f, field) && !strings.ContainsAny(f, " \"") {
		return &event.FieldError{Field: f, Problem: problem}
	}
	return &event.FieldError{Field: field, Problem: err.Error()}
}

func checkAccount(accountID string) error {
	if err := event.CheckAccountID(accountID); err != nil {
		return fieldFrom("account_id", err)
	}
	return nil
}

// applyThrottle checks f's max_in_flight and rate_limit against the bounds
// and applies them.
func (r *Registry) applyThrottle(ep *endpoint.Endpoint, f Fields) error {
	if f.MaxInFlight != nil {
		if err := r.bounds.CheckMaxInFlight(*f.MaxInFlight); err != nil {
			return fieldFrom("max_in_flight", err)
		}
		ep.MaxInFlight = *f.MaxInFlight
	}
	if f.RateLimit != nil {
		if err := r.bounds.CheckRateLimit(*f.RateLimit); err != nil {
			return fieldFrom("rate_limit", err)
		}
		ep.RateLimit = *f.RateLimit
	}
	return nil
}

// apply checks f and applies it to ep. A new or changed URL must pass the
// URL rules and, last (it resolves the host), the network guard: at
// registration, not only at attempt time.
func (r *Registry) apply(ctx context.Context, ep *endpoint.Endpoint, f Fields) error {
	var u *url.URL
	if f.URL != nil {
		var err error
		if u, err = endpoint.ParseURL(*f.URL); err != nil {
			return fieldFrom("url", err)
		}
		if r.httpsOnly && u.Scheme != "https" {
			return fieldErr("url", "plain http is refused here (--https-only); use an https URL")
		}
		if err := r.checkPort(u); err != nil {
			return err
		}
	}
	if f.Events != nil {
		if err := endpoint.CheckEvents(*f.Events); err != nil {
			return fieldFrom("events", err)
		}
		ep.Events = append([]string(nil), *f.Events...)
	}
	if f.Description != nil {
		if err := endpoint.CheckDescription(*f.Description); err != nil {
			return fieldFrom("description", err)
		}
		ep.Description = *f.Description
	}
	if f.Timeout != nil {
		d, err := endpoint.ParseTimeout(*f.Timeout)
		if err == nil {
			err = r.bounds.CheckTimeout(d)
		}
		if err != nil {
			return fieldFrom("timeout", err)
		}
		ep.Timeout = d
	}
	if f.RetrySchedule != nil {
		s, err := endpoint.ParseRetrySchedule(*f.RetrySchedule)
		if err == nil {
			err = r.bounds.CheckRetrySchedule(s)
		}
		if err != nil {
			return fieldFrom("retry_schedule", err)
		}
		ep.RetrySchedule = s
	}
	if f.Enabled != nil {
		ep.Enabled = *f.Enabled
	}
	if f.TraceContext != nil {
		ep.TraceContext = *f.TraceContext
	}
	if err := r.applyThrottle(ep, f); err != nil {
		return err
	}
	if f.Circuit != nil {
		c, err := f.Circuit.Parse(ep.Circuit)
		if err == nil {
			err = r.bounds.CheckCircuit(c, f.Circuit)
		}
		if err != nil {
			return fieldFrom("circuit", err)
		}
		ep.Circuit = c
	}
	if u != nil {
		if err := r.checkHost(ctx, u.Hostname()); err != nil {
			return err
		}
		ep.URL = u
	}
	return nil
}

// checkPort refuses a port the guard's port rule refuses.
func (r *Registry) checkPort(u *url.URL) error {
	port := uint64(443)
	if u.Scheme == "http" {
		port = 80
	}
	if p := u.Port(); p != "" {
		var err error
		if port, err = strconv.ParseUint(p, 10, 16); err != nil {
			return fieldErr("url", "port %q is not a number from 1 to 65535", p)
		}
	}
	if err := r.guard.CheckPort(uint16(port)); err != nil {
		return fieldErr("url", "port %d is refused: endpoints use 443, 80 or 1024-65535", port)
	}
	return nil
}

// checkHost resolves host and refuses it if the network guard would refuse
// any of its addresses. The refusal names neither the address nor its range:
// a caller who could read them would learn what internal names resolve to.
func (r *Registry) checkHost(ctx context.Context, host string) error {
	_, err := r.guard.Resolve(ctx, host)
	var blocked *netguard.BlockedError
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &blocked):
		return fieldErr("url", "the host is, or resolves to, an address deliveries may not reach; use a public host")
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fieldErr("url", "host %q does not resolve", host)
	default:
		return fieldErr("url", "could not check the host's addresses (%v); try again", err)
	}
}

// Create registers an endpoint of accountID with a generated id and
// secret, and returns both; the secret is not shown again.
func (r *Registry) Create(ctx context.Context, accountID string, f Fields) (Entry, string, error) {
	if err := checkAccount(accountID); err != nil {
		return Entry{}, "", err
	}
	switch {
	case f.URL == nil:
		return Entry{}, "", fieldErr("url", "is required")
	case f.Events == nil:
		return Entry{}, "", fieldErr("events", `is required: list event names, or ["*"] for all`)
	}
	// The defaults, brought within narrowed bounds.
	ep := r.bounds.Within(endpoint.Endpoint{AccountID: accountID, Timeout: endpoint.DefaultTimeout, RetrySchedule: endpoint.DefaultRetrySchedule,
		Enabled: true, Circuit: endpoint.DefaultCircuit(), MaxInFlight: endpoint.DefaultMaxInFlight})
	if err := r.apply(ctx, &ep, f); err != nil {
		return Entry{}, "", err
	}
	id, err := newID()
	if err != nil {
		return Entry{}, "", err
	}
	ep.ID = id
	secret, err := newSecret()
	if err != nil {
		return Entry{}, "", err
	}
	sealed, err := r.seal(id, secretSet{Current: secret})
	if err != nil {
		return Entry{}, "", err
	}
	now := r.now().UTC().Truncate(time.Millisecond)
	row, err := toRow(ep)
	if err != nil {
		return Entry{}, "", err
	}
	err = r.insertWithinQuota(ctx, accountID, `INSERT INTO endpoints (id, account_id, url, events, description, timeout_ms, retry_schedule, enabled, circuit, trace_context, max_in_flight, rate_limit, secrets, version, created_at, updated_at, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
		row.id, row.accountID, row.url, row.events, row.description, row.timeoutMS, row.retrySchedule, row.enabled, row.circuit, row.traceContext, row.maxInFlight, row.rateLimit, sealed, now.UnixMilli(), now.UnixMilli(),
		r.macs.MAC(row.macMessage()))
	if err != nil {
		return Entry{}, "", err
	}
	r.changed(accountID, id)
	return Entry{Endpoint: ep, CreatedAt: now, UpdatedAt: now}, secret, nil
}

// insertWithinQuota runs insert, a new endpoint of accountID, only if the
// account holds fewer live endpoints than the quota
// (Bounds.MaxEndpointsPerAccount); else it answers a field error naming
// the quota. Count and insert share a transaction that concurrent
// creations of the account wait on (PostgreSQL: a transaction-scoped
// advisory lock on the account; SQLite: the write lock BEGIN IMMEDIATE
// takes), so together they never pass the quota.
func (r *Registry) insertWithinQuota(ctx context.Context, accountID, insert string, args ...any) error {
	fail := func(err error) error { return fmt.Errorf("create endpoint of account %s: %w", accountID, err) }
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if r.dialect.name == postgres.name {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "hookrelay endpoints of "+accountID); err != nil {
			return fail(err)
		}
	}
	var count int
	if err := tx.QueryRowContext(ctx, r.dialect.rebind(`SELECT count(*) FROM endpoints WHERE account_id = ? AND deleted_at IS NULL`), accountID).Scan(&count); err != nil {
		return fail(err)
	}
	if err := r.bounds.CheckEndpointCount(accountID, count+1); err != nil {
		return fieldErr("account_id", "the account is at its quota (max-endpoints-per-account: %d endpoints); delete one before registering another",
			r.bounds.MaxEndpointsPerAccount)
	}
	if _, err := tx.ExecContext(ctx, r.dialect.rebind(insert), args...); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}

// Get returns accountID's endpoint id, or an error wrapping
// endpoint.ErrNotFound if the account has no such live endpoint.
func (r *Registry) Get(ctx context.Context, accountID, id string) (Entry, error) {
	row, err := r.live(ctx, accountID, id)
	if err != nil {
		return Entry{}, err
	}
	return row.entry()
}

// List returns a page of accountID's endpoints in id order: at most limit
// (0: DefaultListLimit), after cursor ("" for the first page).
func (r *Registry) List(ctx context.Context, accountID string, limit int, cursor string) (Page, error) {
	if err := checkAccount(accountID); err != nil {
		return Page{}, err
	}
	limit, after, err := pageArgs(limit, cursor)
	if err != nil {
		return Page{}, err
	}
	rows, err := r.query(ctx, `SELECT `+columns+` FROM endpoints WHERE account_id = ? AND deleted_at IS NULL AND id > ? ORDER BY id LIMIT ?`,
		accountID, after, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("list endpoints of account %s: %w", accountID, err)
	}
	var page Page
	for i, row := range rows {
		if i == limit {
			page.NextCursor = encodeCursor(rows[i-1].id)
			break
		}
		e, err := row.entry()
		if err != nil {
			return Page{}, err
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// pageArgs checks List's limit and cursor.
func pageArgs(limit int, cursor string) (int, string, error) {
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return 0, "", fieldErr("limit", "%d is not between 1 and %d", limit, MaxListLimit)
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
			return 0, "", fieldErr("cursor", "is not a cursor this API returned")
		}
		after = strings.TrimPrefix(string(b), cursorPrefix)
	}
	return limit, after, nil
}

const cursorPrefix = "ep1:"

// encodeCursor hides the keyset position: clients pass it back untouched.
func encodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + lastID))
}

// Update applies f to accountID's endpoint id: every field is checked
// before anything is written.
func (r *Registry) Update(ctx context.Context, accountID, id string, f Fields) (Entry, error) {
	var out Entry
	err := r.modify(ctx, accountID, id, func(row *row) error {
		e, err := row.entry()
		if err != nil {
			return err
		}
		if err := r.apply(ctx, &e.Endpoint, f); err != nil {
			return err
		}
		next, err := toRow(e.Endpoint)
		if err != nil {
			return err
		}
		next.secrets, next.version, next.created = row.secrets, row.version, row.created
		*row = next
		return nil
	}, func(row row) (err error) {
		out, err = row.entry()
		return err
	})
	return out, err
}

// RotateSecret gives accountID's endpoint id a new secret. The replaced one
// keeps signing beside it for overlap (0 drops it and any older one at once).
func (r *Registry) RotateSecret(ctx context.Context, accountID, id string, overlap time.Duration) (Rotated, error) {
	if overlap < 0 || overlap > MaxOverlap {
		return Rotated{}, fieldErr("overlap", "%s is not between 0 and %s", overlap, MaxOverlap)
	}
	secret, err := newSecret()
	if err != nil {
		return Rotated{}, err
	}
	var out Rotated
	err = r.modify(ctx, accountID, id, func(row *row) error {
		set, err := r.open(row.id, row.secrets)
		if err != nil {
			return err
		}
		now := r.now()
		next := secretSet{Current: secret}
		if overlap > 0 {
			expires := now.Add(overlap).UTC().Truncate(time.Millisecond)
			next.Previous = append(next.Previous, previousSecret{Secret: set.Current, ExpiresAt: expires.UnixMilli()})
			for _, p := range set.Previous {
				if p.ExpiresAt > now.UnixMilli() && len(next.Previous) < maxPrevious {
					next.Previous = append(next.Previous, p)
				}
			}
			out = Rotated{Secret: secret, PreviousExpiresAt: &expires}
		} else {
			out = Rotated{Secret: secret}
		}
		row.secrets, err = r.seal(row.id, next)
		return err
	}, nil)
	if err != nil {
		return Rotated{}, err
	}
	return out, nil
}

// RevealSecret answers accountID's endpoint id's current signing secret,
// whsec_..., for a receiver that lost it; the secret does not change.
func (r *Registry) RevealSecret(ctx context.Context, accountID, id string) (string, error) {
	row, err := r.live(ctx, accountID, id)
	if err != nil {
		return "", err
	}
	set, err := r.open(row.id, row.secrets)
	if err != nil {
		return "", err
	}
	return set.Current, nil
}

// Delete removes accountID's endpoint id. Its row stays as a tombstone,
// configuration and secrets cleared, so Resolve answers endpoint.ErrDeleted.
func (r *Registry) Delete(ctx context.Context, accountID, id string) error {
	if err := checkAccount(accountID); err != nil {
		return err
	}
	now := r.now().UnixMilli()
	n, err := r.exec(ctx, `UPDATE endpoints SET deleted_at = ?, updated_at = ?, url = '', events = '[]', description = '', enabled = ?, secrets = NULL, mac = NULL, version = version + 1
		WHERE id = ? AND account_id = ? AND deleted_at IS NULL`, now, now, false, id, accountID)
	if err != nil {
		return fmt.Errorf("delete endpoint %q of account %s: %w", id, accountID, err)
	}
	if n == 0 {
		return notFound(accountID, id)
	}
	r.changed(accountID, id)
	return nil
}

func notFound(accountID, id string) error {
	return fmt.Errorf("account %s has no endpoint %q: %w", accountID, id, endpoint.ErrNotFound)
}

// live reads accountID's live endpoint id.
func (r *Registry) live(ctx context.Context, accountID, id string) (row, error) {
	if err := checkAccount(accountID); err != nil {
		return row{}, err
	}
	rows, err := r.query(ctx, `SELECT `+columns+` FROM endpoints WHERE id = ? AND account_id = ? AND deleted_at IS NULL`, id, accountID)
	switch {
	case err != nil:
		return row{}, fmt.Errorf("read endpoint %q of account %s: %w", id, accountID, err)
	case len(rows) == 0:
		return row{}, notFound(accountID, id)
	}
	return rows[0], nil
}

// modify reads a live endpoint, lets change edit its row, and writes it
// back if no other write came between (optimistic concurrency on version),
// trying again if one did. done sees the row as written. A row whose MAC
// fails is refused: writing it would MAC what someone changed.
func (r *Registry) modify(ctx context.Context, accountID, id string, change func(*row) error, done func(row) error) error {
	for range 8 {
		current, err := r.live(ctx, accountID, id)
		if err != nil {
			return err
		}
		if err := r.checkMAC(current); err != nil {
			return err
		}
		next := current
		if err := change(&next); err != nil {
			return err
		}
		next.updated = r.now().UnixMilli()
		next.mac = r.macs.MAC(next.macMessage())
		n, err := r.exec(ctx, `UPDATE endpoints SET url = ?, events = ?, description = ?, timeout_ms = ?, retry_schedule = ?, enabled = ?, circuit = ?, trace_context = ?, max_in_flight = ?, rate_limit = ?, secrets = ?, updated_at = ?, mac = ?, version = version + 1
			WHERE id = ? AND account_id = ? AND version = ? AND deleted_at IS NULL`,
			next.url, next.events, next.description, next.timeoutMS, next.retrySchedule, next.enabled, next.circuit, next.traceContext, next.maxInFlight, next.rateLimit, next.secrets, next.updated, next.mac,
			id, accountID, current.version)
		if err != nil {
			return fmt.Errorf("update endpoint %q of account %s: %w", id, accountID, err)
		}
		if n == 1 {
			r.changed(accountID, id)
			if done != nil {
				return done(next)
			}
			return nil
		}
	}
	return fmt.Errorf("update endpoint %q of account %s: other writes kept coming between read and write; try again", id, accountID)
}

func (r *Registry) changed(accountID, id string) {
	if r.onChange != nil {
		r.onChange(accountID, id)
	}
}

// secretSet is what an endpoint's sealed secrets column holds.
type secretSet struct {
	Current  string           `json:"current"`
	Previous []previousSecret `json:"previous,omitempty"`
}

type previousSecret struct {
	Secret    string `json:"secret"`
	ExpiresAt int64  `json:"expires_at"` // unix milliseconds
}

// secretsAD binds sealed secrets to their endpoint: copied into another
// endpoint's row, they do not open.
func secretsAD(id string) []byte { return []byte("hookrelay endpoint secrets " + id) }

func (r *Registry) seal(id string, s secretSet) ([]byte, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	sealed, err := r.secrets.Seal(plain, secretsAD(id))
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: seal its secrets: %w", id, err)
	}
	return sealed, nil
}

func (r *Registry) open(id string, sealed []byte) (secretSet, error) {
	var s secretSet
	plain, err := r.secrets.Open(sealed, secretsAD(id))
	if err != nil {
		return s, fmt.Errorf("endpoint %q: open its secrets (is every key that sealed them still in the key file?): %w", id, err)
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return s, fmt.Errorf("endpoint %q: its secrets do not decode: %w", id, err)
	}
	return s, nil
}

// newID is "ep_" and 26 characters of lower-case base32 (128 random bits):
// valid in a delivery id and a URL path as it is.
func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("endpoint id: %w", err)
	}
	return "ep_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// newSecret is a Standard Webhooks secret: "whsec_" and base64 of 32 random bytes.
func newSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("endpoint secret: %w", err)
	}
	return signing.SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}
