package tests

// Fleet faults (issue 6, item 4): a worker process killed with SIGKILL in the
// middle of a run, and the Temporal server restarted while deliveries wait
// in backoff.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/deliveries"

	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// publishAll publishes one event per body through the deliveries library
// from publishers goroutines, and returns each delivery's run ID by workflow
// ID. Every event must start exactly one new delivery. It never calls t.Fatal,
// so it may run in its own goroutine.
func publishAll(dc *deliveries.Client, bodies []string, publishers int) (map[string]string, error) {
	var (
		mu   sync.Mutex
		runs = map[string]string{}
	)
	errs := inParallel(len(bodies), publishers, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		started, err := dc.PublishJSON(ctx, []byte(bodies[i]))
		switch {
		case err != nil:
			return err
		case len(started) != 1 || started[0].Duplicate || started[0].RunID == "":
			return fmt.Errorf("published %+v, want one new delivery", started)
		}
		mu.Lock()
		runs[started[0].DeliveryID] = started[0].RunID
		mu.Unlock()
		return nil
	})
	if len(errs) > 0 {
		return runs, fmt.Errorf("%d events not published, first: %w", len(errs), errs[0])
	}
	if len(runs) != len(bodies) {
		return runs, fmt.Errorf("%d distinct deliveries for %d events", len(runs), len(bodies))
	}
	return runs, nil
}

// results fetches every delivery's result (the run in runs) through c, which
// must decrypt with this run's key, from a few goroutines.
func results(t *testing.T, c client.Client, runs map[string]string) map[string]workflows.DeliveryState {
	t.Helper()
	ids := slices.Collect(maps.Keys(runs))
	var (
		mu  sync.Mutex
		out = map[string]workflows.DeliveryState{}
	)
	errs := inParallel(len(ids), 10, func(i int) error {
		id := ids[i]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var st workflows.DeliveryState
		if err := c.GetWorkflow(ctx, id, runs[id]).Get(ctx, &st); err != nil {
			closed, ok := workflows.StateFromError(err)
			if !ok {
				return fmt.Errorf("delivery %s: %w", id, err)
			}
			st = closed
		}
		mu.Lock()
		out[id] = st
		mu.Unlock()
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("%d results not read, first: %v", len(errs), errs[0])
	}
	return out
}

// byWebhookID groups the requests of rcs by webhook-id, failing on any
// request whose signature did not verify or whose webhook-id is not one of
// ids: every POST must be one of these deliveries, under its own identity.
func byWebhookID(t *testing.T, ids map[string]string, rcs ...*testenv.Receiver) map[string][]testenv.Request {
	t.Helper()
	out := map[string][]testenv.Request{}
	for _, rc := range rcs {
		for _, r := range rc.Requests() {
			if r.VerifyErr != nil {
				t.Fatalf("a request with webhook-id %q did not verify: %v", r.ID, r.VerifyErr)
			}
			if _, ok := ids[r.ID]; !ok {
				t.Fatalf("a request with webhook-id %q, which is no delivery of this test", r.ID)
			}
			out[r.ID] = append(out[r.ID], r)
		}
	}
	return out
}

// lastAttemptEnd is when a delivery's last attempt ended, by the workflow's clock.
func lastAttemptEnd(st workflows.DeliveryState) time.Time {
	a := st.Attempts[len(st.Attempts)-1]
	return a.StartedAt.Add(time.Duration(a.LatencyMS) * time.Millisecond)
}

// Three worker processes share 1,000 deliveries to receivers that take
// 200 ms per request. Once 200 requests have been answered, one worker is
// killed with SIGKILL while the receiver holds one of its requests (so the
// kill certainly lands on an attempt in flight). Every delivery still
// arrives and completes delivered; every POST is one of the 1,000 deliveries
// under its own webhook-id; a delivery POSTed more than once recorded an
// attempt for each POST, so the receiver can dedupe and the audit trail
// explains every duplicate.
func TestFleetSurvivesAWorkerKilled(t *testing.T) {
	const (
		total         = 1000
		publishers    = 20
		killMark      = 200 // requests answered before the kill: a fair share of the run
		receiverDelay = 200 * time.Millisecond
	)
	// A lost attempt is noticed by its workflow task's timeout (a local first
	// attempt) or its heartbeat timeout (a retry, 15s: attempts this short
	// send no heartbeat, and the server counts from their start), then
	// retried after the next delay: short ones keep the test quick, and
	// several leave room for a slow machine.
	schedule := "    retry_schedule: [1s, 1s, 1s, 1s, 1s]\n"

	var (
		answered atomic.Int64
		open     atomic.Int64 // requests the receivers are answering now
		peakOpen atomic.Int64
		held     atomic.Bool
		holding  = make(chan struct{}, 1) // the victim's receiver holds a request
		killed   = make(chan struct{})    // closed once the victim is dead (or the test gave up)
	)
	slowOK := func(victim bool) func(int, http.ResponseWriter) int {
		return func(int, http.ResponseWriter) int {
			n := open.Add(1)
			defer open.Add(-1)
			for p := peakOpen.Load(); n > p; p = peakOpen.Load() {
				if peakOpen.CompareAndSwap(p, n) {
					break
				}
			}
			if victim && answered.Load() >= killMark && held.CompareAndSwap(false, true) {
				holding <- struct{}{}
				select {
				case <-killed:
				case <-time.After(time.Minute):
				}
			}
			time.Sleep(receiverDelay)
			answered.Add(1)
			return http.StatusOK
		}
	}
	// Each worker's endpoints file points the endpoint at its own receiver
	// (the URL is resolved at attempt time), so the test knows which worker
	// made each POST. workers[0] is the victim.
	var (
		receivers [3]*testenv.Receiver
		files     [3]string
		workers   [3]*testenv.Process
	)
	for i := range workers {
		receivers[i] = newReceiver(t, slowOK(i == 0))
		files[i] = endpointsFile(t, "fleet", receivers[i].URL, schedule)
		workers[i] = startWorker(t, files[i])
	}
	var release sync.Once
	releaseHeld := func() { release.Do(func() { close(killed) }) }
	t.Cleanup(releaseHeld) // runs before workers and receivers stop

	dc := localPublisher(t, temporal, files[1])
	bodies := sampleEvents(total, 70_000)
	type publishResult struct {
		runs map[string]string
		err  error
	}
	published := make(chan publishResult, 1)
	start := time.Now()
	go func() {
		runs, err := publishAll(dc, bodies, publishers)
		published <- publishResult{runs, err}
	}()

	// Kill the victim once the mark is passed and its receiver holds one of
	// its requests; publishing may still be going on.
	var (
		pub      publishResult
		pubDone  bool
		giveUp   = time.After(3 * time.Minute)
		pubWatch = published
	)
wait:
	for {
		select {
		case <-holding:
			break wait
		case pub = <-pubWatch:
			if pub.err != nil {
				t.Fatal(pub.err)
			}
			pubDone, pubWatch = true, nil
		case <-giveUp:
			t.Fatalf("after 3m, %d requests answered and none held from the victim (mark %d)", answered.Load(), killMark)
		}
	}
	victimPID := strconv.Itoa(workers[0].PID()) + "@" // the SDK's worker identity starts so
	killAt := time.Now()
	if err := workers[0].Kill(30 * time.Second); err != nil {
		t.Fatalf("victim pid %d: %v", workers[0].PID(), err)
	}
	releaseHeld()
	answeredAtKill := answered.Load()
	victimAudited := attempts(workers[0])
	if !pubDone {
		if pub = <-published; pub.err != nil {
			t.Fatal(pub.err)
		}
	}
	publishedIn := time.Since(start)
	runs := pub.runs

	delivered := fmt.Sprintf("TaskQueue = %q AND %s", taskQueue(t), statusQuery(t, workflows.StatusDelivered))
	testenv.Eventually(t, 3*time.Minute, fmt.Sprintf("%d deliveries delivered", total), func() bool {
		n, err := testenv.CountWorkflows(context.Background(), temporal, delivered)
		return err == nil && n == total
	})
	allDoneAt := time.Now()
	if n, err := testenv.CountWorkflows(context.Background(), temporal, fmt.Sprintf("TaskQueue = %q AND WorkflowType = %q", taskQueue(t), workflows.DeliveryWorkflowName)); err != nil || n != total {
		t.Fatalf("workflows on the queue: %d (%v), want exactly %d", n, err, total)
	}

	states := results(t, temporal, runs)
	reqs := byWebhookID(t, runs, receivers[:]...)
	var (
		duplicates     int // POSTs beyond each delivery's first
		failedOutcomes = map[workflows.Outcome]int{}
		// Attempts recorded as worker_error: lost with the victim, unless
		// a live worker's attempt timed out too.
		lost, lostDeliveries, byVictim int
		recordedAfter, recoveredAfter  time.Duration // from the kill, the latest of each
		lostDetail                     []string
		firstTryBody                   = map[string][]byte{}
	)
	for id, st := range states {
		last := st.Attempts[len(st.Attempts)-1]
		if st.Status != workflows.StatusDelivered || last.Outcome != workflows.OutcomeDelivered || last.StatusCode != http.StatusOK {
			t.Fatalf("delivery %s: status %s, last attempt %+v", id, st.Status, last)
		}
		got := reqs[id]
		if len(got) == 0 {
			t.Fatalf("delivery %s is delivered, but no receiver got it", id)
		}
		// Each POST is an attempt the workflow recorded, or a local first
		// attempt lost with its workflow task (a timeout in history): a
		// duplicate is never unexplained.
		lostLocal, lostLocalByVictim, err := lostLocalAttempts(temporal, id, runs[id], victimPID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > len(st.Attempts)+lostLocal {
			t.Fatalf("delivery %s: %d POSTs but %d attempts recorded and %d workflow tasks lost: %+v", id, len(got), len(st.Attempts), lostLocal, st.Attempts)
		}
		lost += lostLocal
		byVictim += lostLocalByVictim
		accepted := 0
		for _, r := range got {
			if r.Status/100 == 2 {
				accepted++
			}
			if b, ok := firstTryBody[id]; !ok {
				firstTryBody[id] = r.Body
			} else if !bytes.Equal(b, r.Body) {
				t.Fatalf("delivery %s: a repeated POST carried another body", id)
			}
		}
		if accepted == 0 {
			t.Fatalf("delivery %s: no POST was answered 2xx", id)
		}
		duplicates += len(got) - 1
		hadLost := lostLocal > 0
		for i, a := range st.Attempts {
			if a.Number != i+1 {
				t.Fatalf("delivery %s: attempt %d numbered %d", id, i+1, a.Number)
			}
			if i < len(st.Attempts)-1 {
				failedOutcomes[a.Outcome]++
			}
			if a.Outcome == workflows.OutcomeWorkerError {
				lost, hadLost = lost+1, true
				by, err := attemptWorker(temporal, id, runs[id], a.Number)
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(by, victimPID) {
					byVictim++
				} else {
					// A live worker's attempt timed out: show what its worker logged of it.
					t.Logf("worker_error on a live worker: %s attempt %d (%s)\n%s", id, a.Number, a.Error, logLinesAbout(id, workers[:]...))
				}
				recordedAfter = max(recordedAfter, a.StartedAt.Add(time.Duration(a.LatencyMS)*time.Millisecond).Sub(killAt))
				recoveredAfter = max(recoveredAfter, lastAttemptEnd(st).Sub(killAt))
				lostDetail = append(lostDetail, fmt.Sprintf("%s attempt %d: started by %s %s before the kill, recorded failed after %s (%s), delivered %s after the kill by attempt %d",
					id, a.Number, by, killAt.Sub(a.StartedAt).Round(time.Millisecond), (time.Duration(a.LatencyMS)*time.Millisecond).Round(time.Millisecond),
					a.Error, lastAttemptEnd(st).Sub(killAt).Round(time.Millisecond), last.Number))
			}
		}
		if hadLost {
			lostDeliveries++
		}
	}
	// The held request was POSTed and answered 200, but its worker died
	// before reading the answer: its attempt must have been lost and sent again.
	if byVictim == 0 || duplicates == 0 {
		t.Fatalf("the kill lost %d attempts and caused %d duplicate POSTs; the held request should have caused one of each", byVictim, duplicates)
	}
	slices.Sort(lostDetail)
	perReceiver := make([]int, len(receivers))
	for i, rc := range receivers {
		perReceiver[i] = len(rc.Requests())
	}
	t.Logf("%d deliveries published in %s with %d publishers; all delivered %s after the first publish (%.0f deliveries/s, at most %d requests open at the receivers at once)",
		total, publishedIn.Round(time.Millisecond), publishers, allDoneAt.Sub(start).Round(time.Millisecond), total/allDoneAt.Sub(start).Seconds(), peakOpen.Load())
	t.Logf("victim killed %s after the start with %d requests answered (it had audited %d attempts); POSTs per worker: victim %d, survivors %d and %d (audited %d and %d)",
		killAt.Sub(start).Round(time.Millisecond), answeredAtKill, victimAudited, perReceiver[0], perReceiver[1], perReceiver[2], attempts(workers[1]), attempts(workers[2]))
	t.Logf("%d attempts lost (worker_error, or a local first attempt whose workflow task timed out; %d deliveries; %d of those started by the victim); the last recorded %s after the kill, the last of those deliveries delivered %s after the kill; all delivered %s after the kill",
		lost, lostDeliveries, byVictim, recordedAfter.Round(time.Millisecond), recoveredAfter.Round(time.Millisecond), allDoneAt.Sub(killAt).Round(time.Millisecond))
	for _, l := range lostDetail {
		t.Logf("lost: %s", l)
	}
	t.Logf("%d duplicate POSTs, all under their delivery's webhook-id; failed attempts by outcome: %v", duplicates, failedOutcomes)
}

// Fifty deliveries wait in backoff (their first attempt answered 503, the
// next one due in 30s) when the dev server, with a file-backed database, is
// stopped; it is restarted on the same address and database, then the
// receiver recovers. Every delivery completes delivered in the run it
// started in, its second attempt no sooner than its timer allowed, and every
// POST carries its delivery's webhook-id. The worker processes are not
// restarted: they ride out the outage and reconnect, which the test checks.
func TestParkedDeliveriesCompleteAfterServerRestart(t *testing.T) {
	const (
		total      = 50
		firstDelay = 30 * time.Second
	)
	opts := testenv.DevServerOptions{HostPort: testenv.FreeAddrT(t), DBFilename: filepath.Join(t.TempDir(), "temporal.db")}
	ds := startOwnDevServer(t, opts)
	h := on(hookrelay(t), ds.FrontendHostPort())

	rc, heal := recoveringReceiver(t, http.StatusServiceUnavailable)
	// The first delay outlasts parking all fifty and the restart; the later
	// ones carry a delivery on if its timer fires before the receiver recovers.
	// The circuit stays closed (open_after above the deliveries): this test
	// is about deliveries waiting on their own timers through the restart.
	endpoints := endpointsFile(t, "parked", rc.URL, fmt.Sprintf("    retry_schedule: [%s, 1s, 2s, 5s, 10s, 10s]\n    circuit: {open_after: 1000}\n", firstDelay))
	// Two workers, each to stay up through the outage.
	var workers []*testenv.Process
	for range 2 {
		workers = append(workers, testenv.StartT(t, h.Worker("worker", "--endpoints", endpoints, "--allow-cidr", "127.0.0.0/8")))
	}

	tc, err := temporalclient.DialLazy(h.Options(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	dc := localPublisher(t, tc, endpoints)
	bodies := sampleEvents(total, 80_000)
	runs, err := publishAll(dc, bodies, 10)
	if err != nil {
		t.Fatal(err)
	}
	retrying := fmt.Sprintf("TaskQueue = %q AND %s", taskQueue(t), workflows.StatusRetrying.VisibilityQuery())
	testenv.Eventually(t, time.Minute, fmt.Sprintf("%d deliveries waiting in backoff", total), func() bool {
		n, err := testenv.CountWorkflows(context.Background(), ds.Client(), retrying)
		return err == nil && n == total
	})
	parked := rc.Requests()
	perDelivery := map[string]int{}
	for _, r := range parked {
		if perDelivery[r.ID]++; r.Status != http.StatusServiceUnavailable || perDelivery[r.ID] > 1 {
			t.Fatalf("while parking, the receiver answered %v, want 503s only, at most one per delivery", statuses(parked))
		}
	}

	pollFailuresBefore := []int{pollFailures(workers[0]), pollFailures(workers[1])}
	stopAt := time.Now()
	if err := ds.Stop(); err != nil {
		t.Logf("dev server stop: %v", err)
	}
	stoppedIn := time.Since(stopAt)
	// Restart only once both workers have seen the outage: a poll failed.
	testenv.Eventually(t, time.Minute, "both workers to fail a poll", func() bool {
		return pollFailures(workers[0]) > pollFailuresBefore[0] && pollFailures(workers[1]) > pollFailuresBefore[1]
	})
	ds = startOwnDevServer(t, opts) // same address, same database
	restartedAt := time.Now()

	// The workers were not restarted: each is still running and polls the
	// restarted server (pollers are in-memory server state, so any listed
	// now have polled since the restart; the SDK names them "<pid>@host@").
	for _, w := range workers {
		select {
		case <-w.Done():
			t.Fatalf("worker pid %d exited during the outage: %v\n%s", w.PID(), w.Err(), w.Log())
		default:
		}
	}
	testenv.Eventually(t, time.Minute, "both workers to poll the restarted server", func() bool {
		for _, tqType := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := ds.Client().DescribeTaskQueue(context.Background(), taskQueue(t), tqType)
			if err != nil {
				return false
			}
			for _, w := range workers {
				pid := strconv.Itoa(w.PID()) + "@"
				if !slices.ContainsFunc(resp.GetPollers(), func(p *taskqueuepb.PollerInfo) bool { return strings.HasPrefix(p.GetIdentity(), pid) }) {
					return false
				}
			}
		}
		return true
	})
	reconnectedIn := time.Since(restartedAt)
	auditedBefore := attempts(workers[0]) + attempts(workers[1])
	heal()

	delivered := fmt.Sprintf("TaskQueue = %q AND %s", taskQueue(t), statusQuery(t, workflows.StatusDelivered))
	testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("%d deliveries delivered after the restart", total), func() bool {
		n, err := testenv.CountWorkflows(context.Background(), ds.Client(), delivered)
		return err == nil && n == total
	})
	allDoneAt := time.Now()
	if n, err := testenv.CountWorkflows(context.Background(), ds.Client(), fmt.Sprintf("TaskQueue = %q AND WorkflowType = %q", taskQueue(t), workflows.DeliveryWorkflowName)); err != nil || n != total {
		t.Fatalf("workflows on the queue: %d (%v), want exactly %d", n, err, total)
	}

	states := results(t, tc, runs) // each in the run Publish started
	reqs := byWebhookID(t, runs, rc)
	var (
		waits        []time.Duration // from each first attempt to the second
		workerErrors []string        // attempts that failed as worker_error: none expected
	)
	for id, st := range states {
		first, last := st.Attempts[0], st.Attempts[len(st.Attempts)-1]
		switch {
		case st.Status != workflows.StatusDelivered || last.Outcome != workflows.OutcomeDelivered:
			t.Fatalf("delivery %s: status %s, last attempt %+v\n%s", id, st.Status, last, historyOutline(tc, id, runs[id]))
		case len(st.Attempts) < 2 || !first.StartedAt.Before(stopAt) || !last.StartedAt.After(stopAt):
			t.Fatalf("delivery %s: attempts %+v, want the first before the stop at %s and the delivered one after\n%s",
				id, st.Attempts, stopAt.Format(time.RFC3339Nano), historyOutline(tc, id, runs[id]))
		}
		// The second attempt waited for the durable timer: a restart does not
		// fire it early, nor lose it.
		wait := st.Attempts[1].StartedAt.Sub(first.StartedAt)
		if wait < firstDelay {
			t.Fatalf("delivery %s: second attempt %s after the first, before its %s timer", id, wait, firstDelay)
		}
		waits = append(waits, wait)
		got := reqs[id]
		if len(got) == 0 || len(got) > len(st.Attempts) || got[len(got)-1].Status != http.StatusOK {
			t.Fatalf("delivery %s: POSTs answered %v for %d attempts, want a 200 last and at most one POST per attempt", id, statuses(got), len(st.Attempts))
		}
		for _, a := range st.Attempts {
			if a.Outcome == workflows.OutcomeWorkerError {
				workerErrors = append(workerErrors, fmt.Sprintf("%s attempt %d (%s after the stop): %s\n%s  the workers logged:\n%s",
					id, a.Number, a.StartedAt.Sub(stopAt).Round(time.Millisecond), a.Error, historyOutline(tc, id, runs[id]), logLinesAbout(id, workers...)))
			}
		}
	}
	// A worker_error is a lost attempt, retried like any failure; this test
	// kills no worker, so one here is worth a look, but not a failure.
	for _, e := range workerErrors {
		t.Logf("worker_error: %s", e)
	}
	if audited := attempts(workers[0]) + attempts(workers[1]); audited-auditedBefore < total {
		t.Fatalf("the workers audited %d attempts after the restart, want at least %d", audited-auditedBefore, total)
	}
	slices.Sort(waits)
	t.Logf("%d deliveries parked (%d POSTs, all 503) when the server stopped; stop took %s; restarted %s after the stop, once both workers had failed a poll; both polling again %s after the restart",
		total, len(parked), stoppedIn.Round(time.Millisecond), restartedAt.Sub(stopAt).Round(time.Millisecond), reconnectedIn.Round(time.Millisecond))
	t.Logf("all delivered %s after the restart; first to second attempt %s to %s (timer %s); %d POSTs in all",
		allDoneAt.Sub(restartedAt).Round(time.Millisecond), waits[0].Round(time.Millisecond), waits[len(waits)-1].Round(time.Millisecond), firstDelay, len(rc.Requests()))
	for _, w := range workers {
		if err := w.Stop(30 * time.Second); err != nil {
			t.Fatalf("worker pid %d after the outage: %v\n%s", w.PID(), err, w.Log())
		}
	}
}

// pollFailures counts the SDK's warnings that a poll failed in w's log.
func pollFailures(w *testenv.Process) int {
	return strings.Count(w.Log(), `"msg":"Failed to poll for task."`)
}

// attemptWorker names the worker that started ordinary attempt n of a run:
// the identity on the ActivityTaskStarted event of the activity scheduled
// for attempt n (the SDK's default identity, "<pid>@<host>@").
func attemptWorker(c client.Client, id, runID string, n int) (string, error) {
	events, err := testenv.History(context.Background(), c, id, runID)
	if err != nil {
		return "", err
	}
	scheduled := map[int64]int{} // event id -> attempt number
	for _, e := range events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			var in workflows.AttemptInput
			if err := dataConverter.FromPayloads(a.GetInput(), &in); err != nil {
				return "", fmt.Errorf("history of %s: attempt input: %w", id, err)
			}
			scheduled[e.GetEventId()] = in.Attempt
		}
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == n {
			return a.GetIdentity(), nil
		}
	}
	return "", fmt.Errorf("history of %s: no attempt %d started as an activity", id, n)
}

// lostLocalAttempts counts a run's workflow tasks that timed out, and those
// of them the worker named by prefix had started. A local first attempt runs
// inside a workflow task: if its worker dies mid-POST the task times out and
// another worker runs the attempt again under the same number, so history
// holds one attempt where the receiver saw two POSTs with one webhook-id.
func lostLocalAttempts(c client.Client, id, runID, prefix string) (lost, byPrefix int, err error) {
	events, err := testenv.History(context.Background(), c, id, runID)
	if err != nil {
		return 0, 0, err
	}
	var startedBy string
	for _, e := range events {
		if a := e.GetWorkflowTaskStartedEventAttributes(); a != nil {
			startedBy = a.GetIdentity()
		}
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT {
			lost++
			if strings.HasPrefix(startedBy, prefix) {
				byPrefix++
			}
		}
	}
	return lost, byPrefix, nil
}

// logLinesAbout returns the lines of the workers' logs that name a delivery
// (audit lines and the SDK's own; neither holds a payload).
func logLinesAbout(id string, ws ...*testenv.Process) string {
	var b strings.Builder
	for _, w := range ws {
		for _, l := range strings.Split(w.Log(), "\n") {
			if strings.Contains(l, id) {
				fmt.Fprintf(&b, "  pid %d: %s\n", w.PID(), l)
			}
		}
	}
	return b.String()
}

// historyOutline lists a workflow run's events, their times and, for tasks,
// the worker that started them or the timeout that ended them: enough to see
// where an attempt was lost. It shows no payload.
func historyOutline(c client.Client, id, runID string) string {
	events, err := testenv.History(context.Background(), c, id, runID)
	if err != nil {
		return fmt.Sprintf("  %v\n", err)
	}
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "  %s %s", e.GetEventTime().AsTime().Format("15:04:05.000"), e.GetEventType())
		switch {
		case e.GetWorkflowTaskScheduledEventAttributes() != nil:
			fmt.Fprintf(&b, " on %s", e.GetWorkflowTaskScheduledEventAttributes().GetTaskQueue().GetKind())
		case e.GetWorkflowTaskStartedEventAttributes() != nil:
			fmt.Fprintf(&b, " by %s", e.GetWorkflowTaskStartedEventAttributes().GetIdentity())
		case e.GetWorkflowTaskTimedOutEventAttributes() != nil:
			fmt.Fprintf(&b, " (%s)", e.GetWorkflowTaskTimedOutEventAttributes().GetTimeoutType())
		case e.GetActivityTaskStartedEventAttributes() != nil:
			fmt.Fprintf(&b, " by %s", e.GetActivityTaskStartedEventAttributes().GetIdentity())
		case e.GetActivityTaskTimedOutEventAttributes() != nil:
			fmt.Fprintf(&b, " (%s)", e.GetActivityTaskTimedOutEventAttributes().GetFailure().GetTimeoutFailureInfo().GetTimeoutType())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func statuses(rs []testenv.Request) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.Status)
	}
	return out
}
