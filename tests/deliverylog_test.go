package tests

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/billable"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/logrecorder"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// logStores are the delivery log's two databases, fresh per test.
var logStores = []struct {
	name  string
	fresh func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "log.db") }},
	{"postgres", func(t *testing.T) string { return testenv.PostgresT(t) }},
}

// openDeliveryLog opens the log at dsn with this run's payload keys.
func openDeliveryLog(t *testing.T, dsn string) *deliverylog.Log {
	t.Helper()
	c, err := codec.Load(codecKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := deliverylog.Open(context.Background(), dsn, deliverylog.Options{Codec: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func logAttempts(t *testing.T, l *deliverylog.Log, account, id string) []deliverylog.Attempt {
	t.Helper()
	as, err := l.Attempts(context.Background(), account, id)
	if err != nil {
		t.Fatalf("attempts of %s: %v", id, err)
	}
	return as
}

func codes(as []deliverylog.Attempt) []int {
	out := make([]int, len(as))
	for i, a := range as {
		out[i] = a.StatusCode
	}
	return out
}

// An endpoint that answers 503 twice then 200 shows three attempts with
// those codes in order, written by the worker as each attempt ended; a
// first-try delivery still costs 2 actions; a resend adds a record for its
// own run and none twice; no payload content lies in the tables.
func TestDeliveryLogRecordsEveryAttempt(t *testing.T) {
	for i, store := range logStores {
		t.Run(store.name, func(t *testing.T) {
			dsn := store.fresh(t)
			flaky := newReceiver(t, failFirst(2, http.StatusServiceUnavailable))
			ok := newReceiver(t, always(http.StatusOK))
			account := "acct-log-" + store.name
			eps := writeEndpoints(t,
				testenv.Endpoint{ID: "log-flaky-" + store.name, URL: flaky.URL, RetrySchedule: []time.Duration{200 * time.Millisecond, 200 * time.Millisecond}, Extra: "    account_id: " + account + "\n"},
				testenv.Endpoint{ID: "log-ok-" + store.name, URL: ok.URL, Extra: "    account_id: " + account + "\n"})
			startWorker(t, eps, "--log-db", dsn)
			mailLogID := 7100 + 100*i
			started := send(t, eps, testenv.FakeEvent(account, event.Delivered, mailLogID, testenv.FakeEventTime))
			if len(started) != 2 {
				t.Fatalf("started %+v", started)
			}
			l := openDeliveryLog(t, dsn)
			for _, s := range started {
				st := result(t, s.WorkflowID)
				// Written as each attempt ended: there when the delivery closes.
				as := logAttempts(t, l, account, s.WorkflowID)
				d, err := l.Get(context.Background(), account, s.WorkflowID)
				if err != nil {
					t.Fatal(err)
				}
				want := []int{200}
				wantActions := billable.Actions{billable.WorkflowStarted: 1, billable.LocalActivityTask: 1}
				if strings.HasPrefix(s.EndpointID, "log-flaky") {
					want = []int{503, 503, 200}
					wantActions = billable.Actions{billable.WorkflowStarted: 1, billable.LocalActivityTask: 1, billable.SearchAttributeUpsert: 1,
						billable.TimerStarted: 2, billable.ActivityScheduled: 2}
				}
				if fmt.Sprint(codes(as)) != fmt.Sprint(want) || d.Status != "delivered" || d.Attempts != len(want) || d.MailLogID != fmt.Sprint(mailLogID) ||
					d.EventName != event.Delivered || len(st.Attempts) != len(want) {
					t.Fatalf("%s: log %+v attempts %v, want codes %v, delivered (history: %d attempts)", s.WorkflowID, d, codes(as), want, len(st.Attempts))
				}
				for n, a := range as {
					if a.Attempt != n+1 || a.RunID != s.RunID || a.Outcome != string(st.Attempts[n].Outcome) {
						t.Errorf("%s attempt %d: %+v, want number %d of run %s, outcome %s", s.WorkflowID, n, a, n+1, s.RunID, st.Attempts[n].Outcome)
					}
				}
				if got := billable.Count(rawHistory(t, s.WorkflowID)); !sameActions(got, wantActions) {
					t.Errorf("%s: actions %v (%d), want %v (%d): the log costs none", s.EndpointID, got, got.Total(), wantActions, wantActions.Total())
				}
			}

			// A resend: one more record, of the new run.
			okID := started[1].WorkflowID
			if strings.HasPrefix(started[0].EndpointID, "log-ok") {
				okID = started[0].WorkflowID
			}
			var st workflows.DeliveryState
			starterJSON(t, &st, "resend", okID)
			testenv.Eventually(t, 30*time.Second, "the resend to arrive", func() bool { return len(ok.Requests()) == 2 })
			final := result(t, okID)
			as := logAttempts(t, l, account, okID)
			if len(as) != 2 || as[0].RunID == as[1].RunID || as[1].Attempt != 2 || len(final.Attempts) != 1 {
				t.Fatalf("after a resend: %+v; want attempt 1 of the first run and attempt 2 of the resend's", as)
			}
			if err := rawRowsHold(dsn, "Fake subject", "sender.example.com", "recipient.example.com", "X-Custom-Header"); err != nil {
				t.Fatal(err)
			}
			// The worker takes its turn at the daily retention: on a log
			// that never ran it, at once.
			testenv.Eventually(t, 30*time.Second, "the worker's retention run", func() bool {
				st, err := l.RetentionStatus(context.Background())
				return err == nil && !st.LastRunAt.IsZero() && st.LastError == ""
			})
		})
	}
}

// rawRowsHold fails if any raw value of the log's tables holds one of the
// strings (payload content).
func rawRowsHold(dsn string, needles ...string) error {
	driver, conn := "pgx", dsn
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, conn = "sqlite", "file:"+path
	}
	db, err := sql.Open(driver, conn)
	if err != nil {
		return err
	}
	defer db.Close()
	rows := 0
	for _, table := range []string{"log_deliveries", "log_attempts"} {
		r, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		cols, _ := r.Columns()
		for r.Next() {
			rows++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				r.Close()
				return err
			}
			for i, v := range vals {
				s := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					s = string(b)
				}
				for _, n := range needles {
					if strings.Contains(s, n) {
						r.Close()
						return fmt.Errorf("%s.%s holds %q in the clear", table, cols[i], n)
					}
				}
			}
		}
		r.Close()
	}
	if rows == 0 {
		return fmt.Errorf("the log's tables hold no rows to scan")
	}
	return nil
}

// With the log's PostgreSQL down, deliveries go on, each delayed at most
// by the write bound; the records the database missed are written once it
// is back.
func TestDeliveryLogDatabaseDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{LogDir: t.TempDir()})
	if err != nil {
		t.Skipf("a PostgreSQL of the test's own: %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	dsn := pg.URL()
	ok := newReceiver(t, always(http.StatusOK))
	account := "acct-log-down"
	eps := writeEndpoints(t, testenv.Endpoint{ID: "log-down", URL: ok.URL, Extra: "    account_id: " + account + "\n"})
	const bound = time.Second
	w := startWorker(t, eps, "--log-db", dsn, "--log-write-timeout", bound.String())
	l := openDeliveryLog(t, dsn)
	l.Close()

	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		s := send(t, eps, testenv.FakeEvent(account, event.Delivered, 7300+i, testenv.FakeEventTime))[0]
		ids = append(ids, s.WorkflowID)
		if st := result(t, s.WorkflowID); st.Status != workflows.StatusDelivered {
			t.Fatalf("%s with the log down: %s", s.WorkflowID, st.Status)
		}
		desc, err := temporal.DescribeWorkflowExecution(ctx, s.WorkflowID, "")
		if err != nil {
			t.Fatal(err)
		}
		info := desc.GetWorkflowExecutionInfo()
		if took := info.GetCloseTime().AsTime().Sub(info.GetStartTime().AsTime()); took > bound+3*time.Second {
			t.Errorf("%s took %s from start to close with the log down; the write bound is %s", s.WorkflowID, took, bound)
		}
	}
	if !strings.Contains(w.Log(), "delivery log: write missed; spooled for retry") {
		t.Fatalf("the worker logged no missed write:\n%s", w.Log())
	}
	if strings.Contains(w.Log(), "Fake subject") || strings.Contains(w.Log(), "example.com") {
		t.Fatal("the worker's log holds payload content")
	}

	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	l = openDeliveryLog(t, dsn)
	testenv.Eventually(t, 60*time.Second, "the spooled records written", func() bool {
		for _, id := range ids {
			as, err := l.Attempts(ctx, account, id)
			if err != nil || len(as) != 1 {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if d, err := l.Get(ctx, account, id); err != nil || d.Status != "delivered" || d.Attempts != 1 {
			t.Errorf("%s once the database returned: %+v, %v; want delivered, 1 attempt", id, d, err)
		}
	}
}

// A worker without the log delivers; the reconciler then writes, from
// history, every attempt and the final status, once however often it runs.
func TestReconcilerWritesWhatNoWorkerWrote(t *testing.T) {
	for i, store := range logStores {
		t.Run(store.name, func(t *testing.T) {
			dsn := store.fresh(t)
			flaky := newReceiver(t, failFirst(1, http.StatusServiceUnavailable))
			gone := newReceiver(t, always(http.StatusGone))
			account := "acct-reconcile-" + store.name
			eps := writeEndpoints(t,
				testenv.Endpoint{ID: "rec-flaky-" + store.name, URL: flaky.URL, RetrySchedule: []time.Duration{200 * time.Millisecond}, Extra: "    account_id: " + account + "\n"},
				testenv.Endpoint{ID: "rec-gone-" + store.name, URL: gone.URL, Extra: "    account_id: " + account + "\n"})
			startWorker(t, eps) // no log
			started := send(t, eps, testenv.FakeEvent(account, event.Delivered, 7400+100*i, testenv.FakeEventTime))
			want := map[string]struct {
				status string
				codes  []int
			}{}
			for _, s := range started {
				result(t, s.WorkflowID)
				w := want[s.WorkflowID]
				w.status, w.codes = "failed", []int{410}
				if strings.HasPrefix(s.EndpointID, "rec-flaky") {
					w.status, w.codes = "delivered", []int{503, 200}
				}
				want[s.WorkflowID] = w
			}
			l := openDeliveryLog(t, dsn)
			since := time.Now().Add(-10 * time.Minute)
			r := &logrecorder.Reconciler{Client: temporal, Namespace: namespace, TaskQueue: taskQueue(t), Log: l}
			ctx := context.Background()
			testenv.Eventually(t, 30*time.Second, "visibility to list both closed deliveries and the reconciler to write them", func() bool {
				if _, err := r.Pass(ctx, since); err != nil {
					t.Logf("pass: %v", err)
					return false
				}
				for id := range want {
					if _, err := l.Get(ctx, account, id); err != nil {
						return false
					}
				}
				return true
			})
			// Again, by another process that did not see the first pass.
			if _, err := (&logrecorder.Reconciler{Client: temporal, Namespace: namespace, TaskQueue: taskQueue(t), Log: l}).Pass(ctx, since); err != nil {
				t.Fatal(err)
			}
			for id, w := range want {
				d, err := l.Get(ctx, account, id)
				as := logAttempts(t, l, account, id)
				if err != nil || d.Status != w.status || d.Attempts != len(w.codes) || fmt.Sprint(codes(as)) != fmt.Sprint(w.codes) || !d.NextAttemptAt.IsZero() {
					t.Errorf("%s reconciled: %+v attempts %v, %v; want %s with codes %v", id, d, codes(as), err, w.status, w.codes)
				}
			}
		})
	}
}
