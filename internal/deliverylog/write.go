package deliverylog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// UpsertDelivery records a delivery when it is created; a delivery already
// recorded is left as it is, so writing it again is harmless.
func (l *Log) UpsertDelivery(ctx context.Context, d Delivery) error {
	if err := checkDelivery(d); err != nil {
		return err
	}
	_, err := l.db.ExecContext(ctx, l.q(`INSERT INTO log_deliveries
		(delivery_id, account_id, endpoint_id, event_id, event_name, mail_log_id, status, attempts,
		 created_at, last_attempt_at, last_status_code, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, NULL, ?)
		ON CONFLICT (delivery_id) DO NOTHING`),
		d.DeliveryID, d.AccountID, d.EndpointID, d.EventID, d.EventName, d.MailLogID, d.Status,
		d.CreatedAt.UnixMilli(), ms(d.NextAttemptAt))
	if err != nil {
		return fmt.Errorf("delivery log: record delivery %s: %w", d.DeliveryID, err)
	}
	return nil
}

func checkDelivery(d Delivery) error {
	for _, f := range []struct{ name, v string }{
		{"account_id", d.AccountID}, {"delivery_id", d.DeliveryID}, {"endpoint_id", d.EndpointID},
		{"event_id", d.EventID}, {"event_name", d.EventName}, {"status", d.Status},
	} {
		if f.v == "" {
			return &FieldError{Field: f.name, Problem: "is empty"}
		}
	}
	if !validStatus(d.Status) {
		return &FieldError{Field: "status", Problem: fmt.Sprintf("%q is none of %q", d.Status, Statuses)}
	}
	if d.CreatedAt.IsZero() {
		return &FieldError{Field: "created_at", Problem: "is zero"}
	}
	return nil
}

// SetStatus records a change of a delivery's status that no attempt made
// (parked, canceled), and its next attempt (zero: none).
func (l *Log) SetStatus(ctx context.Context, accountID, deliveryID, status string, nextAttemptAt time.Time) error {
	if !validStatus(status) {
		return &FieldError{Field: "status", Problem: fmt.Sprintf("%q is none of %q", status, Statuses)}
	}
	res, err := l.db.ExecContext(ctx, l.q(`UPDATE log_deliveries SET status = ?, next_attempt_at = ?
		WHERE account_id = ? AND delivery_id = ?`), status, ms(nextAttemptAt), accountID, deliveryID)
	if err != nil {
		return fmt.Errorf("delivery log: set status of %s: %w", deliveryID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delivery log: set status of %s: %w", deliveryID, ErrNotFound)
	}
	return nil
}

// RecordAttempt writes one finished attempt and brings its delivery's
// status, attempt count, last attempt and next attempt up to date. It is
// idempotent on (delivery id, run id, attempt number): an attempt already
// recorded writes nothing and is no error. The delivery must have been
// recorded (UpsertDelivery) in the same account; else ErrNotFound.
func (l *Log) RecordAttempt(ctx context.Context, a AttemptRecord) error {
	if err := checkAttempt(a); err != nil {
		return err
	}
	excerpt, err := l.seal(a)
	if err != nil {
		return err
	}
	err = l.recordAttempt(ctx, a, excerpt)
	if l.postgres() && isNoPartition(err) {
		// A partition another process dropped, or a month not yet made.
		l.forgetPartitions()
		err = l.recordAttempt(ctx, a, excerpt)
	}
	if err != nil {
		return fmt.Errorf("delivery log: record attempt %d of %s (run %s): %w", a.Attempt, a.DeliveryID, a.RunID, err)
	}
	return nil
}

func checkAttempt(a AttemptRecord) error {
	switch {
	case a.AccountID == "":
		return &FieldError{Field: "account_id", Problem: "is empty"}
	case a.DeliveryID == "":
		return &FieldError{Field: "delivery_id", Problem: "is empty"}
	case a.RunID == "":
		return &FieldError{Field: "run_id", Problem: "is empty"}
	case a.Attempt < 1:
		return &FieldError{Field: "attempt", Problem: fmt.Sprintf("%d is below 1", a.Attempt)}
	case a.Started.IsZero():
		return &FieldError{Field: "started_at", Problem: "is zero"}
	case a.Status != "" && !validStatus(a.Status):
		return &FieldError{Field: "status", Problem: fmt.Sprintf("%q is none of %q", a.Status, Statuses)}
	}
	return nil
}

func (l *Log) recordAttempt(ctx context.Context, a AttemptRecord, excerpt []byte) error {
	if l.postgres() {
		if err := l.ensurePartition(ctx, a.Started); err != nil {
			return err
		}
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The delivery's row lock (SQLite: the write lock taken at BEGIN)
	// serialises writers of one delivery, so the check below and the
	// insert are one step: PostgreSQL cannot hold a unique key across
	// monthly partitions.
	lock := `SELECT account_id FROM log_deliveries WHERE delivery_id = ?`
	if l.postgres() {
		lock += ` FOR UPDATE`
	}
	var account string
	switch err := tx.QueryRowContext(ctx, l.q(lock), a.DeliveryID).Scan(&account); {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case account != a.AccountID:
		return ErrNotFound
	}
	var seen bool
	if err := tx.QueryRowContext(ctx, l.q(`SELECT EXISTS (SELECT 1 FROM log_attempts
		WHERE delivery_id = ? AND run_id = ? AND attempt = ?)`), a.DeliveryID, a.RunID, a.Attempt).Scan(&seen); err != nil {
		return err
	}
	if seen {
		return nil
	}
	if _, err := tx.ExecContext(ctx, l.q(`INSERT INTO log_attempts
		(delivery_id, run_id, attempt, started_at, duration_ms, status_code, outcome, error_class, response_excerpt)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		a.DeliveryID, a.RunID, a.Attempt, a.Started.UnixMilli(), a.Duration.Milliseconds(), a.StatusCode,
		a.Outcome, a.ErrorClass, excerpt); err != nil {
		return err
	}
	// The newest attempt (by start) sets the delivery's last and next; an
	// older one recorded late only counts.
	if _, err := tx.ExecContext(ctx, l.q(`UPDATE log_deliveries SET
		attempts = attempts + 1,
		status = CASE WHEN last_attempt_at IS NULL OR last_attempt_at <= ? THEN COALESCE(NULLIF(?, ''), status) ELSE status END,
		last_status_code = CASE WHEN last_attempt_at IS NULL OR last_attempt_at <= ? THEN ? ELSE last_status_code END,
		next_attempt_at = CASE WHEN last_attempt_at IS NULL OR last_attempt_at <= ? THEN ? ELSE next_attempt_at END,
		last_attempt_at = CASE WHEN last_attempt_at IS NULL OR last_attempt_at <= ? THEN ? ELSE last_attempt_at END
		WHERE delivery_id = ?`),
		a.Started.UnixMilli(), a.Status, a.Started.UnixMilli(), a.StatusCode,
		a.Started.UnixMilli(), ms(a.NextAttemptAt), a.Started.UnixMilli(), a.Started.UnixMilli(),
		a.DeliveryID); err != nil {
		return err
	}
	return tx.Commit()
}

// seal seals the first ExcerptBytes of the response, bound to its attempt
// so sealed bytes moved to another row do not open there.
func (l *Log) seal(a AttemptRecord) ([]byte, error) {
	if len(a.Response) == 0 {
		return nil, nil
	}
	plain := a.Response[:min(len(a.Response), ExcerptBytes)]
	sealed, err := l.codec.Seal(plain, excerptAD(a.DeliveryID, a.RunID, a.Attempt))
	if err != nil {
		return nil, fmt.Errorf("delivery log: seal the response excerpt of %s: %w", a.DeliveryID, err)
	}
	return sealed, nil
}

func excerptAD(deliveryID, runID string, attempt int) []byte {
	return []byte("deliverylog\x00" + deliveryID + "\x00" + runID + "\x00" + strconv.Itoa(attempt))
}

// isNoPartition reports PostgreSQL's "no partition of relation found for
// row".
func isNoPartition(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23514" && pg.ConstraintName == ""
}
