package httpapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// Limits of a page of the delivery log.
const (
	DefaultLogLimit = deliverylog.DefaultLimit
	MaxLogLimit     = deliverylog.MaxLimit
)

// LogStatuses are the statuses a logged delivery may have, and a filter.
var LogStatuses = deliverylog.Statuses

// ErrDeliveryNotFound is what a DeliveryLog wraps for a delivery the
// account does not have (another account's included).
var ErrDeliveryNotFound = deliverylog.ErrNotFound

// LogFilter selects an account's deliveries. Empty fields match
// everything; Since (inclusive) and Until (exclusive) bound the creation
// time, to the millisecond.
type LogFilter struct {
	EndpointID string
	Status     string
	EventName  string
	Since      time.Time
	Until      time.Time
	// Limit is the page size, 1 to MaxLogLimit.
	Limit int
	// Cursor is a previous page's NextCursor; "" is the first page.
	Cursor string
}

func (f LogFilter) store() deliverylog.Filter {
	return deliverylog.Filter{EndpointID: f.EndpointID, Status: f.Status, EventName: f.EventName,
		Since: f.Since, Until: f.Until, Limit: f.Limit, Cursor: f.Cursor}
}

// Validate checks f; a bad value is an *event.FieldError naming the
// parameter (limit, status, since, cursor).
func (f LogFilter) Validate() error { return fieldError(f.store().Validate()) }

// LogPage is one page of an account's deliveries, newest first: the answer
// of GET /v1/accounts/{account_id}/deliveries.
type LogPage struct {
	Deliveries []LoggedDelivery `json:"deliveries"`
	// NextCursor continues the listing; "" on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// LoggedDelivery is a delivery as the delivery log holds it. What is not
// known yet (no attempt, no HTTP answer, no next attempt) is nil.
type LoggedDelivery struct {
	DeliveryID     string     `json:"delivery_id"`
	EndpointID     string     `json:"endpoint_id"`
	EventID        string     `json:"event_id"`
	EventName      string     `json:"event_name"`
	MailLogID      string     `json:"mail_log_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	CreatedAt      time.Time  `json:"created_at"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	LastStatusCode *int       `json:"last_status_code"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
}

// LoggedAttempt is one attempt as the delivery log holds it. StatusCode
// is nil when no HTTP answer came, Error when the attempt has no error
// class, ResponseExcerpt when the answer had no body or content retention
// has blanked it.
type LoggedAttempt struct {
	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	StatusCode *int      `json:"status_code"`
	Outcome    string    `json:"outcome"`
	Error      *string   `json:"error"`
	// ResponseExcerpt is the first KiB of the receiver's answer as text
	// (ExcerptText).
	ResponseExcerpt *string `json:"response_excerpt"`
}

// ExcerptText is a response excerpt as text: each run of bytes that is not
// UTF-8 (a binary body, a character cut at the 1 KiB mark) is one U+FFFD.
func ExcerptText(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

// LogDB is the delivery log in a database: a DeliveryLog.
type LogDB struct {
	log *deliverylog.Log
}

// OpenDeliveryLog opens the delivery log in the database dsn names
// (postgres://... or sqlite:PATH), migrating its schema; keys are the
// payload keys its response excerpts are sealed with.
func OpenDeliveryLog(ctx context.Context, dsn string, keys temporalclient.PayloadKeys) (*LogDB, error) {
	return openDeliveryLog(ctx, dsn, keys, false)
}

// OpenDeliveryLogNoMigrate is OpenDeliveryLog for a role without DDL
// privileges: it migrates nothing, and refuses a database whose schema is
// behind this build's, naming the command that migrates it.
func OpenDeliveryLogNoMigrate(ctx context.Context, dsn string, keys temporalclient.PayloadKeys) (*LogDB, error) {
	return openDeliveryLog(ctx, dsn, keys, true)
}

func openDeliveryLog(ctx context.Context, dsn string, keys temporalclient.PayloadKeys, noMigrate bool) (*LogDB, error) {
	if keys == nil {
		return nil, errors.New("delivery log: no payload keys to open response excerpts with")
	}
	l, err := deliverylog.Open(ctx, dsn, deliverylog.Options{Codec: keys, NoMigrate: noMigrate})
	if err != nil {
		return nil, err
	}
	return &LogDB{log: l}, nil
}

// Close closes the database.
func (db *LogDB) Close() error { return db.log.Close() }

// List returns a page of the account's deliveries that match f.
func (db *LogDB) List(ctx context.Context, accountID string, f LogFilter) (LogPage, error) {
	page, err := db.log.List(ctx, accountID, f.store())
	if err != nil {
		return LogPage{}, fieldError(err)
	}
	out := LogPage{Deliveries: make([]LoggedDelivery, 0, len(page.Deliveries)), NextCursor: page.Next}
	for _, d := range page.Deliveries {
		out.Deliveries = append(out.Deliveries, loggedDelivery(d))
	}
	return out, nil
}

// Get returns one of the account's deliveries.
func (db *LogDB) Get(ctx context.Context, accountID, deliveryID string) (LoggedDelivery, error) {
	d, err := db.log.Get(ctx, accountID, deliveryID)
	if err != nil {
		return LoggedDelivery{}, err
	}
	return loggedDelivery(d), nil
}

// Attempts returns the attempts of one of the account's deliveries, oldest
// first, their response excerpts opened.
func (db *LogDB) Attempts(ctx context.Context, accountID, deliveryID string) ([]LoggedAttempt, error) {
	as, err := db.log.Attempts(ctx, accountID, deliveryID)
	if err != nil {
		return nil, err
	}
	out := make([]LoggedAttempt, 0, len(as))
	for _, a := range as {
		out = append(out, loggedAttempt(a))
	}
	return out, nil
}

func loggedDelivery(d deliverylog.Delivery) LoggedDelivery {
	return LoggedDelivery{
		DeliveryID: d.DeliveryID, EndpointID: d.EndpointID, EventID: d.EventID, EventName: d.EventName,
		MailLogID: d.MailLogID, Status: d.Status, Attempts: d.Attempts, CreatedAt: d.CreatedAt.UTC(),
		LastAttemptAt: timeOrNil(d.LastAttemptAt), LastStatusCode: codeOrNil(d.LastStatusCode),
		NextAttemptAt: timeOrNil(d.NextAttemptAt),
	}
}

func loggedAttempt(a deliverylog.Attempt) LoggedAttempt {
	v := LoggedAttempt{
		Attempt: a.Attempt, StartedAt: a.StartedAt.UTC(), DurationMS: a.Duration.Milliseconds(),
		StatusCode: codeOrNil(a.StatusCode), Outcome: a.Outcome,
	}
	if a.ErrorClass != "" {
		v.Error = &a.ErrorClass
	}
	if a.ResponseExcerpt != nil {
		text := ExcerptText(a.ResponseExcerpt)
		v.ResponseExcerpt = &text
	}
	return v
}

// fieldError is the log's *deliverylog.FieldError as an *event.FieldError,
// the type the API answers 422 for; any other error as it is.
func fieldError(err error) error {
	var fe *deliverylog.FieldError
	if errors.As(err, &fe) {
		return &event.FieldError{Field: fe.Field, Problem: fe.Problem}
	}
	return err
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func codeOrNil(code int) *int {
	if code == 0 {
		return nil
	}
	return &code
}

var _ DeliveryLog = (*LogDB)(nil)
