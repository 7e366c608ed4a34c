package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// starterJSON runs a starter command that must succeed and decodes its JSON output into v.
func starterJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, errOut, code := starter(t, "", append(args, "--output", "json")...)
	if code != 0 {
		t.Fatalf("starter %v exited %d: %s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("starter %v output %q: %v", args, out, err)
	}
}

// parkedDelivery starts a delivery whose first attempt gets 503 and whose next waits an hour.
func parkedDelivery(t *testing.T, endpoints string, mailLogID int) string {
	t.Helper()
	id := send(t, endpoints, sampleEvent(event.Delivered, mailLogID))[0].WorkflowID
	testenv.Eventually(t, 30*time.Second, "the delivery to wait for its retry", func() bool {
		st, err := statusOf(id)
		return err == nil && st.Status == workflows.StatusRetrying
	})
	return id
}

// statusOf reads a delivery's status through the library the starter uses.
func statusOf(id string) (workflows.DeliveryState, error) {
	return (&deliveries.Client{Temporal: temporal, DataConverter: dataConverter}).Status(context.Background(), id)
}

// failFirstThenOK answers 503 to the first request of each webhook-id, 200 after.
func failFirstThenOK(n int, w http.ResponseWriter) int {
	if n == 1 {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

func TestCancelDuringAnHourLongWait(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [1h]\n")
	startWorker(t, endpoints)
	id := parkedDelivery(t, endpoints, 301)

	began := time.Now()
	var st workflows.DeliveryState
	starterJSON(t, &st, "cancel", id, "--reason", "customer moved to a new endpoint")
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("cancel took %s, want under 5s", took)
	}
	if st.Status != workflows.StatusCanceled || len(st.Attempts) != 1 {
		t.Fatalf("after cancel: %+v", st)
	}
	if len(st.Actions) != 1 || st.Actions[0].Name != "cancel" || st.Actions[0].Reason != "customer moved to a new endpoint" {
		t.Fatalf("actions = %+v", st.Actions)
	}
	// A finished delivery cannot be canceled again.
	_, errOut, code := starter(t, "", "cancel", id)
	if code != 1 || !strings.Contains(errOut, "already finished") {
		t.Fatalf("second cancel: exit %d, %s", code, errOut)
	}
}

// hangingReceiver answers its first failFirst requests 503 and holds every
// later one open until the client leaves, which it reports on clientGone. It
// verifies nothing and never answers those.
type hangingReceiver struct {
	URL        string
	requests   atomic.Int64
	clientGone chan struct{}
}

func newHangingReceiver(t *testing.T, failFirst int64) *hangingReceiver {
	h := &hangingReceiver{clientGone: make(chan struct{}, 1)}
	testDone := make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices the client leaving only once the body is read
		if h.requests.Add(1) <= failFirst {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		select {
		case <-r.Context().Done():
			h.clientGone <- struct{}{}
		case <-testDone:
		}
	}))
	t.Cleanup(rc.Close)
	t.Cleanup(func() { close(testDone) }) // runs first: the server's Close waits for held handlers
	h.URL = rc.URL
	return h
}

// cancel cancels delivery id, whose attempt number attempts is held open,
// checks that the delivery ended canceled with that attempt canceled, and
// returns when the held request closed (at most 30 s on).
func (h *hangingReceiver) cancel(t *testing.T, id string, attempts int, w *testenv.Process) time.Time {
	t.Helper()
	var st workflows.DeliveryState
	starterJSON(t, &st, "cancel", id, "--reason", "stuck")
	if st.Status != workflows.StatusCanceled || len(st.Attempts) != attempts || st.Attempts[attempts-1].Outcome != workflows.OutcomeCanceled {
		t.Fatalf("after cancel: %+v", st)
	}
	select {
	case <-h.clientGone:
		return time.Now()
	case <-time.After(30 * time.Second):
		t.Fatalf("the attempt's request was still open 30s after the cancel\n%s", w.Log())
		return time.Time{}
	}
}

func TestCancelAbortsTheAttemptInFlight(t *testing.T) {
	rc := newHangingReceiver(t, 0)
	// The default timeout, 15 s: the local attempt's workflow task
	// heartbeats at 8 s, where the cancel reaches it. (A longer timeout
	// fits the workflow task to the attempt, and a cancel reaches the
	// attempt when it ends: docs/configuration.md, Fast path.)
	endpoints := endpointsFile(t, "acme", rc.URL, "    timeout: 15s\n")
	w := startWorker(t, endpoints)
	id := send(t, endpoints, sampleEvent(event.Opened, 302))[0].WorkflowID
	testenv.Eventually(t, 30*time.Second, "the attempt to reach the receiver", func() bool { return rc.requests.Load() == 1 })
	arrivedAt := time.Now()

	if took := rc.cancel(t, id, 1, w).Sub(arrivedAt); took >= 14*time.Second {
		t.Fatalf("the attempt's request closed %s after it arrived: by its 15s timeout, not by the cancel", took)
	}
}

// A retry is an ordinary activity: a cancel reaches it at its next
// heartbeat to the server, which the worker sends every
// workflows.AttemptHeartbeatEvery (5 s), well inside the attempt's heartbeat
// timeout (15 s), not every 80% of that timeout (12 s), as the SDK alone
// would.
func TestCancelAbortsARetryInFlight(t *testing.T) {
	rc := newHangingReceiver(t, 1) // the first attempt fails at once, the retry hangs
	endpoints := endpointsFile(t, "acme", rc.URL, "    timeout: 30s\n    retry_schedule: [1s, 1h]\n")
	w := startWorker(t, endpoints)
	id := send(t, endpoints, sampleEvent(event.Opened, 307))[0].WorkflowID
	testenv.Eventually(t, 30*time.Second, "the retry to reach the receiver", func() bool { return rc.requests.Load() == 2 })
	// Cancel after the retry's first heartbeat (sent once it has run
	// AttemptHeartbeatEvery), so what reaches it is a later one.
	testenv.Eventually(t, 30*time.Second, "the retry's first heartbeat", func() bool {
		d, err := rawTemporal.DescribeWorkflowExecution(context.Background(), id, "")
		return err == nil && len(d.GetPendingActivities()) == 1 && d.GetPendingActivities()[0].GetLastHeartbeatTime() != nil
	})
	cancelAt := time.Now()
	// The next heartbeat is at most AttemptHeartbeatEvery after the first;
	// without the worker's cap it would be 12 s.
	took := rc.cancel(t, id, 2, w).Sub(cancelAt)
	if took > workflows.AttemptHeartbeatEvery+3*time.Second {
		t.Fatalf("the retry's request closed %s after the cancel: not at the next heartbeat", took)
	}
	t.Logf("the retry's request closed %s after the cancel", took)
}

func TestRetryNowDuringAnHourLongWaitDeliversAtOnce(t *testing.T) {
	rc := newReceiver(t, failFirstThenOK)
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [1h, 1h]\n")
	startWorker(t, endpoints)
	id := parkedDelivery(t, endpoints, 303)

	var a workflows.Attempt
	began := time.Now()
	starterJSON(t, &a, "retry-now", id, "--wait")
	if a.Number != 2 || a.Outcome != workflows.OutcomeDelivered || a.StatusCode != 200 {
		t.Fatalf("retry-now --wait = %+v", a)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("retry-now took %s", took)
	}
	st := result(t, id)
	if st.Status != workflows.StatusDelivered || len(st.Attempts) != 2 || len(rc.Requests()) != 2 {
		t.Fatalf("result = %+v, %d requests", st, len(rc.Requests()))
	}

	// The plain signal form, without waiting.
	id2 := parkedDelivery(t, endpoints, 304)
	var now workflows.DeliveryState
	starterJSON(t, &now, "retry-now", id2)
	if st := result(t, id2); st.Status != workflows.StatusDelivered || st.Actions[0].Name != "retry-now" {
		t.Fatalf("after retry-now signal: %+v", st)
	}
}

func TestResendAfterDeliveryPostsAgainWithTheSameWebhookID(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL, "")
	startWorker(t, endpoints)
	first := send(t, endpoints, sampleEvent(event.Delivered, 305))[0]
	result(t, first.WorkflowID)

	var st workflows.DeliveryState
	starterJSON(t, &st, "resend", first.WorkflowID)
	testenv.Eventually(t, 30*time.Second, "the resend to arrive", func() bool { return len(rc.Requests()) == 2 })
	final := result(t, first.WorkflowID)
	if final.Status != workflows.StatusDelivered || len(final.Attempts) != 1 || final.Attempts[0].Number != 2 || final.ResendOf != first.RunID {
		t.Fatalf("resent run = %+v (first run %s)", final, first.RunID)
	}
	reqs := rc.Requests()
	if reqs[0].ID != first.WorkflowID || reqs[1].ID != first.WorkflowID || string(reqs[0].Body) != string(reqs[1].Body) || reqs[1].VerifyErr != nil {
		t.Fatalf("requests: %q then %q", reqs[0].ID, reqs[1].ID)
	}
}

func TestResendOfAFailedDeliveryAfterTheEndpointRecovers(t *testing.T) {
	rc, heal := recoveringReceiver(t, http.StatusInternalServerError)
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [100ms]\n")
	startWorker(t, endpoints)
	id := send(t, endpoints, sampleEvent(event.PermanentFailure, 306))[0].WorkflowID
	if st := result(t, id); st.Status != workflows.StatusFailed || len(st.Attempts) != 2 {
		t.Fatalf("before recovery: %+v", st)
	}

	heal()
	var st workflows.DeliveryState
	starterJSON(t, &st, "resend", id)
	final := result(t, id)
	if final.Status != workflows.StatusDelivered || len(final.Attempts) != 1 || final.Attempts[0].Number != 3 {
		t.Fatalf("after resend: %+v", final)
	}
	for _, r := range rc.Requests() {
		if r.ID != id {
			t.Fatalf("webhook-id %q, want %q", r.ID, id)
		}
	}
}

// Deliveries to two endpoints, three failed on one: bulk resend by query
// touches exactly those, and list filters return exactly the expected IDs.
func TestBulkResendAndListByQuery(t *testing.T) {
	down, healDown := recoveringReceiver(t, http.StatusBadGateway)
	up := newReceiver(t, always(http.StatusOK))
	endpoints := writeEndpoints(t,
		testenv.Endpoint{ID: "bulk-down", URL: down.URL, RetrySchedule: []time.Duration{}},
		testenv.Endpoint{ID: "bulk-up", URL: up.URL, Events: []string{event.Delivered}})
	startWorker(t, endpoints)

	var failedIDs, upIDs, openedIDs []string
	for i, name := range []string{event.Delivered, event.Delivered, event.Opened} {
		for _, s := range send(t, endpoints, sampleEvent(name, 310+i)) {
			result(t, s.WorkflowID)
			if s.EndpointID == "bulk-down" {
				failedIDs = append(failedIDs, s.WorkflowID)
				if name == event.Opened {
					openedIDs = append(openedIDs, s.WorkflowID)
				}
			} else {
				upIDs = append(upIDs, s.WorkflowID)
			}
		}
	}
	sort.Strings(failedIDs)
	listIDs := func(args ...string) []string {
		out, errOut, code := starter(t, "", append([]string{"list", "--output", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("starter list %v: exit %d: %s", args, code, errOut)
		}
		var ids []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var v struct {
				WorkflowID string `json:"workflow_id"`
			}
			if l != "" && json.Unmarshal([]byte(l), &v) == nil {
				ids = append(ids, v.WorkflowID)
			}
		}
		sort.Strings(ids)
		return ids
	}
	awaitList := func(want []string, args ...string) {
		t.Helper()
		sort.Strings(want)
		var got []string
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("list %v to return %v", args, want), func() bool {
			got = listIDs(args...)
			return reflect.DeepEqual(got, want)
		})
	}
	awaitList(failedIDs, "--endpoint", "bulk-down", "--status", "failed")
	awaitList(upIDs, "--endpoint", "bulk-up", "--status", "delivered", "--since", "1h")
	awaitList(openedIDs, "--endpoint", "bulk-down", "--event-name", event.Opened)
	awaitList(nil, "--endpoint", "bulk-up", "--status", "failed")
	awaitList(failedIDs[:1], "--query", fmt.Sprintf("WorkflowId = '%s'", failedIDs[0]))

	query := "HookrelayEndpoint = 'bulk-down' AND ExecutionStatus = 'Failed'"
	out, errOut, code := starter(t, "", "resend", "--query", query)
	if code != 1 || !strings.Contains(out, "3 deliveries match") || !strings.Contains(errOut, "--yes") {
		t.Fatalf("resend --query without --yes: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(down.Requests()); n != 3 {
		t.Fatalf("without --yes the endpoint still got %d requests, want the original 3", n)
	}

	healDown()
	out, errOut, code = starter(t, "", "resend", "--query", query, "--yes")
	if code != 0 || strings.Count(out, "resent (run ") != 3 {
		t.Fatalf("resend --query --yes: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, id := range failedIDs {
		if st := result(t, id); st.Status != workflows.StatusDelivered {
			t.Fatalf("%s after bulk resend: %+v", id, st)
		}
	}
	if n := len(up.Requests()); n != len(upIDs) {
		t.Fatalf("the healthy endpoint got %d requests, want %d: the bulk resend touched it", n, len(upIDs))
	}
	awaitList(failedIDs, "--endpoint", "bulk-down", "--status", "delivered")

	_, errOut, code = starter(t, "", "list", "--status", "lost")
	if code != 2 || !strings.Contains(errOut, "--status") {
		t.Fatalf("list --status lost: exit %d: %s", code, errOut)
	}
}

func TestSignalsToUnknownOrMalformedIDsFailCleanly(t *testing.T) {
	for _, args := range [][]string{
		{"cancel", "acme:evt_nope"}, {"retry-now", "acme:evt_nope"}, {"retry-now", "acme:evt_nope", "--wait"}, {"resend", "acme:evt_nope"},
	} {
		_, errOut, code := starter(t, "", args...)
		if code != 1 || !strings.Contains(errOut, "not found") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("starter %v: exit %d, stderr %q", args, code, errOut)
		}
	}
	for _, args := range [][]string{
		{"cancel", "no-colon"}, {"retry-now", "no-colon"}, {"resend", "no-colon"}, {"cancel"}, {"resend", "a:b", "--query", "x"}, {"cancel", "a:b", "--yes"},
	} {
		_, errOut, code := starter(t, "", args...)
		if code != 2 || errOut == "" {
			t.Errorf("starter %v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

func TestTemporalCLISignalCancels(t *testing.T) {
	needTemporalCLI(t, "signalling with the Temporal CLI")
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [1h]\n")
	startWorker(t, endpoints)
	id := parkedDelivery(t, endpoints, 320)

	cli := exec.Command(temporalCLI, append([]string{"workflow", "signal"}, append(temporalCLIConn(),
		"--workflow-id", id, "--name", "cancel", "--input", `{"reason":"from the Temporal CLI"}`)...)...)
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("temporal workflow signal: %v\n%s", err, out)
	}
	st := result(t, id)
	if st.Status != workflows.StatusCanceled || st.Actions[0].Reason != "from the Temporal CLI" {
		t.Fatalf("after the CLI's cancel: %+v", st)
	}
}

// The workflow history alone reconstructs every attempt, every signal with
// its reason, and every wait: rebuilt from the fetched history, they equal
// what the workflow itself returned.
func TestHistoryIsACompleteAuditTrail(t *testing.T) {
	rc := newReceiver(t, failFirst(2, http.StatusInternalServerError))
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [200ms, 1h]\n")
	w := startWorker(t, endpoints)
	id := send(t, endpoints, sampleEvent(event.TemporaryFailure, 330))[0].WorkflowID
	testenv.Eventually(t, 30*time.Second, "two failed attempts", func() bool { return len(rc.Requests()) == 2 })
	var a workflows.Attempt
	starterJSON(t, &a, "retry-now", id, "--wait")
	st := result(t, id)

	events, err := testenv.History(context.Background(), temporal, id, "")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := workflows.TimelineFromHistory(events, dataConverter)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Attempts) != 3 || !reflect.DeepEqual(tl.Attempts, st.Attempts) {
		t.Fatalf("attempts rebuilt from history:\n%+v\nthe workflow's result:\n%+v", tl.Attempts, st.Attempts)
	}
	if len(tl.Actions) != len(st.Actions) || len(tl.Actions) != 1 || tl.Actions[0].Name != st.Actions[0].Name {
		t.Fatalf("actions from history %+v, result %+v", tl.Actions, st.Actions)
	}
	if len(tl.Waits) != 2 || tl.Waits[0].Duration != 200*time.Millisecond || tl.Waits[0].Ended != "fired" ||
		tl.Waits[1].Duration != time.Hour || tl.Waits[1].Ended != "canceled" || tl.Waits[1].Summary != "wait 1h after 500" {
		t.Fatalf("waits from history: %+v", tl.Waits)
	}

	// The worker's audit lines tell the same story, without the payload.
	audit := auditLines(t, w)
	if len(audit) != 3 {
		t.Fatalf("%d audit lines, want 3:\n%s", len(audit), w.Log())
	}
	for i, l := range audit {
		if l["delivery_id"] != id || l["endpoint_id"] != "acme" || l["attempt"] != float64(i+1) ||
			l["status_code"] != float64(st.Attempts[i].StatusCode) || l["outcome"] != string(st.Attempts[i].Outcome) || l["key_ids"] == "" {
			t.Fatalf("audit line %d = %v", i+1, l)
		}
	}
	for _, phi := range []string{"Fake subject 330", "patient330@recipient.example.com", "clinic@sender.example.com"} {
		if strings.Contains(w.Log(), phi) {
			t.Fatalf("the worker log holds %q", phi)
		}
	}
}

func auditLines(t *testing.T, w *testenv.Process) []map[string]any {
	var lines []map[string]any
	for _, l := range strings.Split(w.Log(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["audit"] == true {
			lines = append(lines, m)
		}
	}
	return lines
}

func TestBulkCancelByQueryTouchesOnlyOpenMatches(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	endpoints := writeEndpoints(t,
		testenv.Endpoint{ID: "cancel-me", URL: rc.URL, Events: []string{event.Delivered}, RetrySchedule: []time.Duration{time.Hour}},
		testenv.Endpoint{ID: "keep-me", URL: rc.URL, Events: []string{event.Delivered}, RetrySchedule: []time.Duration{time.Hour}})
	startWorker(t, endpoints)
	var mine, kept []string
	for i := range 2 {
		for _, s := range send(t, endpoints, sampleEvent(event.Delivered, 340+i)) {
			if s.EndpointID == "cancel-me" {
				mine = append(mine, s.WorkflowID)
			} else {
				kept = append(kept, s.WorkflowID)
			}
		}
	}
	query := "HookrelayEndpoint = 'cancel-me'"
	testenv.Eventually(t, 30*time.Second, "visibility to list both open deliveries", func() bool {
		n, err := testenv.CountWorkflows(context.Background(), temporal, "ExecutionStatus = 'Running' AND "+query)
		return err == nil && n == 2
	})
	out, errOut, code := starter(t, "", "cancel", "--query", query, "--reason", "bulk test", "--yes")
	if code != 0 || !strings.Contains(out, "2 deliveries match") || strings.Count(out, "\tcanceled") != 2 {
		t.Fatalf("cancel --query: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, id := range mine {
		if st := result(t, id); st.Status != workflows.StatusCanceled || st.Actions[0].Reason != "bulk test" {
			t.Fatalf("%s: %+v", id, st)
		}
	}
	for _, id := range kept {
		testenv.Eventually(t, 30*time.Second, id+" to be retrying", func() bool {
			st, err := statusOf(id)
			return err == nil && st.Status == workflows.StatusRetrying
		})
		temporal.TerminateWorkflow(context.Background(), id, "", "test over")
	}
	// Nothing open matches any more: a second bulk cancel finds none.
	testenv.Eventually(t, 30*time.Second, "visibility to show them closed", func() bool {
		n, err := testenv.CountWorkflows(context.Background(), temporal, "ExecutionStatus = 'Running' AND "+query)
		return err == nil && n == 0
	})
	if out, _, code := starter(t, "", "cancel", "--query", query); code != 0 || !strings.Contains(out, "0 deliveries match") {
		t.Fatalf("second cancel --query: exit %d: %s", code, out)
	}
}
