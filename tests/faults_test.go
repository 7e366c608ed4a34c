package tests

// Faults in the Temporal server (issue 15): with 1,000 deliveries in flight
// over three worker processes, one part of a Temporal cluster on PostgreSQL
// goes down and comes back: the history process (SIGKILL), the matching
// process (SIGKILL), the frontend (SIGKILL, while `starter serve` takes the
// events), and PostgreSQL itself (SIGKILL to the server and its backends, on
// an instance of the test's own). Each time no delivery is lost: every
// webhook-id reaches the receiver at least once and every delivery completes;
// duplicates (a POST answered 2xx again for a webhook-id it had already
// accepted) are counted and reported, as are the times to recover.
//
// They run in postgres mode only (make test-cluster), where the suite's
// server is such a cluster; elsewhere they skip, saying so.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/temporalcluster"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

const (
	faultDeliveries = 1000
	faultWorkers    = 3
	faultPublishers = 20
	// faultPublishEvery paces the events (25/s, 40 s for all), so the fault
	// also finds submissions coming in.
	faultPublishEvery = 40 * time.Millisecond
	// faultMark deliveries are accepted by the receiver before the fault,
	// so it lands mid-run: submissions still coming, attempts in flight,
	// timers waiting.
	faultMark = 200
	// faultOutage is how long the part stays down: the fault's length, not a
	// wait for anything.
	faultOutage = 5 * time.Second
	// faultEndpoint is the one endpoint every event goes to.
	faultEndpoint = "fault"
)

// faultSchedule retries within seconds, so an attempt the fault lost is made
// again soon, and holds out for over a minute of failures.
var faultSchedule = []time.Duration{
	time.Second, time.Second, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second,
	5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second,
}

// faultCluster is the suite's cluster, or skips t outside postgres mode.
func faultCluster(t *testing.T) *temporalcluster.Cluster {
	t.Helper()
	c, ok := server.(*temporalcluster.Cluster)
	if serverMode != testenv.ModePostgres || !ok {
		t.Skipf("a fault test of the Temporal server: it runs only on a Temporal cluster on PostgreSQL (%s=%s); `make test-cluster` runs it, and CI runs that (this run: %s mode)",
			testenv.EnvServer, testenv.ModePostgres, serverMode)
	}
	return c
}

// faultRun is one fault test's deliveries: the events, their webhook-ids,
// the receiver that counts them, the workers.
type faultRun struct {
	t         *testing.T
	h         testenv.Hookrelay
	temporal  client.Client // decrypts; on h's server
	rc        *testenv.Receiver
	endpoints string
	bodies    []string
	ids       []string // the webhook-id of each body's delivery
	start     time.Time

	// set by publishThrough
	downAt, backAt         time.Time
	retries, startedBefore int
}

// waitsFirst picks one delivery in four, by webhook-id, whose first attempt
// is answered 503: it then waits on a durable timer, so the fault finds
// timers set as well as attempts in flight.
func waitsFirst(id string) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%4 == 0
}

// newFaultRun starts the receiver and three workers through h (the test's
// server and namespace) and makes 1,000 events, base numbering them.
func newFaultRun(t *testing.T, h testenv.Hookrelay, c client.Client, base int) *faultRun {
	t.Helper()
	r := &faultRun{t: t, h: h, temporal: c}
	r.rc = testenv.NewReceiverT(t, testenv.ReceiverOptions{Secret: testSecret, Answer: func(id string, n int, _ http.ResponseWriter) int {
		if n == 1 && waitsFirst(id) {
			return http.StatusServiceUnavailable // no Retry-After: the schedule's next delay
		}
		return http.StatusOK
	}})
	// The circuit is not under test: a fault's failed attempts must not
	// park deliveries behind it.
	r.endpoints = writeEndpoints(t, testenv.Endpoint{ID: faultEndpoint, URL: r.rc.URL + "/hooks", Timeout: 5 * time.Second,
		RetrySchedule: faultSchedule, Extra: "    circuit:\n      open_after: 1000\n"})
	for i := range faultWorkers {
		testenv.StartT(t, h.Worker(fmt.Sprintf("worker-%d", i+1), "--endpoints", r.endpoints, "--allow-cidr", "127.0.0.0/8"))
	}
	for i := range faultDeliveries {
		body := sampleEvent(event.Names[i%len(event.Names)], base+i)
		ev, err := event.Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		r.bodies = append(r.bodies, body)
		r.ids = append(r.ids, workflows.DeliveryID(faultEndpoint, ev.ID))
	}
	return r
}

// accepted is how many of the run's deliveries the receiver has accepted.
func (r *faultRun) accepted() int {
	_, n := r.rc.Accepted(r.ids)
	return n
}

// publish publishes every event through the deliveries library from
// faultPublishers goroutines, each event until it is accepted, retrying
// after a second while Temporal is unavailable, as a producer would. It
// returns how many submissions failed so, and how many deliveries a retried
// submission found started already (by a try whose answer was lost).
func (r *faultRun) publish() (retries, startedBefore int, err error) {
	dc, err := testenv.LocalPublisher(r.temporal, r.endpoints, r.h.TaskQueue, dataConverter)
	if err != nil {
		return 0, 0, err
	}
	var retried, before atomic.Int64
	errs := testenv.Paced(len(r.bodies), faultPublishers, faultPublishEvery, func(i int) error {
		deadline := time.Now().Add(3 * time.Minute)
		for tries := 0; ; tries++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			started, err := dc.PublishJSON(ctx, []byte(r.bodies[i]))
			cancel()
			switch {
			case err == nil && len(started) == 1 && started[0].DeliveryID == r.ids[i]:
				if started[0].Duplicate {
					if tries == 0 {
						return fmt.Errorf("event %d: a duplicate at its first submission", i)
					}
					before.Add(1)
				}
				return nil
			case err == nil:
				return fmt.Errorf("event %d: started %+v, want %s", i, started, r.ids[i])
			case !errors.Is(err, deliveries.ErrUnavailable):
				return fmt.Errorf("event %d: %w", i, err)
			case time.Now().After(deadline):
				return fmt.Errorf("event %d: still unavailable after 3m: %w", i, err)
			}
			retried.Add(1)
			time.Sleep(time.Second) // a producer's backoff
		}
	})
	if len(errs) > 0 {
		return int(retried.Load()), int(before.Load()), fmt.Errorf("%d events not submitted, first: %w", len(errs), errs[0])
	}
	return int(retried.Load()), int(before.Load()), nil
}

// publication is the events being published, in a goroutine of its own.
type publication struct {
	done chan struct{}
	err  error // once done is closed
}

func publishInBackground(f func() error) *publication {
	s := &publication{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = f()
	}()
	return s
}

// wait waits until every event was published.
func (s *publication) wait() error {
	<-s.done
	return s.err
}

// untilMark waits until faultMark deliveries were accepted, failing t if
// submitting fails first.
func (r *faultRun) untilMark(s *publication) {
	r.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(3 * time.Minute)
	done := s.done
	for r.accepted() < faultMark {
		select {
		case <-done:
			if s.err != nil {
				r.t.Fatal(s.err)
			}
			done = nil // all in: keep waiting for the mark
		case <-giveUp:
			r.t.Fatalf("after 3m, %d deliveries accepted, want %d before the fault", r.accepted(), faultMark)
		case <-tick.C:
		}
	}
}

// outage takes a part down with kill, keeps it down for faultOutage, and
// brings it back with restart, which returns once it serves. It returns
// when it went down and when it was back.
func outage(t *testing.T, what string, kill func() error, restart func(context.Context) error) (downAt, backAt time.Time) {
	t.Helper()
	downAt = time.Now()
	if err := kill(); err != nil {
		t.Fatalf("kill %s: %v", what, err)
	}
	<-time.After(faultOutage)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := restart(ctx); err != nil {
		t.Fatalf("restart %s: %v", what, err)
	}
	return downAt, time.Now()
}

// verify waits until every delivery was accepted and Temporal lists each
// one, and only one, completed; then it reports the figures.
func (r *faultRun) verify(what string, downAt, backAt time.Time, extra string) {
	t := r.t
	t.Helper()
	acceptedAtFault := 0
	if err := testenv.Wait(context.Background(), 5*time.Minute, "every delivery accepted", func() error {
		if n := r.accepted(); n < len(r.ids) {
			return fmt.Errorf("%d of %d accepted", n, len(r.ids))
		}
		return nil
	}); err != nil {
		t.Fatalf("%v; not accepted: %s", err, r.missing())
	}
	allAt := time.Now()
	if err := r.rc.Verified(); err != nil {
		t.Fatal(err)
	}
	times, _ := r.rc.Accepted(r.ids)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var firstAfter time.Time
	for _, at := range times {
		if at.Before(downAt) {
			acceptedAtFault++
		}
		if firstAfter.IsZero() && at.After(backAt) {
			firstAfter = at
		}
	}
	// The longest stretch with no delivery newly accepted, from the fault on.
	var stall time.Duration
	prev := downAt
	for _, at := range times[acceptedAtFault:] {
		stall, prev = max(stall, at.Sub(prev)), at
	}

	deliveriesOnQueue := fmt.Sprintf("%s AND TaskQueue = %q", workflows.DeliveriesQuery, r.h.TaskQueue)
	if err := testenv.Wait(context.Background(), 2*time.Minute, "every delivery listed completed", func() error {
		for _, q := range []string{deliveriesOnQueue, deliveriesOnQueue + " AND ExecutionStatus = 'Completed'"} {
			n, err := testenv.CountWorkflows(context.Background(), r.temporal, q)
			if err != nil {
				return err
			}
			if n != int64(len(r.ids)) {
				return fmt.Errorf("%d listed by %s", n, q)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	s := r.rc.Stats()
	t.Logf("%s: %d deliveries over %d workers, %d accepted before the fault; down %s; the first delivery accepted after it was back came %s after the fault, the longest stretch without a new delivery was %s, all delivered %s after the fault (%s after the start)",
		what, len(r.ids), faultWorkers, acceptedAtFault, backAt.Sub(downAt).Round(time.Millisecond),
		firstAfter.Sub(downAt).Round(time.Millisecond), stall.Round(time.Millisecond), allAt.Sub(downAt).Round(time.Millisecond), allAt.Sub(r.start).Round(time.Millisecond))
	t.Logf("%s: 0 lost; %d duplicates (a webhook-id accepted again); %d POSTs in all, by status %v (the 503s by design: the first attempt of one delivery in four)%s",
		what, s.Duplicates, s.Requests, s.ByStatus, extra)
}

// missing names up to five deliveries not yet accepted and where each stands.
func (r *faultRun) missing() string {
	times, _ := r.rc.Accepted(r.ids)
	var out []string
	for i, at := range times {
		if !at.IsZero() {
			continue
		}
		if len(out) == 5 {
			out = append(out, "...")
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, err := r.temporal.DescribeWorkflowExecution(ctx, r.ids[i], "")
		cancel()
		state := fmt.Sprint(err)
		if err == nil {
			state = fmt.Sprintf("%s, %d pending activities, %d requests seen", d.GetWorkflowExecutionInfo().GetStatus(), len(d.GetPendingActivities()), r.rc.Count(r.ids[i]))
		}
		out = append(out, r.ids[i]+" ("+state+")")
	}
	return strings.Join(out, "; ")
}

// killRestart runs the fault of a service of the suite's cluster, with the
// events submitted through the deliveries library.
func killRestart(t *testing.T, service temporalcluster.Service, base int) {
	c := faultCluster(t)
	r := newFaultRun(t, hookrelay(t), temporal, base)
	r.publishThrough(string(service), func() error { return c.Kill(service) }, func(ctx context.Context) error { return c.Restart(ctx, service) })
	r.verifyNone(string(service) + " killed")
}

// publishThrough publishes the run's events through the deliveries library
// and, once the mark is reached, takes what down and brings it back.
func (r *faultRun) publishThrough(what string, down func() error, up func(context.Context) error) {
	r.start = time.Now()
	published := publishInBackground(func() (err error) {
		r.retries, r.startedBefore, err = r.publish()
		return err
	})
	r.untilMark(published)
	r.downAt, r.backAt = outage(r.t, what, down, up)
	if err := published.wait(); err != nil {
		r.t.Fatal(err)
	}
}

// verifyNone verifies a run published by publishThrough.
func (r *faultRun) verifyNone(fault string) {
	r.verify(fault, r.downAt, r.backAt,
		fmt.Sprintf("; submissions retried %d times while Temporal was unavailable, %d of them finding their delivery started already", r.retries, r.startedBefore))
}

// The history process is SIGKILLed with deliveries in flight and restarted:
// its shards, timers and tasks come back from PostgreSQL.
func TestFaultHistoryKilled(t *testing.T) { killRestart(t, temporalcluster.History, 110_000) }

// The matching process is SIGKILLed with deliveries in flight and restarted:
// task queues are reloaded and tasks that were only in its memory are
// dispatched again from history.
func TestFaultMatchingKilled(t *testing.T) { killRestart(t, temporalcluster.Matching, 120_000) }

// The frontend is SIGKILLed and restarted while `starter serve` takes the
// events, paced, from 20 clients: serve answers only 202 or 503 with Retry-After;
// clients retry a 503 after it; every event ends up accepted, and every
// event accepted is delivered.
func TestFaultFrontendRestartedUnderServe(t *testing.T) {
	c := faultCluster(t)
	h := hookrelay(t)
	r := newFaultRun(t, h, temporal, 130_000)
	srv := startServe(t, h, r.endpoints, "--request-timeout", "2s")
	r.start = time.Now()

	var (
		mu        sync.Mutex
		refused   int       // 503s
		firstBack time.Time // the first 202 after the frontend was back
		backAt    time.Time
		dupes     int // deliveries a 202 called duplicate: started by a request answered 503
	)
	published := publishInBackground(func() error {
		errs := testenv.Paced(len(r.bodies), faultPublishers, faultPublishEvery, func(i int) error {
			a, n, err := postUntilAccepted(srv, r.bodies[i], 3*time.Minute)
			mu.Lock()
			defer mu.Unlock()
			refused += n
			if err != nil {
				return fmt.Errorf("event %d: %w", i, err) // an answer other than 202 or 503, or none
			}
			if len(a.Deliveries) != 1 || a.Deliveries[0].DeliveryID != r.ids[i] {
				return fmt.Errorf("event %d: accepted %+v, want delivery %s", i, a, r.ids[i])
			}
			if a.Deliveries[0].Duplicate {
				if n == 0 {
					return fmt.Errorf("event %d: a duplicate at its first submission", i)
				}
				dupes++
			}
			if !backAt.IsZero() && firstBack.IsZero() {
				firstBack = time.Now()
			}
			return nil
		})
		if len(errs) > 0 {
			return fmt.Errorf("%d events not accepted, first: %w", len(errs), errs[0])
		}
		return nil
	})
	r.untilMark(published)
	downAt, back := outage(t, "frontend", func() error { return c.Kill(temporalcluster.Frontend) },
		func(ctx context.Context) error { return c.Restart(ctx, temporalcluster.Frontend) })
	mu.Lock()
	backAt = back
	mu.Unlock()
	if err := published.wait(); err != nil {
		t.Fatal(err)
	}
	if refused == 0 {
		t.Fatal("no request was answered 503 while the frontend was down")
	}
	r.verify("frontend killed under starter serve", downAt, back,
		fmt.Sprintf("; serve answered %d requests 503 (and nothing but 202 otherwise), the first 202 after the frontend was back came %s after the fault; %d deliveries had been started by a request answered 503",
			refused, firstBack.Sub(downAt).Round(time.Millisecond), dupes))
}

// PostgreSQL itself, under a cluster of the test's own, is killed (SIGKILL
// to the server and its backends: connections cut, no checkpoint) and
// started again on the same port and data, recovering from its WAL.
func TestFaultPostgresRestarted(t *testing.T) {
	faultCluster(t) // the mode gate; this test's cluster is its own
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logDir := keptLogDir(t, "hookrelay-fault-postgres-")
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{LogDir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	cl, err := testenv.StartPostgresCluster(ctx, temporalcluster.Options{PostgresURL: pg.URL(), LogDir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Stop(); err != nil {
			t.Errorf("stop the cluster: %v", err)
		}
	})
	h := on(hookrelay(t), cl.Address())
	h.Namespace, h.Security = cl.Namespace(), testenv.ClusterSecurity(cl) // its own certificates
	c, err := h.Dial(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Logf("PostgreSQL of its own on 127.0.0.1:%d, a cluster on it at %s; logs in %s", pg.Port(), cl.Address(), logDir)

	r := newFaultRun(t, h, c, 140_000)
	r.publishThrough("PostgreSQL", pg.Kill, pg.Start)
	for _, s := range temporalcluster.Services {
		if cl.PID(s) == 0 {
			t.Errorf("the %s process exited while PostgreSQL was down; see %s", s, logDir)
		}
	}
	r.verifyNone("PostgreSQL killed")
}

// keptLogDir is a directory for a test's server logs, removed after it
// passes and kept, and named, after it fails.
func keptLogDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}
