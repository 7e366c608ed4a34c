package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdktemporal "go.temporal.io/sdk/temporal"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// A health workflow of an endpoint's ID and type, started by hand on a task
// queue no worker polls with HookrelayCircuit=disabled, running and listed
// in visibility, parks nothing: workers trust a circuit only from a running
// health workflow on the queues they poll. An endpoint paused the proper
// way after the forged one was listed shows the worker has read the
// circuits since.
func TestHealthWorkflowOnAnotherQueueParksNothing(t *testing.T) {
	const forgedID, controlID = "forged-circuit", "forged-circuit-control"
	rc := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t,
		testenv.Endpoint{ID: forgedID, URL: rc.URL},
		testenv.Endpoint{ID: controlID, URL: rc.URL, Events: []string{event.Opened}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := startWorker(t, eps, "--circuit-refresh", "200ms") // registers the search attributes

	forged, err := rawTemporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    workflows.HealthWorkflowID(forgedID),
		TaskQueue:             "nobody-polls-" + taskQueue(t),
		TypedSearchAttributes: sdktemporal.NewSearchAttributes(workflows.CircuitAttr.ValueSet(string(workflows.CircuitDisabled))),
	}, workflows.HealthWorkflowName, workflows.HealthInput{EndpointID: forgedID})
	if err != nil {
		t.Fatalf("start the forged health workflow: %v", err)
	}
	t.Cleanup(func() {
		_ = rawTemporal.TerminateWorkflow(context.Background(), forged.GetID(), forged.GetRunID(), "test over")
	})
	listed := "WorkflowId = '" + forged.GetID() + "' AND ExecutionStatus = 'Running' AND HookrelayCircuit = 'disabled'"
	testenv.Eventually(t, 30*time.Second, "the forged health workflow listed", func() bool {
		n, err := testenv.CountWorkflows(ctx, rawTemporal, listed)
		return err == nil && n == 1
	})

	dc := healthClient(t, eps)
	if _, err := dc.SteerEndpoint(ctx, controlID, workflows.PauseSignal, "control (fake)"); err != nil {
		t.Fatal(err)
	}
	waitCircuit(t, w, controlID, workflows.CircuitPaused)
	if testenv.SeesCircuit(w, forgedID, workflows.CircuitDisabled) {
		t.Fatalf("the worker took the forged circuit:\n%s", w.Log())
	}

	started, err := dc.Publish(ctx, timedEvent(t, 300, time.Now()))
	if err != nil || len(started) != 1 {
		t.Fatalf("publish: %v %v", started, err)
	}
	if st := result(t, started[0].DeliveryID); st.Status != workflows.StatusDelivered || len(st.Attempts) != 1 {
		t.Fatalf("delivery to the endpoint with a forged circuit: %+v", st)
	}
	if n := parkedCount(t, forgedID); n != 0 {
		t.Fatalf("%d deliveries parked", n)
	}
}
