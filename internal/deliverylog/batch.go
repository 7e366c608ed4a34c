package deliverylog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Entry is one write of a worker: a delivery's record (UpsertDelivery)
// and either one attempt's (RecordAttempt) or, when Attempt is nil, the
// delivery's status (SetStatus, no next attempt).
type Entry struct {
	Delivery Delivery
	Attempt  *AttemptRecord
}

// Write writes entries as if each were UpsertDelivery then RecordAttempt
// (or SetStatus), with their idempotence, and returns one error per entry
// (nil: written, or written before). In PostgreSQL every entry goes in one
// transaction sent as one pipeline: one round trip and one commit for all
// of them, so concurrent attempts' writes share a commit; an error of the
// database fails every entry, and none of them is written. Entries are
// written in the order of their delivery ids, entries of one delivery in
// the order given, so concurrent writers lock deliveries in one order.
// SQLite writes them one after another.
func (l *Log) Write(ctx context.Context, entries []Entry) []error {
	errs := make([]error, len(entries))
	var todo []pending
	for i, e := range entries {
		p, err := l.prepare(e)
		if err != nil {
			errs[i] = err
			continue
		}
		p.index = i
		todo = append(todo, p)
	}
	if !l.postgres() {
		for _, p := range todo {
			errs[p.index] = l.writeOne(ctx, p.Entry)
		}
		return errs
	}
	slices.SortStableFunc(todo, func(a, b pending) int { return cmp.Compare(a.Delivery.DeliveryID, b.Delivery.DeliveryID) })
	err := l.pipeline(ctx, todo, errs)
	if isNoPartition(err) {
		// A partition another process dropped, or a month not yet made.
		l.forgetPartitions()
		err = l.pipeline(ctx, todo, errs)
	}
	if err != nil {
		for _, p := range todo {
			errs[p.index] = fmt.Errorf("delivery log: write %s: %w", p.Delivery.DeliveryID, err)
		}
	}
	return errs
}

// pending is an entry checked, its excerpt sealed, waiting for the batch.
type pending struct {
	Entry
	index   int
	excerpt []byte
}

func (l *Log) prepare(e Entry) (pending, error) {
	if err := checkDelivery(e.Delivery); err != nil {
		return pending{}, err
	}
	p := pending{Entry: e}
	if e.Attempt == nil {
		if !validStatus(e.Delivery.Status) {
			return pending{}, &FieldError{Field: "status", Problem: fmt.Sprintf("%q is none of %q", e.Delivery.Status, Statuses)}
		}
		return p, nil
	}
	if err := checkAttempt(*e.Attempt); err != nil {
		return pending{}, err
	}
	if e.Attempt.AccountID != e.Delivery.AccountID || e.Attempt.DeliveryID != e.Delivery.DeliveryID {
		return pending{}, &FieldError{Field: "attempt", Problem: "belongs to another delivery than its entry's"}
	}
	var err error
	p.excerpt, err = l.seal(*e.Attempt)
	return p, err
}

// writeOne is an entry written statement by statement (SQLite).
func (l *Log) writeOne(ctx context.Context, e Entry) error {
	if err := l.UpsertDelivery(ctx, e.Delivery); err != nil {
		return err
	}
	if e.Attempt == nil {
		return l.SetStatus(ctx, e.Delivery.AccountID, e.Delivery.DeliveryID, e.Delivery.Status, time.Time{})
	}
	return l.RecordAttempt(ctx, *e.Attempt)
}

// The statements of an entry in the pipeline. Each statement of the
// implicit transaction reads the rows committed when it starts: the
// attempt's check runs in a statement after the one that locked its
// delivery's row, so a concurrent writer of the same attempt has committed
// by then and is seen (as RecordAttempt's steps).
const (
	pipeUpsert = `INSERT INTO log_deliveries
		(delivery_id, account_id, endpoint_id, event_id, event_name, mail_log_id, status, attempts,
		 created_at, last_attempt_at, last_status_code, next_attempt_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, NULL, NULL, $9)
		ON CONFLICT (delivery_id) DO NOTHING`
	pipeLock   = `SELECT account_id FROM log_deliveries WHERE delivery_id = $1 FOR UPDATE`
	pipeStatus = `UPDATE log_deliveries SET status = $3, next_attempt_at = NULL
		WHERE delivery_id = $1 AND account_id = $2`
	// The attempt goes in unless its delivery is another account's or it
	// is recorded already; the delivery counts it only if it went in. The
	// newest attempt (by start) sets the delivery's last and next.
	pipeAttempt = `WITH ins AS (
		INSERT INTO log_attempts
			(delivery_id, run_id, attempt, started_at, duration_ms, status_code, outcome, error_class, response_excerpt)
		SELECT $1::text, $3::text, $4::int, $5::bigint, $6::bigint, $7::int, $8::text, $9::text, $10::bytea
		WHERE EXISTS (SELECT 1 FROM log_deliveries WHERE delivery_id = $1 AND account_id = $2::text)
		  AND NOT EXISTS (SELECT 1 FROM log_attempts WHERE delivery_id = $1 AND run_id = $3 AND attempt = $4)
		RETURNING 1)
	UPDATE log_deliveries SET
		attempts = attempts + 1,
		status = CASE WHEN last_attempt_at IS NULL OR last_attempt_at <= $5 THEN COALESCE(NULLIF($11::text, ''), status) ELSE status END,
		last_status_code = CASE WHEN last_attempt_at IS NULL OR last_attempt_at <= $5 THEN $7 ELSE last_status_code END,
		next_attempt_at = CASE WHEN last_attempt_at IS NULL OR last_attempt_at <= $5 THEN $12::bigint ELSE next_attempt_at END,
		last_attempt_at = CASE WHEN last_attempt_at IS NULL OR last_attempt_at <= $5 THEN $5 ELSE last_attempt_at END
	WHERE delivery_id = $1 AND EXISTS (SELECT 1 FROM ins)`
)

// pipeline writes todo in PostgreSQL in one implicit transaction, one
// round trip, and sets errs of the entries the database refused (another
// account's delivery). An error it returns is the batch's: nothing of it
// was written.
func (l *Log) pipeline(ctx context.Context, todo []pending, errs []error) error {
	for _, p := range todo {
		if p.Attempt != nil {
			if err := l.ensurePartition(ctx, p.Attempt.Started); err != nil {
				return err
			}
		}
	}
	b := &pgx.Batch{}
	for _, p := range todo {
		d := p.Delivery
		b.Queue(pipeUpsert, d.DeliveryID, d.AccountID, d.EndpointID, d.EventID, d.EventName, d.MailLogID, d.Status,
			d.CreatedAt.UnixMilli(), ms(d.NextAttemptAt))
		b.Queue(pipeLock, d.DeliveryID)
		if a := p.Attempt; a != nil {
			b.Queue(pipeAttempt, a.DeliveryID, a.AccountID, a.RunID, a.Attempt, a.Started.UnixMilli(), a.Duration.Milliseconds(),
				a.StatusCode, a.Outcome, a.ErrorClass, p.excerpt, a.Status, ms(a.NextAttemptAt))
		} else {
			b.Queue(pipeStatus, d.DeliveryID, d.AccountID, d.Status)
		}
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	refused := make([]bool, len(todo))
	err = conn.Raw(func(dc any) error {
		br := dc.(*stdlib.Conn).Conn().SendBatch(ctx, b)
		err := readPipeline(br, todo, refused)
		// Close reads the commit: nothing counts as written before it.
		return errors.Join(err, br.Close())
	})
	if err != nil {
		return err
	}
	for i, p := range todo {
		errs[p.index] = nil
		if refused[i] {
			errs[p.index] = fmt.Errorf("delivery log: write %s: %w", p.Delivery.DeliveryID, ErrNotFound)
		}
	}
	return nil
}

// readPipeline reads the results of pipeline's statements, marking the
// entries whose delivery is another account's.
func readPipeline(br pgx.BatchResults, todo []pending, refused []bool) error {
	for i, p := range todo {
		if _, err := br.Exec(); err != nil {
			return err
		}
		var account string
		if err := br.QueryRow().Scan(&account); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		refused[i] = account != p.Delivery.AccountID
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
}
