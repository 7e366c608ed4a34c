package deliverylog

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/workflows"
)

// Limits of a page of List.
const (
	DefaultLimit = 50
	MaxLimit     = 250
)

// Statuses are the statuses a delivery may have, and a List filter name.
var Statuses = []string{
	string(workflows.StatusPending), string(workflows.StatusRetrying), string(workflows.StatusDelivered),
	string(workflows.StatusFailed), string(workflows.StatusCanceled), string(workflows.StatusParked),
}

func validStatus(s string) bool { return slices.Contains(Statuses, s) }

// FieldError is bad input, naming the field (as the HTTP API spells it).
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Filter selects deliveries of one account for List. Empty fields match
// everything; Since (inclusive) and Until (exclusive) bound the creation
// time.
type Filter struct {
	EndpointID string
	Status     string
	EventName  string
	Since      time.Time
	Until      time.Time
	// Limit is the page size, 1 to MaxLimit; callers with no size from
	// their user pass DefaultLimit.
	Limit int
	// Cursor is a previous page's Next; "" is the first page.
	Cursor string
}

// Page is one page of List, newest first.
type Page struct {
	Deliveries []Delivery
	// Next is the cursor of the following page; "" on the last page.
	Next string
}

// Validate checks a filter, naming the field at fault.
func (f Filter) Validate() error {
	_, _, err := f.check()
	return err
}

func (f Filter) check() (created int64, id string, err error) {
	switch {
	case f.Limit < 1 || f.Limit > MaxLimit:
		return 0, "", &FieldError{Field: "limit", Problem: fmt.Sprintf("%d is outside 1 to %d", f.Limit, MaxLimit)}
	case f.Status != "" && !validStatus(f.Status):
		return 0, "", &FieldError{Field: "status", Problem: fmt.Sprintf("%q is none of %q", f.Status, Statuses)}
	case !f.Since.IsZero() && !f.Until.IsZero() && f.Since.After(f.Until):
		return 0, "", &FieldError{Field: "since", Problem: fmt.Sprintf("%s is after until %s",
			f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))}
	}
	if f.Cursor == "" {
		return 0, "", nil
	}
	created, id, ok := decodeCursor(f.Cursor)
	if !ok {
		return 0, "", &FieldError{Field: "cursor", Problem: "is not a cursor a previous page gave"}
	}
	return created, id, nil
}

// The cursor is the last delivery of a page, (created_at, delivery_id):
// the order's key, so deliveries created in the same millisecond page
// neither twice nor never.
func encodeCursor(d Delivery) string {
	return base64.RawURLEncoding.EncodeToString([]byte("1." + strconv.FormatInt(d.CreatedAt.UnixMilli(), 10) + "." + d.DeliveryID))
}

func decodeCursor(c string) (int64, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", false
	}
	parts := strings.SplitN(string(b), ".", 3)
	if len(parts) != 3 || parts[0] != "1" || parts[2] == "" {
		return 0, "", false
	}
	created, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return created, parts[2], true
}

const deliveryColumns = `delivery_id, account_id, endpoint_id, event_id, event_name, mail_log_id, status, attempts,
	created_at, last_attempt_at, last_status_code, next_attempt_at`

func scanDelivery(row interface{ Scan(...any) error }) (Delivery, error) {
	var d Delivery
	var created int64
	var last, next sql.NullInt64
	var code sql.NullInt32
	err := row.Scan(&d.DeliveryID, &d.AccountID, &d.EndpointID, &d.EventID, &d.EventName, &d.MailLogID,
		&d.Status, &d.Attempts, &created, &last, &code, &next)
	d.CreatedAt = time.UnixMilli(created).UTC()
	d.LastAttemptAt, d.NextAttemptAt, d.LastStatusCode = fromMS(last), fromMS(next), int(code.Int32)
	return d, err
}

// List returns a page of an account's deliveries that match f, newest
// first by creation time.
func (l *Log) List(ctx context.Context, accountID string, f Filter) (Page, error) {
	afterCreated, afterID, err := f.check()
	if err != nil {
		return Page{}, err
	}
	query, args := listQuery(accountID, f, afterCreated, afterID)
	rows, err := l.db.QueryContext(ctx, l.q(query), args...)
	if err != nil {
		return Page{}, fmt.Errorf("delivery log: list deliveries of %s: %w", accountID, err)
	}
	defer rows.Close()
	var page Page
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return Page{}, fmt.Errorf("delivery log: list deliveries of %s: %w", accountID, err)
		}
		page.Deliveries = append(page.Deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("delivery log: list deliveries of %s: %w", accountID, err)
	}
	if len(page.Deliveries) > f.Limit {
		page.Deliveries = page.Deliveries[:f.Limit]
		page.Next = encodeCursor(page.Deliveries[f.Limit-1])
	}
	return page, nil
}

// listQuery is List's query: one account, each filter given, after the
// cursor, one more than a page (to tell whether another follows).
func listQuery(accountID string, f Filter, afterCreated int64, afterID string) (string, []any) {
	where := []string{"account_id = ?"}
	args := []any{accountID}
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.EndpointID != "" {
		add("endpoint_id = ?", f.EndpointID)
	}
	if f.Status != "" {
		add("status = ?", f.Status)
	}
	if f.EventName != "" {
		add("event_name = ?", f.EventName)
	}
	if !f.Since.IsZero() {
		add("created_at >= ?", f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		add("created_at < ?", f.Until.UnixMilli())
	}
	if f.Cursor != "" {
		where = append(where, "(created_at, delivery_id) < (?, ?)")
		args = append(args, afterCreated, afterID)
	}
	query := `SELECT ` + deliveryColumns + ` FROM log_deliveries WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY created_at DESC, delivery_id DESC LIMIT ` + strconv.Itoa(f.Limit+1)
	return query, args
}

// Get returns one of an account's deliveries, or ErrNotFound.
func (l *Log) Get(ctx context.Context, accountID, deliveryID string) (Delivery, error) {
	d, err := scanDelivery(l.db.QueryRowContext(ctx, l.q(`SELECT `+deliveryColumns+
		` FROM log_deliveries WHERE account_id = ? AND delivery_id = ?`), accountID, deliveryID))
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, ErrNotFound
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("delivery log: get %s: %w", deliveryID, err)
	}
	return d, nil
}

// Attempts returns the attempts of one of an account's deliveries, oldest
// first, their response excerpts opened; ErrNotFound if the account has no
// such delivery.
func (l *Log) Attempts(ctx context.Context, accountID, deliveryID string) ([]Attempt, error) {
	d, err := l.Get(ctx, accountID, deliveryID)
	if err != nil {
		return nil, err
	}
	// Attempts start after their delivery is created: bounding started_at
	// spares PostgreSQL the older partitions (a day's slack for clocks).
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT run_id, attempt, started_at, duration_ms, status_code,
		outcome, error_class, response_excerpt FROM log_attempts WHERE delivery_id = ? AND started_at >= ?
		ORDER BY started_at, run_id, attempt`), deliveryID, d.CreatedAt.Add(-24*time.Hour).UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("delivery log: attempts of %s: %w", deliveryID, err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		var a Attempt
		var started, duration int64
		var sealed []byte
		if err := rows.Scan(&a.RunID, &a.Attempt, &started, &duration, &a.StatusCode, &a.Outcome, &a.ErrorClass, &sealed); err != nil {
			return nil, fmt.Errorf("delivery log: attempts of %s: %w", deliveryID, err)
		}
		a.StartedAt, a.Duration = time.UnixMilli(started).UTC(), time.Duration(duration)*time.Millisecond
		if len(sealed) > 0 {
			if a.ResponseExcerpt, err = l.codec.Open(sealed, excerptAD(deliveryID, a.RunID, a.Attempt)); err != nil {
				return nil, fmt.Errorf("delivery log: attempt %d of %s: response excerpt: %w", a.Attempt, deliveryID, err)
			}
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delivery log: attempts of %s: %w", deliveryID, err)
	}
	return out, nil
}
