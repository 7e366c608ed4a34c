package deliverylog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/internal/auditstore"
)

// tryAll has every log try retention at now, from several goroutines
// each, as a fleet of workers waking at one moment would; it returns how
// many ran and the Next each reported.
func tryAll(t *testing.T, now time.Time, logs ...*Log) (ran int, next []time.Time) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, l := range logs {
		for j := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run, err := l.TryRetention(context.Background(), RetentionOptions{
					Now: func() time.Time { return now }, Holder: fmt.Sprintf("runner-%d-%d", i, j)})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("runner %d-%d: %v", i, j, err)
					return
				}
				if run.Ran {
					ran++
				}
				next = append(next, run.Next)
			}()
		}
	}
	wg.Wait()
	return ran, next
}

// Eight runners on two connections to one database, trying at the same
// moment: one runs and prunes; half a day later none does; a day later one
// does again. Each of the others says when the next run is due.
func TestRetentionRunsOncePerDay(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		a, b := openLog(t, dsn), openLog(t, dsn)
		old := delivery("acct_a", "ep_1", 1, t0.Add(-DefaultRetention-48*time.Hour))
		upsert(t, a, old)
		ran, next := tryAll(t, t0, a, b)
		if ran != 1 {
			t.Fatalf("at t0 %d runners ran, want 1", ran)
		}
		if _, err := a.Get(context.Background(), "acct_a", old.DeliveryID); err != ErrNotFound {
			t.Errorf("a delivery past retention after the run: %v, want not found", err)
		}
		// Runners that tried while the run went on are told its lease's end.
		for _, n := range next {
			if !n.Equal(t0.Add(RetentionInterval)) && !n.Equal(t0.Add(DefaultRetentionLease)) {
				t.Errorf("next run due %s, want %s (or the lease's end while it ran)", n, t0.Add(RetentionInterval))
			}
		}
		if _, next := tryAll(t, t0.Add(DefaultRetentionLease), a, b); !next[0].Equal(t0.Add(RetentionInterval)) {
			t.Errorf("after the run, next due %s, want %s", next[0], t0.Add(RetentionInterval))
		}
		if ran, _ := tryAll(t, t0.Add(12*time.Hour), a, b); ran != 0 {
			t.Errorf("half a day later %d runners ran, want 0", ran)
		}
		if ran, _ := tryAll(t, t0.Add(RetentionInterval), a, b); ran != 1 {
			t.Errorf("a day later %d runners ran, want 1", ran)
		}
		s, err := b.RetentionStatus(context.Background())
		if err != nil || !s.LastRunAt.Equal(t0.Add(RetentionInterval)) || s.Holder != "" || s.LastError != "" {
			t.Errorf("status after the second run: %+v %v", s, err)
		}
	})
}

// The schedule lives in the database: a runner started after a restart
// does not run again within the day, and runs once the day has passed. A
// runner that crashed holding the run blocks others until its lease ends.
func TestRetentionResumesAfterRestart(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		at := func(now time.Time) RetentionOptions { return RetentionOptions{Now: func() time.Time { return now }} }
		first := openLog(t, dsn)
		if run, err := first.TryRetention(ctx, at(t0)); err != nil || !run.Ran {
			t.Fatalf("first run: %+v %v", run, err)
		}
		first.Close()

		restarted := openLog(t, dsn)
		run, err := restarted.TryRetention(ctx, at(t0.Add(time.Hour)))
		if err != nil || run.Ran || !run.Next.Equal(t0.Add(RetentionInterval)) {
			t.Errorf("an hour after the run, restarted: %+v %v, want no run, next at %s", run, err, t0.Add(RetentionInterval))
		}
		day2 := t0.Add(RetentionInterval + time.Minute)
		if run, err := restarted.TryRetention(ctx, at(day2)); err != nil || !run.Ran {
			t.Errorf("a day after the run, restarted: %+v %v, want a run", run, err)
		}

		// A runner claims day 3's run and dies without finishing it.
		day3 := day2.Add(RetentionInterval)
		leaseEnd := day3.Add(DefaultRetentionLease)
		if _, err := restarted.db.Exec(restarted.q(`UPDATE log_retention_runs SET holder = 'crashed', lease_until = ?`),
			leaseEnd.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		run, err = restarted.TryRetention(ctx, at(day3.Add(time.Minute)))
		if err != nil || run.Ran || !run.Next.Equal(leaseEnd) {
			t.Errorf("while a crashed runner's lease holds: %+v %v, want no run, next at %s", run, err, leaseEnd)
		}
		if run, err := restarted.TryRetention(ctx, at(leaseEnd.Add(time.Second))); err != nil || !run.Ran {
			t.Errorf("after the crashed runner's lease: %+v %v, want a run", run, err)
		}
	})
}

// A run that fails releases the run with its error and keeps the last
// successful time, so the next try (by any runner) runs again.
func TestRetentionFailedRunIsReleased(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLog(t, dsn)
		opts := RetentionOptions{Now: func() time.Time { return t0 }, Holder: "failing"}
		exec(t, l, `ALTER TABLE log_deliveries RENAME TO log_deliveries_away`)
		run, err := l.TryRetention(ctx, opts)
		if err == nil || run.Ran || !strings.Contains(err.Error(), "prune deliveries") {
			t.Fatalf("retention without its table: %+v %v, want a prune error", run, err)
		}
		s, err := l.RetentionStatus(ctx)
		if err != nil || !s.LastRunAt.IsZero() || s.Holder != "" || !strings.Contains(s.LastError, "prune deliveries") {
			t.Errorf("status after the failed run: %+v %v", s, err)
		}
		exec(t, l, `ALTER TABLE log_deliveries_away RENAME TO log_deliveries`)
		if run, err := l.TryRetention(ctx, opts); err != nil || !run.Ran {
			t.Errorf("the retry: %+v %v, want a run", run, err)
		}
	})
}

func exec(t *testing.T, l *Log, query string) {
	t.Helper()
	if _, err := l.db.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// syncBuffer is a log destination the runner writes to while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), `"msg":"`+msg+`"`)
}

// waitFor polls cond until it holds, failing after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The runner's loop: a database it cannot use is logged and retried, not
// the end of the loop (nor of the worker that hosts it); once the database
// is back it runs at once, and it stops when told.
func TestRunRetentionLogsErrorsAndKeepsGoing(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		l := openLog(t, dsn)
		exec(t, l, `ALTER TABLE log_retention_runs RENAME TO log_retention_runs_away`)
		var out syncBuffer
		stop := StartRetention(context.Background(), l, RetentionOptions{
			Logger: slog.New(slog.NewJSONHandler(&out, nil)), Retry: 20 * time.Millisecond})
		waitFor(t, "two failures logged", func() bool { return out.count("delivery log retention failed") >= 2 })
		exec(t, l, `ALTER TABLE log_retention_runs_away RENAME TO log_retention_runs`)
		waitFor(t, "a run logged", func() bool { return out.count("delivery log retention ran") == 1 })
		stop()
		if n := out.count("delivery log retention ran"); n != 1 {
			t.Errorf("%d runs logged, want 1 (the next is a day away)", n)
		}
		if s, err := l.RetentionStatus(context.Background()); err != nil || s.LastRunAt.IsZero() || s.Holder != "" {
			t.Errorf("status after the loop stopped: %+v %v", s, err)
		}
		t.Logf("log:\n%s", out.b.String())
	})
}

// The audit trail, in the log's database, is kept as long as the log's
// records: the daily run prunes both with one cutoff, and counts what it
// deleted. A trail that fails fails the run, which is released for a retry.
func TestRetentionPrunesTheAuditTrail(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLog(t, dsn)
		records := 30 * 24 * time.Hour
		at := t0.Add(-records - time.Hour)
		trail, err := auditstore.Open(ctx, dsn, auditstore.Options{Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { trail.Close() })
		for _, when := range []time.Time{t0.Add(-records - time.Hour), t0.Add(-records + time.Hour)} {
			at = when
			if _, err := trail.Record(ctx, audit.Record{AccountID: "acct_a", Credential: "admin:tok_1", Action: audit.EndpointUpdate,
				Target: "ep_1", Changes: []string{"url"}}); err != nil {
				t.Fatal(err)
			}
		}
		run, err := l.TryRetention(ctx, RetentionOptions{Now: func() time.Time { return t0 }, Records: records, Trail: trail})
		if err != nil || !run.Ran || run.Pruned.DeletedAuditRecords != 1 {
			t.Fatalf("run: %+v %v; want 1 audit record deleted", run, err)
		}
		page, err := trail.List(ctx, audit.Query{})
		if err != nil || len(page.Records) != 1 || !page.Records[0].At.Equal(t0.Add(-records+time.Hour)) {
			t.Fatalf("after the run the trail holds %+v (%v); want only the record within retention", page.Records, err)
		}

		failing := failingTrail{errors.New("audit trail unreachable")}
		run, err = l.TryRetention(ctx, RetentionOptions{Now: func() time.Time { return t0.Add(RetentionInterval) }, Records: records, Trail: failing})
		if err == nil || !strings.Contains(err.Error(), "audit trail unreachable") || run.Ran {
			t.Fatalf("a failing trail: %+v %v; want the run failed", run, err)
		}
		if s, err := l.RetentionStatus(ctx); err != nil || s.Holder != "" || !strings.Contains(s.LastError, "audit trail") || !s.LastRunAt.Equal(t0) {
			t.Errorf("after the failed run: %+v %v; want it released, its error kept, the last run t0", s, err)
		}
	})
}

type failingTrail struct{ err error }

func (f failingTrail) Prune(context.Context, time.Time) (int64, error) { return 0, f.err }
