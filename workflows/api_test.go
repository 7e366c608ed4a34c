package workflows

import (
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/endpoint"
)

// Each status's visibility query is what docs/operations.md's table says.
func TestStatusVisibilityQuery(t *testing.T) {
	for _, c := range []struct {
		status Status
		want   string
	}{
		{StatusPending, "(ExecutionStatus = 'Running' AND HookrelayStatus = 'pending')"},
		{StatusRetrying, "(ExecutionStatus = 'Running' AND HookrelayStatus = 'retrying')"},
		{StatusParked, "(ExecutionStatus = 'Running' AND HookrelayStatus = 'parked')"},
		{StatusDelivered, "(ExecutionStatus = 'Completed' AND HookrelayStatus != 'failed' AND HookrelayStatus != 'canceled')"},
		{StatusFailed, "(ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut' OR (ExecutionStatus = 'Completed' AND HookrelayStatus = 'failed'))"},
		{StatusCanceled, "(ExecutionStatus = 'Canceled' OR ExecutionStatus = 'Terminated' OR (ExecutionStatus = 'Completed' AND HookrelayStatus = 'canceled'))"},
		{"lost", ""},
		{"", ""},
	} {
		if got := c.status.VisibilityQuery(); got != c.want {
			t.Errorf("%q: %s, want %s", c.status, got, c.want)
		}
	}
	for _, s := range Statuses {
		if s.VisibilityQuery() == "" {
			t.Errorf("status %q has no visibility query", s)
		}
	}
}

func TestParkedQuery(t *testing.T) {
	want := "WorkflowType = 'DeliveryWorkflow' AND HookrelayEndpoint = 'acme' AND (ExecutionStatus = 'Running' AND HookrelayStatus = 'parked')"
	if got := ParkedQuery("acme"); got != want {
		t.Fatalf("ParkedQuery: %s, want %s", got, want)
	}
}

func TestHealthStartOptions(t *testing.T) {
	o := HealthStartOptions(endpoint.Endpoint{ID: "acme"}, "webhooks")
	circuit, ok := o.TypedSearchAttributes.GetKeyword(CircuitAttr)
	if o.ID != "endpoint-health/acme" || o.TaskQueue != "webhooks-health" || !ok || circuit != string(CircuitHealthy) ||
		o.TypedSearchAttributes.Size() != 1 {
		t.Fatalf("start options: %+v", o)
	}
}

// The circuits query names both queues the workers poll, each quoted so
// that a queue name cannot end the string early.
func TestUnhealthyCircuitsQuery(t *testing.T) {
	got := UnhealthyCircuitsQuery("webhooks")
	want := "WorkflowType = 'EndpointHealthWorkflow' AND ExecutionStatus = 'Running' AND HookrelayCircuit != 'healthy' AND (TaskQueue = 'webhooks-health' OR TaskQueue = 'webhooks')"
	if got != want {
		t.Fatalf("query\n%s\nwant\n%s", got, want)
	}
	if got := UnhealthyCircuitsQuery(`q' OR 'x`); !strings.Contains(got, `TaskQueue = 'q\' OR \'x'`) {
		t.Fatalf("a quote in the queue name is not escaped: %s", got)
	}
	if !HealthQueueTrusted("webhooks", "webhooks-health") || !HealthQueueTrusted("webhooks", "webhooks") || HealthQueueTrusted("webhooks", "other") {
		t.Fatal("HealthQueueTrusted: want the health queue and the delivery queue only")
	}
}
