package tests

import (
	"net/http"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/billable"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// The cost of a delivery in Temporal Cloud actions, counted on real
// histories (internal/billable), so a change that adds one fails here:
//
//	first try:    2 = the start, the workflow task that ran the local first attempt
//	              (also to a slow endpoint given a longer timeout, which answers
//	              after 9 s: one workflow task, no heartbeat task)
//	retried once: 5 = those 2, the status upsert (retrying), the timer, the second attempt
//
// and a failed attempt adds one action of its own: the failure report
// signalled to the endpoint's health workflow; a success adds none.
func TestBillableActionsPerDelivery(t *testing.T) {
	ok := newReceiver(t, always(http.StatusOK))
	flaky := newReceiver(t, failFirst(1, http.StatusInternalServerError))
	slow := newReceiver(t, func(int, http.ResponseWriter) int {
		time.Sleep(9 * time.Second) // past 8 s, when a 10 s workflow task would heartbeat
		return http.StatusOK
	})
	eps := writeEndpoints(t,
		testenv.Endpoint{ID: "cost-ok", URL: ok.URL},
		testenv.Endpoint{ID: "cost-flaky", URL: flaky.URL, RetrySchedule: []time.Duration{time.Second}},
		testenv.Endpoint{ID: "cost-slow", URL: slow.URL, Timeout: 20 * time.Second})
	startWorker(t, eps)
	started := send(t, eps, sampleEvent(event.Delivered, 4242))
	if len(started) != 3 {
		t.Fatalf("started %+v", started)
	}
	for _, s := range started {
		st := result(t, s.WorkflowID)
		got := billable.Count(rawHistory(t, s.WorkflowID))
		want := map[string]billable.Actions{
			"cost-ok": {billable.WorkflowStarted: 1, billable.LocalActivityTask: 1},
			"cost-flaky": {billable.WorkflowStarted: 1, billable.LocalActivityTask: 1, billable.SearchAttributeUpsert: 1,
				billable.TimerStarted: 1, billable.ActivityScheduled: 1},
			"cost-slow": {billable.WorkflowStarted: 1, billable.LocalActivityTask: 1},
		}[s.EndpointID]
		if st.Status != workflows.StatusDelivered || !sameActions(got, want) {
			t.Errorf("%s: %s after %d attempt(s), actions %v (%d), want %v (%d)", s.EndpointID, st.Status, len(st.Attempts), got, got.Total(), want, want.Total())
		}
		t.Logf("%s: %d actions %v", s.EndpointID, got.Total(), got)
		if s.EndpointID != "cost-slow" {
			continue
		}
		if n := countEvents(rawHistory(t, s.WorkflowID), enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED); n != 1 {
			t.Errorf("%s: %d workflow tasks completed, want 1: the attempt within its task, no heartbeat task", s.EndpointID, n)
		}
		recordHistory(t, s.WorkflowID, "HOOKRELAY_RECORD_SLOW_HISTORY")
	}
	health := billable.Count(rawHistory(t, workflows.HealthWorkflowID("cost-flaky")))
	if health[billable.Signal] != 1 {
		t.Errorf("the flaky endpoint's health workflow got %d signals, want the one failure report", health[billable.Signal])
	}
	if n, _ := testenvCount(t, workflows.HealthWorkflowID("cost-ok")); n != 0 {
		t.Errorf("a health workflow runs for the endpoint that never failed")
	}
}

func sameActions(a, b billable.Actions) bool {
	for _, c := range billable.Categories {
		if a[c] != b[c] {
			return false
		}
	}
	return true
}

// testenvCount counts workflows with this ID.
func testenvCount(t *testing.T, id string) (int64, error) {
	return testenv.CountWorkflows(t.Context(), temporal, "WorkflowId = '"+id+"'")
}

// countEvents counts a history's events of type et.
func countEvents(events []*historypb.HistoryEvent, et enumspb.EventType) int {
	n := 0
	for _, e := range events {
		if e.GetEventType() == et {
			n++
		}
	}
	return n
}
