// Package logrecorder writes the delivery log (package deliverylog) from
// the worker: the attempt activity records each attempt as it ends, within
// a bounded time, and what the database misses waits in a bounded
// in-process spool until it answers again (this file); the reconciler
// (reconcile.go) writes, from the histories of deliveries closed recently,
// what a worker never wrote (it crashed, or its spool was lost or full).
// Every write is idempotent, so a write repeated by any of them records
// nothing twice.
package logrecorder

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/workflows"
)

// Store is the delivery log's write side (*deliverylog.Log): Write
// writes entries together (one transaction in PostgreSQL) and returns one
// error per entry.
type Store interface {
	Write(ctx context.Context, entries []deliverylog.Entry) []error
}

// Bounds on a write's timeout (--log-write-timeout).
const (
	DefaultWriteTimeout = 2 * time.Second
	MinWriteTimeout     = 100 * time.Millisecond
	MaxWriteTimeout     = 10 * time.Second
)

// DefaultSpoolSize is how many missed writes a worker keeps for retry.
const DefaultSpoolSize = 10000

// Spool retry backoff: from the first to the last, doubling.
const (
	spoolRetryFirst = 500 * time.Millisecond
	spoolRetryLast  = 15 * time.Second
)

// Options configure a Recorder.
type Options struct {
	// WriteTimeout bounds one write (an attempt's, or a spooled one's
	// retry): past it the attempt goes on and the write is spooled.
	WriteTimeout time.Duration
	// SpoolSize bounds the spool; a write missed while it is full is
	// left to the reconciler. 0: DefaultSpoolSize.
	SpoolSize int
	Logger    *slog.Logger
}

// Recorder writes attempts to the delivery log for the attempt activity.
type Recorder struct {
	store   Store
	timeout time.Duration
	limit   int
	logger  *slog.Logger

	mu    sync.Mutex
	spool []write
	kick  chan struct{} // a write was spooled

	group groupCommit
}

// New returns a Recorder writing to store.
func New(store Store, o Options) *Recorder {
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.SpoolSize <= 0 {
		o.SpoolSize = DefaultSpoolSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{store: store, timeout: o.WriteTimeout, limit: o.SpoolSize, logger: o.Logger, kick: make(chan struct{}, 1)}
}

// write is one delivery's record and, unless it only changes the
// delivery's status (parked), one attempt's.
type write struct {
	delivery deliverylog.Delivery
	attempt  *deliverylog.AttemptRecord
}

func (w write) entry() deliverylog.Entry {
	return deliverylog.Entry{Delivery: w.delivery, Attempt: w.attempt}
}

func (w write) apply(ctx context.Context, s Store) error {
	return s.Write(ctx, []deliverylog.Entry{w.entry()})[0]
}

// Record writes attempt rec of run runID (ended at end) to the log, within
// the write timeout whatever ctx (a cancelled attempt is recorded too); a
// write the database misses is spooled. Deliveries of events with no
// account, or attempts scheduled before the workflow passed the log's
// facts (in.Log), are not recorded: the log is per account, and the
// reconciler writes the latter once they close.
func (r *Recorder) Record(ctx context.Context, runID string, in workflows.AttemptInput, rec workflows.Attempt, end time.Time) {
	w, ok := attemptWrite(runID, in, rec, end)
	if !ok {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	if err := r.commit(wctx, w); err != nil {
		r.miss(w, err)
	}
}

// attemptWrite is the write that records rec.
func attemptWrite(runID string, in workflows.AttemptInput, rec workflows.Attempt, end time.Time) (write, bool) {
	if in.Log == nil || in.AccountID == "" || runID == "" {
		return write{}, false
	}
	status, next := in.Log.After(rec, end)
	d := deliverylog.Delivery{
		AccountID: in.AccountID, DeliveryID: in.DeliveryID, EndpointID: in.EndpointID,
		EventID: in.Log.EventID, EventName: in.Log.EventName, MailLogID: mailLogID(in.Log.MailLogID),
		Status: string(status), CreatedAt: in.Log.CreatedAt,
	}
	if rec.Outcome == workflows.OutcomeParked {
		// Nothing was sent: the delivery parks, no attempt is recorded.
		return write{delivery: d}, true
	}
	d.Status = string(workflows.StatusPending)
	return write{delivery: d, attempt: attemptRecord(in.AccountID, in.DeliveryID, runID, in.Attempt, rec, status, next)}, true
}

// attemptRecord is rec as the log holds it.
func attemptRecord(account, deliveryID, runID string, n int, rec workflows.Attempt, status workflows.Status, next time.Time) *deliverylog.AttemptRecord {
	return &deliverylog.AttemptRecord{
		AccountID: account, DeliveryID: deliveryID, RunID: runID, Attempt: n,
		Started: rec.StartedAt, Duration: time.Duration(rec.LatencyMS) * time.Millisecond,
		StatusCode: rec.StatusCode, Outcome: string(rec.Outcome), ErrorClass: ErrorClass(rec),
		Response: []byte(rec.ResponseBody), Status: string(status), NextAttemptAt: next,
	}
}

func mailLogID(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

// miss spools w after the database missed it, or drops it (saying so)
// when it can never be written or the spool is full. The log line holds
// ids only.
func (r *Recorder) miss(w write, err error) {
	attrs := []any{"delivery_id", w.delivery.DeliveryID, "error", err.Error()}
	if w.attempt != nil {
		attrs = append(attrs, "run_id", w.attempt.RunID, "attempt", w.attempt.Attempt)
	}
	if refused(err) {
		r.logger.Error("delivery log: write refused; not retried", attrs...)
		return
	}
	r.mu.Lock()
	full := len(r.spool) >= r.limit
	if !full {
		r.spool = append(r.spool, w)
	}
	n := len(r.spool)
	r.mu.Unlock()
	if full {
		r.logger.Error("delivery log: write missed and the spool is full; the reconciler writes it once the delivery closes", attrs...)
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
	r.logger.Warn("delivery log: write missed; spooled for retry", append(attrs, "spooled", n)...)
}

// Spooled is how many missed writes wait for the database.
func (r *Recorder) Spooled() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spool)
}

// Run retries the spool, backing off while the database does not answer,
// until ctx is done.
func (r *Recorder) Run(ctx context.Context) {
	backoff := spoolRetryFirst
	for {
		if r.Spooled() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if r.flush(ctx) {
			backoff = spoolRetryFirst
		} else {
			backoff = min(2*backoff, spoolRetryLast)
		}
	}
}

// flush writes the spool oldest first until one write fails; it reports
// whether it emptied the spool.
func (r *Recorder) flush(ctx context.Context) bool {
	for ctx.Err() == nil {
		r.mu.Lock()
		if len(r.spool) == 0 {
			r.mu.Unlock()
			return true
		}
		w := r.spool[0]
		r.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, r.timeout)
		err := w.apply(wctx, r.store)
		cancel()
		if err != nil && !refused(err) {
			return false
		}
		r.mu.Lock()
		r.spool = r.spool[1:]
		left := len(r.spool)
		r.mu.Unlock()
		if left == 0 {
			r.logger.Info("delivery log: spooled writes written")
		}
	}
	return false
}

// Drain writes what it can of the spool before ctx is done (on shutdown)
// and logs how many writes it leaves to the reconciler.
func (r *Recorder) Drain(ctx context.Context) {
	if r.Spooled() == 0 {
		return
	}
	r.flush(ctx)
	if n := r.Spooled(); n > 0 {
		r.logger.Warn("delivery log: writes left unwritten at shutdown; the reconciler writes them once their deliveries close", "spooled", n)
	}
}

// ErrorClass names why an attempt failed, without its text (which may name
// an address): "" for a delivered one, a finer class for connection
// errors, else its outcome.
func ErrorClass(a workflows.Attempt) string {
	switch a.Outcome {
	case workflows.OutcomeDelivered:
		return ""
	case workflows.OutcomeConnectionError:
		e := strings.ToLower(a.Error)
		for _, c := range []struct{ class, text string }{
			{"dns", "no such host"}, {"connection_refused", "connection refused"},
			{"connection_reset", "connection reset"}, {"connection_reset", "eof"}, {"connection_reset", "broken pipe"},
			{"tls", "tls:"}, {"tls", "x509:"}, {"tls", "certificate"},
		} {
			if strings.Contains(e, c.text) {
				return c.class
			}
		}
	}
	return string(a.Outcome)
}
