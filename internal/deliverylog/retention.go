package deliverylog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// RetentionInterval is how often retention runs: once a day across every
// runner on one database.
const RetentionInterval = 24 * time.Hour

// Defaults of RetentionOptions.
const (
	DefaultRetentionRetry = time.Hour
	DefaultRetentionLease = 10 * time.Minute
)

// RetentionOptions configure the retention runner.
type RetentionOptions struct {
	// Records and Content are Prune's retentions; zero is the default of each.
	Records, Content time.Duration
	// Logger reports each run and each failure; nil discards.
	Logger *slog.Logger
	// Now is the clock runs are due by; nil is time.Now.
	Now func() time.Time
	// Holder names this runner in the run's row; "" is host:pid and a
	// random suffix.
	Holder string
	// Retry is how soon a runner tries again after a failed run or a check
	// that could not reach the database; 0 is DefaultRetentionRetry.
	Retry time.Duration
	// Lease is how long a claim holds unless renewed (it is, every third
	// of it, while the run lasts): a runner that crashed mid-run is taken
	// over this long after. 0 is DefaultRetentionLease.
	Lease time.Duration
	// Trail, if set, is kept as long as the log's records: each run also
	// prunes its records older than Records (the audit trail).
	Trail Trail

	envBad map[string]string // flag name -> a bad environment value
}

func (o RetentionOptions) withDefaults() RetentionOptions {
	if o.Records == 0 {
		o.Records = DefaultRetention
	}
	if o.Content == 0 {
		o.Content = DefaultContentRetention
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Holder == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		rand.Read(b)
		o.Holder = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	if o.Retry <= 0 {
		o.Retry = DefaultRetentionRetry
	}
	if o.Lease <= 0 {
		o.Lease = DefaultRetentionLease
	}
	return o
}

// Trail is a store kept as long as the delivery log's records: the audit
// trail (*auditstore.Store). Prune deletes what is older than before and
// counts it.
type Trail interface {
	Prune(ctx context.Context, before time.Time) (int64, error)
}

// RetentionRun is what one TryRetention did.
type RetentionRun struct {
	// Ran: this runner claimed the day's run and pruned.
	Ran    bool
	Pruned Pruned
	Took   time.Duration
	// Next is when a run is next due, by the runner's clock: a day after
	// the last successful run, or when another runner's lease ends.
	Next time.Time
}

// StartRetention runs RunRetention in the background; stop ends it and
// waits for it, a run in progress abandoned (its lease released).
func StartRetention(ctx context.Context, l *Log, o RetentionOptions) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunRetention(ctx, l, o)
	}()
	return func() { cancel(); <-done }
}

// RunRetention applies retention by itself until ctx is done: it checks at
// once, then whenever the next run is due, and runs Prune when a day has
// passed since the last successful run of any runner on the database. The
// database holds that time and a lease, so one runner runs a day however
// many there are, and a restarted one resumes the schedule. Failures are
// logged and retried after o.Retry; none ends the loop.
func RunRetention(ctx context.Context, l *Log, o RetentionOptions) {
	o = o.withDefaults()
	o.Logger.Info("delivery log retention scheduled", "records", FormatRetention(o.Records),
		"content", FormatRetention(o.Content), "holder", o.Holder)
	for {
		run, err := l.TryRetention(ctx, o)
		if ctx.Err() != nil {
			return
		}
		wait := o.Retry
		if err != nil {
			o.Logger.Error("delivery log retention failed", "error", err.Error(), "retry_in", o.Retry.String())
		} else {
			if run.Ran {
				logRun(o.Logger, run)
			}
			wait = min(max(run.Next.Sub(o.Now()), time.Second), o.Retry)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func logRun(logger *slog.Logger, run RetentionRun) {
	p := run.Pruned
	logger.Info("delivery log retention ran", "took", run.Took.String(),
		"dropped_partitions", p.DroppedPartitions, "drop_took", p.DropTime.String(),
		"deleted_attempts", p.DeletedAttempts, "deleted_deliveries", p.DeletedDeliveries,
		"blanked_excerpts", p.BlankedExcerpts, "deleted_audit_records", p.DeletedAuditRecords, "next", run.Next.UTC().Format(time.RFC3339))
}

// retentionRow is the one row runs are claimed on.
const retentionRow = "prune"

// TryRetention runs Prune if a run is due (a day since the last successful
// one) and no other runner holds it; else it only says when the next is
// due. A failed run leaves the last successful time as it was, so the next
// try, by any runner, runs again.
func (l *Log) TryRetention(ctx context.Context, o RetentionOptions) (RetentionRun, error) {
	o = o.withDefaults()
	now := o.Now()
	res, err := l.db.ExecContext(ctx, l.q(`UPDATE log_retention_runs SET holder = ?, lease_until = ?
		WHERE name = ? AND (last_run_at IS NULL OR last_run_at <= ?) AND (lease_until IS NULL OR lease_until < ?)`),
		o.Holder, now.Add(o.Lease).UnixMilli(), retentionRow, now.Add(-RetentionInterval).UnixMilli(), now.UnixMilli())
	if err != nil {
		return RetentionRun{}, fmt.Errorf("delivery log retention: claim the run: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		next, err := l.nextRetention(ctx)
		return RetentionRun{Next: next}, err
	}
	run, err := l.retain(ctx, o, now)
	if err != nil {
		// Release the claim, with the error, even when ctx ended the run.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, rerr := l.db.ExecContext(rctx, l.q(`UPDATE log_retention_runs SET holder = '', lease_until = NULL, last_error = ?
			WHERE name = ? AND holder = ?`), err.Error(), retentionRow, o.Holder); rerr != nil {
			err = errors.Join(err, fmt.Errorf("release the run: %w", rerr))
		}
		return RetentionRun{Next: now.Add(o.Retry)}, err
	}
	return run, nil
}

// retain prunes under the claim, renewing its lease meanwhile, and records
// the run as the last successful one.
func (l *Log) retain(ctx context.Context, o RetentionOptions, now time.Time) (RetentionRun, error) {
	pctx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.renewLease(pctx, o, lost)
	}()
	began := time.Now()
	p, err := l.Prune(pctx, now, o.Records, o.Content)
	if err == nil && o.Trail != nil {
		if p.DeletedAuditRecords, err = o.Trail.Prune(pctx, now.Add(-o.Records)); err != nil {
			err = fmt.Errorf("audit trail: %w", err)
		}
	}
	took := time.Since(began)
	lost(nil)
	wg.Wait()
	if err != nil {
		if cause := context.Cause(pctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return RetentionRun{}, fmt.Errorf("delivery log retention: %w", err)
	}
	res, err := l.db.ExecContext(ctx, l.q(`UPDATE log_retention_runs SET last_run_at = ?, last_took_ms = ?,
		last_error = '', holder = '', lease_until = NULL WHERE name = ? AND holder = ?`),
		now.UnixMilli(), took.Milliseconds(), retentionRow, o.Holder)
	if err != nil {
		return RetentionRun{}, fmt.Errorf("delivery log retention: record the run: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return RetentionRun{}, errors.New("delivery log retention: the run's lease passed to another runner before it ended")
	}
	return RetentionRun{Ran: true, Pruned: p, Took: took, Next: now.Add(RetentionInterval)}, nil
}

// errLeaseLost ends a run whose lease another runner took.
var errLeaseLost = errors.New("the run's lease passed to another runner")

// renewLease extends the claim every third of the lease until ctx ends;
// if the claim is gone it cancels the run.
func (l *Log) renewLease(ctx context.Context, o RetentionOptions, lost context.CancelCauseFunc) {
	t := time.NewTicker(o.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := l.db.ExecContext(ctx, l.q(`UPDATE log_retention_runs SET lease_until = ? WHERE name = ? AND holder = ?`),
			o.Now().Add(o.Lease).UnixMilli(), retentionRow, o.Holder)
		if err != nil {
			continue // the run's own statements meet the same trouble
		}
		if n, _ := res.RowsAffected(); n == 0 {
			lost(errLeaseLost)
			return
		}
	}
}

// nextRetention is when a run is next due: a day after the last successful
// run, or when the current holder's lease ends, whichever is later.
func (l *Log) nextRetention(ctx context.Context) (time.Time, error) {
	var last, lease sql.NullInt64
	err := l.db.QueryRowContext(ctx, l.q(`SELECT last_run_at, lease_until FROM log_retention_runs WHERE name = ?`),
		retentionRow).Scan(&last, &lease)
	if err != nil {
		return time.Time{}, fmt.Errorf("delivery log retention: read the last run: %w", err)
	}
	next := fromMS(last)
	if !next.IsZero() {
		next = next.Add(RetentionInterval)
	}
	if until := fromMS(lease); until.After(next) {
		next = until
	}
	return next, nil
}

// RetentionStatus is the last run as the database holds it.
type RetentionStatus struct {
	LastRunAt  time.Time // zero: never
	LastTook   time.Duration
	LastError  string // of the last failed run since the last successful one
	Holder     string // the runner running now, or ""
	LeaseUntil time.Time
}

// RetentionStatus reads the last run.
func (l *Log) RetentionStatus(ctx context.Context) (RetentionStatus, error) {
	var s RetentionStatus
	var last, took, lease sql.NullInt64
	err := l.db.QueryRowContext(ctx, l.q(`SELECT last_run_at, last_took_ms, last_error, holder, lease_until
		FROM log_retention_runs WHERE name = ?`), retentionRow).Scan(&last, &took, &s.LastError, &s.Holder, &lease)
	if err != nil {
		return s, fmt.Errorf("delivery log retention: read the last run: %w", err)
	}
	s.LastRunAt, s.LeaseUntil = fromMS(last), fromMS(lease)
	s.LastTook = time.Duration(took.Int64) * time.Millisecond
	return s, nil
}
