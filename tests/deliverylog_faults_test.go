package tests

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// 1,000 deliveries over three workers writing the log to a PostgreSQL of
// the test's own; once 200 POSTs are answered one worker is SIGKILLed, and
// once 400 are, the log's PostgreSQL is killed and started again. Within
// 60 s after the last delivery the log holds exactly one record per attempt
// each delivery's history holds (0 missing, 0 extra), and one per POST the
// receiver saw for every delivery the kill did not cut; where it cut one,
// the difference is what the kill explains (a local first attempt run
// again under its number after its workflow task was lost).
func TestDeliveryLogFaults(t *testing.T) {
	const total, account = 1000, "acct-log-faults"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{LogDir: t.TempDir()})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a PostgreSQL of the test's own: %v", err)
		}
		t.Skipf("a PostgreSQL of the test's own (initdb and pg_ctl of PostgreSQL 15) did not start: %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	var answered atomic.Int64
	rc := newReceiver(t, func(int, http.ResponseWriter) int {
		time.Sleep(50 * time.Millisecond) // the receiver's own latency, so attempts are in flight
		answered.Add(1)
		return http.StatusOK
	})
	eps := writeEndpoints(t, testenv.Endpoint{ID: "logfault", URL: rc.URL, Timeout: 5 * time.Second,
		RetrySchedule: []time.Duration{time.Second, time.Second, time.Second, 2 * time.Second, 2 * time.Second, 5 * time.Second},
		Extra:         "    account_id: " + account + "\n"})
	var workers [3]*testenv.Process
	for i := range workers {
		workers[i] = startWorker(t, eps, "--log-db", pg.URL(), "--log-write-timeout", "1s", "--log-reconcile-every", "5s")
	}
	bodies := make([]string, total)
	for i := range bodies {
		bodies[i] = testenv.FakeEvent(account, event.Names[i%len(event.Names)], 80_000+i, testenv.FakeEventTime.Add(time.Duration(i)*time.Millisecond))
	}
	published := make(chan error, 1)
	var runs map[string]string
	go func() {
		var err error
		runs, err = publishAll(localPublisher(t, temporal, eps), bodies, 20)
		published <- err
	}()

	testenv.Eventually(t, 3*time.Minute, "200 POSTs answered", func() bool { return answered.Load() >= 200 })
	victimPID := strconv.Itoa(workers[0].PID()) + "@"
	if err := workers[0].Kill(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Minute, "400 POSTs answered", func() bool { return answered.Load() >= 400 })
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	delivered := fmt.Sprintf("TaskQueue = %q AND %s", taskQueue(t), statusQuery(t, workflows.StatusDelivered))
	testenv.Eventually(t, 5*time.Minute, fmt.Sprintf("%d deliveries delivered", total), func() bool {
		n, err := testenv.CountWorkflows(ctx, temporal, delivered)
		return err == nil && n == total
	})
	lastDelivery := time.Now()
	states := results(t, temporal, runs)
	reqs := byWebhookID(t, runs, rc)

	l := openDeliveryLog(t, pg.URL())
	missing := func() (missing, extra int, first string) {
		for id, st := range states {
			as, err := l.Attempts(ctx, account, id)
			if err != nil && !strings.Contains(err.Error(), "not found") {
				return total, 0, err.Error()
			}
			switch {
			case len(as) < len(st.Attempts):
				missing += len(st.Attempts) - len(as)
			case len(as) > len(st.Attempts):
				extra += len(as) - len(st.Attempts)
			default:
				continue
			}
			if first == "" {
				first = fmt.Sprintf("%s: %d records, %d attempts in history", id, len(as), len(st.Attempts))
			}
		}
		return missing, extra, first
	}
	testenv.Eventually(t, 60*time.Second, "one record per attempt in the log", func() bool {
		m, e, _ := missing()
		return m == 0 && e == 0
	})
	t.Logf("the log complete %s after the last delivery", time.Since(lastDelivery).Round(time.Second))

	var posts, records, cut, explained int
	for id, st := range states {
		as, _ := l.Attempts(ctx, account, id)
		posts += len(reqs[id])
		records += len(as)
		lostLocal, _, err := lostLocalAttempts(temporal, id, runs[id], victimPID)
		if err != nil {
			t.Fatal(err)
		}
		workerErrors := 0
		for _, a := range st.Attempts {
			if a.Outcome == workflows.OutcomeWorkerError {
				workerErrors++
			}
		}
		if lostLocal == 0 && workerErrors == 0 {
			if len(as) != len(reqs[id]) {
				t.Errorf("%s, untouched by the kill: %d records, %d POSTs", id, len(as), len(reqs[id]))
			}
			continue
		}
		cut++
		// A local attempt run again under its number: one record, two POSTs;
		// an ordinary attempt lost with its worker: a worker_error record,
		// whether or not its POST reached the receiver.
		if len(reqs[id]) > len(as)+lostLocal || len(as) > len(reqs[id])+workerErrors {
			t.Errorf("%s, cut by the kill: %d records, %d POSTs, %d local attempts lost, %d worker errors", id, len(as), len(reqs[id]), lostLocal, workerErrors)
		} else {
			explained++
		}
	}
	var missed, reconciled, leads int
	for _, w := range workers {
		missed += strings.Count(w.Log(), "delivery log: write missed")
		reconciled += strings.Count(w.Log(), "delivery log: reconciled from history")
		leads += strings.Count(w.Log(), "delivery log: this worker reconciles the log from history")
	}
	if leads == 0 {
		t.Error("no worker took the reconciler's lease")
	}
	if missed == 0 {
		t.Error("no worker missed a write: the restart of the log's PostgreSQL landed on none")
	}
	t.Logf("%d deliveries, %d POSTs, %d records; %d deliveries cut by the kill, %d of them explained; %d writes missed and spooled; the reconciler's lease taken %d times, %d passes wrote records",
		total, posts, records, cut, explained, missed, leads, reconciled)
}
