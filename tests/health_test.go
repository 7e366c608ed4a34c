package tests

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// healthClient publishes in this process and reads and steers endpoint
// health, on t's task queue, with the endpoints file at path.
func healthClient(t *testing.T, path string) *deliveries.Client {
	t.Helper()
	return localPublisher(t, temporal, path)
}

// timedEvent is event i of a run: its payload.time is base + i seconds, so
// the event-time order is the index order.
func timedEvent(t *testing.T, i int, base time.Time) event.Event {
	t.Helper()
	ev, err := event.Parse([]byte(testenv.FakeEvent("", event.Delivered, 7000+i, base.Add(time.Duration(i)*time.Second))))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func parkedCount(t *testing.T, endpointID string) int64 {
	n, err := testenv.CountParked(context.Background(), temporal, taskQueue(t), endpointID)
	if err != nil {
		t.Logf("count parked: %v", err)
	}
	return n
}

// waitCircuit waits until the worker logs that it sees the endpoint's circuit in state.
func waitCircuit(t *testing.T, w *testenv.Process, endpointID string, state workflows.CircuitState) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "the worker to see the circuit "+string(state), func() bool {
		return testenv.SeesCircuit(w, endpointID, state)
	})
}

// The outage: an endpoint answers 503 while 200 events arrive at
// 10/s. After open_after (5) failures the circuit opens: deliveries park, and
// only probes (every 5s, the bound) reach the endpoint. Once it answers 200 again, a
// probe succeeds and the drain releases every parked delivery, oldest event
// first, at drain_per_second (10/s); each webhook-id is delivered once.
func TestOutageParksThenDrainsInOrder(t *testing.T) {
	rc, heal := recoveringReceiver(t, http.StatusServiceUnavailable)
	eps := writeEndpoints(t, testenv.Endpoint{ID: "outage-flaky", URL: rc.URL,
		RetrySchedule: []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 10 * time.Minute},
		Extra:         "    circuit: {open_after: 5, probe_every: [5s], drain_per_second: 10}\n"})
	w := startWorker(t, eps, "--circuit-refresh", "500ms")
	dc := healthClient(t, eps)

	const n = 200
	base := time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)
	ids := make([]string, n) // webhook-ids, in event-time order
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		<-tick.C // 10 events a second: the pace of the mail service, not a wait for anything
		started, err := dc.Publish(context.Background(), timedEvent(t, i, base))
		if err != nil || len(started) != 1 {
			t.Fatalf("publish %d: %v %v", i, started, err)
		}
		ids[i] = started[0].DeliveryID
	}
	o := testenv.Outage{Client: temporal, Workers: []*testenv.Process{w}, EndpointID: "outage-flaky", TaskQueue: taskQueue(t)}
	if err := o.WaitOpen(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Every delivery parks, those that failed before the circuit opened at
	// their next attempt; a failed probe parks its delivery again at once,
	// in its place (its status stays parked throughout).
	testenv.Eventually(t, 2*time.Minute, "the deliveries parked", func() bool {
		d, err := o.Count(context.Background())
		return err == nil && d.Parked == n && d.Closed == 0
	})

	st, err := dc.EndpointHealth(context.Background(), "outage-flaky")
	if err != nil || st.State != workflows.CircuitOpen || st.OpenedAt == nil {
		t.Fatalf("health while down: %+v %v", st, err)
	}
	opened := *st.OpenedAt
	healTime := heal()
	testenv.Eventually(t, 2*time.Minute, "every delivery delivered", func() bool {
		_, got := rc.Accepted(ids)
		return got == n
	})
	waitCircuit(t, w, "outage-flaky", workflows.CircuitHealthy)

	reqs := rc.Requests()
	if err := rc.Verified(); err != nil {
		t.Fatal(err)
	}
	if s := rc.Stats(); s.Duplicates != 0 {
		t.Fatalf("%d duplicate deliveries, want each webhook-id delivered once", s.Duplicates)
	}
	// Before it opened: at most open_after failures plus the deliveries that
	// started while the workers had not yet seen the circuit open. After:
	// only probes, one every 5s.
	var failedBefore, failedAfter int
	settle := opened.Add(3 * time.Second)
	for _, r := range reqs {
		if r.Status == http.StatusServiceUnavailable {
			if r.At.Before(settle) {
				failedBefore++
			} else {
				failedAfter++
			}
		}
	}
	probes := int(healTime.Sub(settle)/(5*time.Second)) + 1
	if failedAfter > probes {
		t.Errorf("%d POSTs failed more than 3s after the circuit opened, want at most the %d probes", failedAfter, probes)
	}
	t.Logf("503s: %d before the circuit settled open (5 to open it, the rest in flight or started before the workers saw it), %d probes after; %d requests in all",
		failedBefore, failedAfter, len(reqs))

	// The drain: 2xx answers after the probe's (the first), in event-time
	// order, at 10/s ± 25%. Every delivery keeps its place, those whose
	// probes failed too.
	delivered, _ := rc.Accepted(ids)
	probe := 0
	for i, at := range delivered {
		if at.Before(delivered[probe]) {
			probe = i
		}
	}
	d := testenv.ReadDrain(delivered, func(i int) bool { return i == probe }, healTime)
	// In event-time order: strictly while one release was in flight at a
	// time (a release's round trip shorter than 1/rate); when the worker
	// needed more in flight to keep the rate, a POST may overtake fewer
	// earlier events than were in flight.
	_, inFlight := testenv.ReleasesLogged(w)
	if inFlight == 0 {
		t.Fatalf("the worker logged no drain:\n%s", w.Log())
	}
	if d.MaxOvertaken > inFlight-1 {
		t.Fatalf("the drain sent an event after %d later events, with at most %d releases in flight: not in event-time order", d.MaxOvertaken, inFlight)
	}
	if math.Abs(d.CleanPerSec-10)/10 > 0.25 {
		t.Errorf("drained at %.1f/s, want 10/s ± 25%%", d.CleanPerSec)
	}
	t.Logf("probe event %d; drained %d at %.1f/s, at most %d releases in flight; %+v", probe, d.Clean, d.CleanPerSec, inFlight, d)
}

// An operator pauses an endpoint: new deliveries park and nothing is sent;
// resume drains them.
func TestPauseAndResumeAnEndpoint(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t, testenv.Endpoint{ID: "pausable", URL: rc.URL, Extra: "    circuit: {drain_per_second: 50}\n"})
	w := startWorker(t, eps, "--circuit-refresh", "200ms")
	dc := healthClient(t, eps)
	st, err := dc.SteerEndpoint(context.Background(), "pausable", workflows.PauseSignal, "maintenance window (fake)")
	if err != nil || st.State != workflows.CircuitPaused {
		t.Fatalf("pause: %+v %v", st, err)
	}
	waitCircuit(t, w, "pausable", workflows.CircuitPaused)
	var ids []string
	for i := range 5 {
		started, err := dc.Publish(context.Background(), timedEvent(t, 100+i, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, started[0].DeliveryID)
	}
	testenv.Eventually(t, 30*time.Second, "5 parked", func() bool { return parkedCount(t, "pausable") == 5 })
	if got := len(rc.Requests()); got != 0 {
		t.Fatalf("the paused endpoint got %d requests", got)
	}
	out, _, code := starter(t, "", "status", ids[0], "--output", "json")
	if code != 0 || !strings.Contains(out, `"status":"parked"`) {
		t.Fatalf("status of a parked delivery (exit %d): %s", code, out)
	}
	if st, err = dc.SteerEndpoint(context.Background(), "pausable", workflows.ResumeSignal, ""); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if st := result(t, id); st.Status != workflows.StatusDelivered || len(st.Attempts) != 1 {
			t.Fatalf("%s after resume: %+v", id, st)
		}
	}
	var names []string
	for _, a := range st.Actions {
		names = append(names, a.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "pause") {
		t.Fatalf("actions %v lack the pause", names)
	}
}

// Disabling an endpoint sends the operations endpoint a signed notice;
// deliveries park meanwhile, and enable drains them.
func TestDisableSendsANoticeAndEnableDrains(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	ops := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t,
		testenv.Endpoint{ID: "customer", URL: rc.URL},
		testenv.Endpoint{ID: "ops", URL: ops.URL, Events: []string{event.Opened}}) // subscribes to no event it will get: notices only
	w := startWorker(t, eps, "--circuit-refresh", "200ms", "--operations-endpoint", "ops")
	dc := healthClient(t, eps)
	if _, err := dc.SteerEndpoint(context.Background(), "customer", workflows.DisableSignal, "abuse report (fake)"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the notice at the operations endpoint", func() bool { return len(ops.Requests()) == 1 })
	notice := ops.Requests()[0]
	var body struct {
		EventName string `json:"event_name"`
		Payload   struct {
			EndpointID string `json:"endpoint_id"`
			State      string `json:"state"`
			Reason     string `json:"reason"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(notice.Body, &body); err != nil || notice.VerifyErr != nil ||
		body.EventName != "hookrelay.endpoint.disabled" || body.Payload.EndpointID != "customer" || body.Payload.State != "disabled" ||
		!strings.Contains(body.Payload.Reason, "abuse report (fake)") {
		t.Fatalf("notice %s (verify %v)", notice.Body, notice.VerifyErr)
	}
	var audited bool
	for _, l := range strings.Split(w.Log(), "\n") {
		audited = audited || (strings.Contains(l, `"msg":"endpoint state changed"`) && strings.Contains(l, `"audit":true`) && strings.Contains(l, `"state":"disabled"`))
	}
	if !audited {
		t.Fatalf("no audit line for the disable:\n%s", w.Log())
	}
	waitCircuit(t, w, "customer", workflows.CircuitDisabled)
	started, err := dc.Publish(context.Background(), timedEvent(t, 200, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the delivery parked", func() bool { return parkedCount(t, "customer") == 1 })
	if _, err := dc.SteerEndpoint(context.Background(), "customer", workflows.EnableSignal, "cleared"); err != nil {
		t.Fatal(err)
	}
	if st := result(t, started[0].DeliveryID); st.Status != workflows.StatusDelivered {
		t.Fatalf("after enable: %+v", st)
	}
}

// A worker SIGKILLed while it drains: the drain continues on another
// worker once the first one's heartbeat times out; every parked delivery is
// delivered, none lost, none left parked.
func TestWorkerKilledDuringADrain(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t, testenv.Endpoint{ID: "draining", URL: rc.URL, Extra: "    circuit: {drain_per_second: 5}\n"})
	w1 := startWorker(t, eps, "--circuit-refresh", "200ms")
	w2 := startWorker(t, eps, "--circuit-refresh", "200ms")
	dc := healthClient(t, eps)
	if _, err := dc.SteerEndpoint(context.Background(), "draining", workflows.PauseSignal, "test"); err != nil {
		t.Fatal(err)
	}
	waitCircuit(t, w1, "draining", workflows.CircuitPaused)
	waitCircuit(t, w2, "draining", workflows.CircuitPaused)
	const n = 60
	var ids []string
	for i := range n {
		started, err := dc.Publish(context.Background(), timedEvent(t, 300+i, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, started[0].DeliveryID)
	}
	testenv.Eventually(t, time.Minute, "all parked", func() bool { return parkedCount(t, "draining") == n })
	if _, err := dc.SteerEndpoint(context.Background(), "draining", workflows.ResumeSignal, ""); err != nil {
		t.Fatal(err)
	}
	var drainer *testenv.Process
	testenv.Eventually(t, 30*time.Second, "a worker to start draining, and 10 delivered", func() bool {
		for _, w := range []*testenv.Process{w1, w2} {
			if strings.Contains(w.Log(), `"msg":"releasing parked deliveries"`) {
				drainer = w
			}
		}
		_, got := rc.Accepted(ids)
		return drainer != nil && got >= 10
	})
	if err := drainer.Kill(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	testenv.Eventually(t, 2*time.Minute, "every parked delivery delivered", func() bool {
		_, got := rc.Accepted(ids)
		return got == n
	})
	testenv.Eventually(t, 30*time.Second, "none parked", func() bool { return parkedCount(t, "draining") == 0 })
	t.Logf("drain finished %s after the worker was killed; %d duplicates", time.Since(killedAt).Round(time.Second), rc.Stats().Duplicates)
}

// The operator commands: status (JSON with the fields other programs read),
// pause and resume with a reason, and the usage mistakes.
func TestEndpointHealthCommands(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t, testenv.Endpoint{ID: "cli-ops", URL: rc.URL, Extra: "    max_in_flight: 3\n    rate_limit: 2.5\n"})
	startWorker(t, eps)
	if out, errOut, code := starter(t, "", "endpoint", "status", "cli-ops", "--endpoints", eps); code != 0 ||
		!strings.Contains(out, "max_in_flight  3 per worker") || !strings.Contains(out, "rate_limit     2.5 a second") {
		t.Fatalf("endpoint status text lacks the endpoint's limits: exit %d\n%s\n%s", code, out, errOut)
	}
	status := func() map[string]any {
		t.Helper()
		out, errOut, code := starter(t, "", "endpoint", "status", "cli-ops", "--endpoints", eps, "--output", "json")
		var st map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("endpoint status: exit %d\n%s\n%s", code, out, errOut)
		}
		if st["max_in_flight"] != 3.0 || st["rate_limit"] != 2.5 {
			t.Fatalf("endpoint status JSON: max_in_flight %v, rate_limit %v; want 3, 2.5", st["max_in_flight"], st["rate_limit"])
		}
		for _, k := range []string{"endpoint_id", "state", "parked", "consecutive_failures", "since", "next_probe_at"} {
			if _, ok := st[k]; !ok {
				t.Fatalf("endpoint status JSON lacks %q: %s", k, out)
			}
		}
		return st
	}
	if st := status(); st["state"] != "healthy" || st["parked"] != 0.0 {
		t.Fatalf("before: %v", st)
	}
	out, errOut, code := starter(t, "", "endpoint", "pause", "cli-ops", "--endpoints", eps, "--reason", "maintenance (fake)")
	if code != 0 || !strings.Contains(out, "paused") || !strings.Contains(out, "maintenance (fake)") {
		t.Fatalf("endpoint pause: exit %d\n%s\n%s", code, out, errOut)
	}
	if st := status(); st["state"] != "paused" {
		t.Fatalf("after pause: %v", st)
	}
	if _, errOut, code := starter(t, "", "endpoint", "resume", "cli-ops", "--endpoints", eps); code != 0 {
		t.Fatalf("endpoint resume: exit %d: %s", code, errOut)
	}
	testenv.Eventually(t, 30*time.Second, "healthy again after the drain", func() bool { return status()["state"] == "healthy" })
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"endpoint", "pause", "--endpoints", eps}, 2, "ENDPOINT_ID"},
		{[]string{"endpoint", "pause", "a", "b", "--endpoints", eps}, 2, "unexpected argument"},
		{[]string{"endpoint", "status", "cli-ops"}, 2, "--endpoints"},
		{[]string{"endpoint", "status", "nobody", "--endpoints", eps}, 1, "not in the endpoints file"},
	} {
		_, errOut, code := starter(t, "", c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("starter %v: exit %d %q, want %d naming %q", c.args, code, errOut, c.code, c.want)
		}
	}
}
