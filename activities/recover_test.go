package activities

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// scriptedResender answers each delivery's outcome and records the calls.
type scriptedResender struct {
	outcomes map[string]string
	calls    []string
}

func (r *scriptedResender) ResendFailedOnce(_ context.Context, id string, _ time.Time) (string, error) {
	r.calls = append(r.calls, id)
	if o, ok := r.outcomes[id]; ok {
		return o, nil
	}
	return workflows.RecoverResent, nil
}

// A retried resend page resumes after its last heartbeat: the deliveries
// it had done are not asked again, and its counts carry on; a delivery
// resent before the heartbeat (already_resent) counts as resent, skips
// keep their reason.
func TestResendFailedResumesFromHeartbeat(t *testing.T) {
	ep := endpoint.Endpoint{ID: "ep", AccountID: "acct", Circuit: endpoint.DefaultCircuit()}
	ep.Circuit.DrainPerSecond = 1000
	res := &scriptedResender{outcomes: map[string]string{"ep:3": workflows.RecoverAlreadyResent, "ep:4": workflows.SkipUnsealedInput}}
	acts := &RecoverActivities{Resender: res, Endpoints: staticSource{ep: ep}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts.ResendFailed)
	env.SetHeartbeatDetails(resendProgress{Done: 2, Result: workflows.RecoverResendResult{Resent: 2}})
	ids := []string{"ep:1", "ep:2", "ep:3", "ep:4", "ep:5"}
	val, err := env.ExecuteActivity(acts.ResendFailed, workflows.RecoverResendInput{RecoverID: "rcv_x", AccountID: "acct", EndpointID: "ep", DeliveryIDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	var got workflows.RecoverResendResult
	if err := val.Get(&got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.calls, ids[2:]) {
		t.Errorf("resent %v; want only %v, after the heartbeat", res.calls, ids[2:])
	}
	if got.Resent != 4 || fmt.Sprint(got.Skipped) != fmt.Sprint([]workflows.Skipped{{DeliveryID: "ep:4", Reason: workflows.SkipUnsealedInput}}) {
		t.Errorf("result %+v; want 4 resent, ep:4 skipped as unsealed", got)
	}
}

// Resends are paced at the endpoint's drain_per_second, the first too.
func TestResendFailedPaces(t *testing.T) {
	ep := endpoint.Endpoint{ID: "ep", AccountID: "acct", Circuit: endpoint.DefaultCircuit()}
	ep.Circuit.DrainPerSecond = 20
	res := &scriptedResender{}
	acts := &RecoverActivities{Resender: res, Endpoints: staticSource{ep: ep}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts.ResendFailed)
	start := time.Now()
	if _, err := env.ExecuteActivity(acts.ResendFailed, workflows.RecoverResendInput{EndpointID: "ep", DeliveryIDs: []string{"ep:1", "ep:2", "ep:3", "ep:4"}}); err != nil {
		t.Fatal(err)
	}
	// Four resends at 20/s, the first paced too: at least 4 intervals of 50 ms.
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Errorf("4 resends at 20/s took %s; want at least 200ms", took)
	}
}
