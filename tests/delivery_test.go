package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

type startedLine struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	EndpointID string `json:"endpoint_id"`
	EventID    string `json:"event_id"`
	Duplicate  bool   `json:"duplicate"`
}

// send submits an event through the starter binary and returns its JSON lines.
func send(t *testing.T, endpoints, ev string) []startedLine {
	t.Helper()
	out, errOut, code := starter(t, ev, "send", "--endpoints", endpoints, "--output", "json")
	if code != 0 {
		t.Fatalf("starter send exited %d: %s", code, errOut)
	}
	var lines []startedLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var s startedLine
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("starter send output %q: %v", l, err)
		}
		lines = append(lines, s)
	}
	return lines
}

func result(t *testing.T, workflowID string) workflows.DeliveryState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var st workflows.DeliveryState
	if err := temporal.GetWorkflow(ctx, workflowID, "").Get(ctx, &st); err != nil {
		// A failed or canceled delivery closes as such, carrying its state.
		closed, ok := workflows.StateFromError(err)
		if !ok {
			t.Fatalf("delivery %s: %v", workflowID, err)
		}
		return closed
	}
	return st
}

// statusQuery is the visibility query `starter list --status` runs.
func statusQuery(t *testing.T, status workflows.Status) string {
	t.Helper()
	q, err := deliveries.Filter{Status: string(status)}.Query()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func statusJSON(t *testing.T, workflowID string) map[string]any {
	t.Helper()
	out, errOut, code := starter(t, "", "status", workflowID, "--output", "json")
	if code != 0 {
		t.Fatalf("starter status exited %d: %s", code, errOut)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("starter status output %q: %v", out, err)
	}
	for _, k := range []string{"workflow_id", "status", "attempts", "next_attempt_at"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("starter status output lacks %q: %s", k, out)
		}
	}
	return m
}

func TestFirstTryDelivery(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL+"/hooks", "")
	startWorker(t, endpoints)

	ev := sampleEvent(event.Delivered, 101)
	lines := send(t, endpoints, ev)
	if len(lines) != 1 || lines[0].Duplicate || lines[0].EndpointID != "acme" || lines[0].RunID == "" ||
		lines[0].WorkflowID != "acme:"+lines[0].EventID {
		t.Fatalf("send = %+v", lines)
	}
	id := lines[0].WorkflowID
	st := result(t, id)
	if st.Status != workflows.StatusDelivered || len(st.Attempts) != 1 || st.Attempts[0].StatusCode != 200 {
		t.Fatalf("result = %+v", st)
	}

	reqs := rc.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	parsed, _ := event.Parse([]byte(ev))
	r := reqs[0]
	switch {
	case r.VerifyErr != nil:
		t.Fatalf("signature did not verify: %v", r.VerifyErr)
	case r.ID != id:
		t.Fatalf("webhook-id %q, want the workflow ID %q", r.ID, id)
	case string(r.Body) != string(parsed.Body()):
		t.Fatalf("body %s, want %s", r.Body, parsed.Body())
	case r.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(r.Header.Get("User-Agent"), "hookrelay/"):
		t.Fatalf("headers %v", r.Header)
	}

	status := statusJSON(t, id)
	if status["status"] != "delivered" || status["next_attempt_at"] != nil || len(status["attempts"].([]any)) != 1 {
		t.Fatalf("starter status = %v", status)
	}

	// Search attributes hold ids and the event name; the final status is
	// the close status (no upsert: a first-try delivery costs two actions).
	query := fmt.Sprintf("WorkflowId = %q AND HookrelayEndpoint = 'acme' AND HookrelayEventName = %q AND HookrelayMailLogID = '101' AND %s",
		id, event.Delivered, statusQuery(t, workflows.StatusDelivered))
	testenv.Eventually(t, 20*time.Second, "visibility to show the delivered status", func() bool {
		count, err := testenv.CountWorkflows(context.Background(), temporal, query)
		return err == nil && count == 1
	})
}

func TestRetriesKeepTheWebhookID(t *testing.T) {
	rc := newReceiver(t, failFirst(2, http.StatusInternalServerError))
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [200ms, 200ms, 200ms]\n")
	startWorker(t, endpoints)

	id := send(t, endpoints, sampleEvent(event.PermanentFailure, 102))[0].WorkflowID
	st := result(t, id)
	if st.Status != workflows.StatusDelivered || len(st.Attempts) != 3 {
		t.Fatalf("result = %+v", st)
	}
	for i, want := range []int{500, 500, 200} {
		if a := st.Attempts[i]; a.Number != i+1 || a.StatusCode != want {
			t.Fatalf("attempt %d = %+v, want status %d", i+1, a, want)
		}
	}
	reqs := rc.Requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.ID != id || r.VerifyErr != nil {
			t.Fatalf("request %d: webhook-id %q (want %q), verify %v", i+1, r.ID, id, r.VerifyErr)
		}
	}
}

func TestStatusWhileWaitingForARetry(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter) int {
		w.Header().Set("Retry-After", "3600")
		return http.StatusServiceUnavailable
	})
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [5s]\n")
	startWorker(t, endpoints)

	id := send(t, endpoints, sampleEvent(event.Opened, 103))[0].WorkflowID
	t.Cleanup(func() { temporal.TerminateWorkflow(context.Background(), id, "", "test over") })
	testenv.Eventually(t, 20*time.Second, "the first attempt", func() bool { return len(rc.Requests()) == 1 })

	var status map[string]any
	testenv.Eventually(t, 20*time.Second, "status retrying", func() bool {
		status = statusJSON(t, id)
		return status["status"] == "retrying"
	})
	next, err := time.Parse(time.RFC3339Nano, fmt.Sprint(status["next_attempt_at"]))
	if err != nil {
		t.Fatalf("next_attempt_at %v: %v", status["next_attempt_at"], err)
	}
	// Retry-After: 3600 replaced the scheduled 5s.
	if until := time.Until(next); until < 55*time.Minute || until > time.Hour {
		t.Fatalf("next attempt in %s, want about 1h (Retry-After)", until)
	}
	attempts := status["attempts"].([]any)
	if a := attempts[0].(map[string]any); len(attempts) != 1 || a["status_code"] != float64(503) || a["retry_after_seconds"] != float64(3600) {
		t.Fatalf("attempts = %v", attempts)
	}
	out, _, code := starter(t, "", "status", id)
	if code != 0 || !strings.Contains(out, "retrying") || !strings.Contains(out, "503") {
		t.Fatalf("text status (exit %d):\n%s", code, out)
	}
}

func TestDuplicateSubmissionStartsNothing(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL, "")
	startWorker(t, endpoints)

	ev := sampleEvent(event.TemporaryFailure, 104)
	first := send(t, endpoints, ev)[0]
	again := send(t, endpoints, ev)[0] // likely still running
	if !again.Duplicate || again.WorkflowID != first.WorkflowID || again.RunID != first.RunID {
		t.Fatalf("second send = %+v, first = %+v", again, first)
	}
	result(t, first.WorkflowID)
	// Reordered and re-spaced, after the delivery closed: still the same event.
	reordered := strings.Replace(strings.Replace(ev, `{"event_name"`, `{ "event_name"`, 1), `"payload":{"id":104,`, `"payload":{"id":104 ,`, 1)
	late := send(t, endpoints, reordered)[0]
	if !late.Duplicate || late.RunID != first.RunID {
		t.Fatalf("send after completion = %+v, first = %+v", late, first)
	}

	if count, err := testenv.CountWorkflows(context.Background(), temporal, fmt.Sprintf("WorkflowId = %q", first.WorkflowID)); err != nil || count != 1 {
		t.Fatalf("workflows with ID %s: %d (%v), want 1", first.WorkflowID, count, err)
	}
	if n := len(rc.Requests()); n != 1 {
		t.Fatalf("receiver got %d requests, want 1", n)
	}
}

// 100 deliveries shared by two worker processes: each is delivered, and an
// event reaches the receiver more than once only where an attempt failed.
func TestTwoWorkerProcessesShareDeliveries(t *testing.T) {
	const n = 100
	rc := newReceiver(t, func(k int, w http.ResponseWriter) int {
		return http.StatusOK
	})
	// Every seventh event fails its first attempt, so retries cross workers too.
	flaky := newReceiver(t, func(k int, w http.ResponseWriter) int {
		if k == 1 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	retry := []time.Duration{100 * time.Millisecond}
	endpoints := writeEndpoints(t,
		testenv.Endpoint{ID: "steady", URL: rc.URL, Events: []string{event.Delivered}, RetrySchedule: retry},
		testenv.Endpoint{ID: "flaky", URL: flaky.URL, Events: []string{event.Opened}, RetrySchedule: retry})
	w1 := startWorker(t, endpoints)
	w2 := startWorker(t, endpoints)

	var ids []string
	for i := range n {
		name := event.Delivered
		if i%7 == 0 {
			name = event.Opened
		}
		ids = append(ids, send(t, endpoints, sampleEvent(name, 1000+i))[0].WorkflowID)
	}
	recorded := 0
	for _, id := range ids {
		st := result(t, id)
		if st.Status != workflows.StatusDelivered {
			t.Fatalf("%s: %+v", id, st)
		}
		recorded += len(st.Attempts)
	}

	successes := map[string]int{}
	requests := 0
	for _, r := range append(rc.Requests(), flaky.Requests()...) {
		if r.VerifyErr != nil {
			t.Fatalf("%s: signature: %v", r.ID, r.VerifyErr)
		}
		requests++
		if r.Status == http.StatusOK {
			successes[r.ID]++
		}
	}
	for _, id := range ids {
		if successes[id] != 1 {
			t.Errorf("%s accepted %d times, want once", id, successes[id])
		}
	}
	if requests != recorded {
		t.Errorf("receivers got %d requests for %d recorded attempts", requests, recorded)
	}
	if attempts(w1) == 0 || attempts(w2) == 0 || attempts(w1)+attempts(w2) != recorded {
		t.Errorf("worker attempts %d + %d, want both > 0 and %d in all", attempts(w1), attempts(w2), recorded)
	}
	t.Logf("%d deliveries, %d attempts: worker 1 made %d, worker 2 made %d", n, recorded, attempts(w1), attempts(w2))
}

// SIGTERM stops polling but lets an attempt in flight finish and be recorded.
func TestWorkerFinishesInFlightAttemptOnSIGTERM(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	rc := newReceiver(t, func(k int, w http.ResponseWriter) int {
		arrived <- struct{}{}
		<-release
		return http.StatusOK
	})
	endpoints := endpointsFile(t, "acme", rc.URL, "")
	w := startWorker(t, endpoints)
	id := send(t, endpoints, sampleEvent(event.Delivered, 105))[0].WorkflowID

	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the attempt never reached the receiver")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop(30 * time.Second) }()
	testenv.Eventually(t, 10*time.Second, "the worker to log that it is stopping", func() bool {
		return strings.Contains(w.Log(), "worker stopping")
	})
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("worker: %v\n%s", err, w.Log())
	}
	if !strings.Contains(w.Log(), `"outcome":"delivered"`) {
		t.Fatalf("the in-flight attempt was not finished:\n%s", w.Log())
	}

	startWorker(t, endpoints) // completes the workflow task the stopped worker left
	st := result(t, id)
	if st.Status != workflows.StatusDelivered || len(st.Attempts) != 1 {
		t.Fatalf("result = %+v, want delivered by the one attempt in flight at SIGTERM", st)
	}
}

func TestWorkerRegistersSearchAttributes(t *testing.T) {
	startWorker(t, endpointsFile(t, "acme", "http://127.0.0.1:9/", ""))
	resp, err := temporal.OperatorService().ListSearchAttributes(context.Background(), &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]enumspb.IndexedValueType{
		"HookrelayEndpoint":  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"HookrelayEventName": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"HookrelayMailLogID": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"HookrelayStatus":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"HookrelayAttempts":  enumspb.INDEXED_VALUE_TYPE_INT,
		"HookrelayAccount":   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"HookrelayCircuit":   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"HookrelayEventTime": enumspb.INDEXED_VALUE_TYPE_DATETIME,
	}
	for name, typ := range want {
		if got := resp.GetCustomAttributes()[name]; got != typ {
			t.Errorf("search attribute %s: %s, want %s", name, got, typ)
		}
	}
}
