package health

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// laggingServer is a Temporal client whose visibility store lists no
// circuit yet (it lags under a burst), while each health workflow's own
// state, as a description reads it, is current. It records what was asked.
type laggingServer struct {
	client.Client // unused methods panic
	mu            sync.Mutex
	circuits      map[string]workflows.CircuitState // by health workflow ID
	queues        map[string]string                 // by health workflow ID; default the health queue of "q"
	described     []string
	reported      []string
	hold          chan struct{} // if set, each report waits for it to close
	calls         chan string   // if set, receives each report's workflow ID
}

func (l *laggingServer) ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	return &workflowservice.ListWorkflowExecutionsResponse{}, nil
}

func (l *laggingServer) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.described = append(l.described, id)
	state, ok := l.circuits[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	p, _ := converter.GetDefaultDataConverter().ToPayload(string(state))
	queue, ok := l.queues[id]
	if !ok {
		queue = workflows.HealthTaskQueue("q")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Status:           enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		Type:             &commonpb.WorkflowType{Name: workflows.HealthWorkflowName},
		TaskQueue:        queue,
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{workflows.CircuitAttr.GetName(): p}},
	}}, nil
}

func (l *laggingServer) SignalWithStartWorkflow(_ context.Context, id, _ string, _ interface{}, _ client.StartWorkflowOptions, _ interface{}, _ ...interface{}) (client.WorkflowRun, error) {
	l.mu.Lock()
	l.reported = append(l.reported, id)
	hold := l.hold
	l.mu.Unlock()
	if l.calls != nil {
		l.calls <- id
	}
	if hold != nil {
		<-hold
	}
	return nil, nil
}

// An endpoint this worker reported a failure to is described at each
// refresh, so its circuit is seen open although visibility does not list it
// yet; an endpoint it never reported to is not described (visibility's word
// stands for it); and once the failures are older than suspectFor, the
// descriptions stop.
func TestReportedEndpointsAreDescribed(t *testing.T) {
	srv := &laggingServer{circuits: map[string]workflows.CircuitState{
		workflows.HealthWorkflowID("failing"): workflows.CircuitOpen,
		workflows.HealthWorkflowID("quiet"):   workflows.CircuitOpen,
	}}
	w := &Watcher{Client: srv, Namespace: "default", TaskQueue: "q"}
	ctx := context.Background()
	if err := w.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Circuit("failing") != workflows.CircuitHealthy || len(srv.described) != 0 {
		t.Fatalf("before any failure: circuit %s, described %v; want healthy, none described", w.Circuit("failing"), srv.described)
	}

	w.Observe(ctx, endpoint.Endpoint{ID: "failing"}, "failing:evt_1", workflows.Attempt{Outcome: workflows.OutcomeHTTPError, StartedAt: time.Now()})
	if len(srv.reported) != 1 {
		t.Fatalf("reports %v, want one", srv.reported)
	}
	if err := w.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Circuit("failing"); got != workflows.CircuitOpen {
		t.Fatalf("after the report: circuit %s, want open (described)", got)
	}
	if w.Circuit("quiet") != workflows.CircuitHealthy || len(srv.described) != 1 || srv.described[0] != workflows.HealthWorkflowID("failing") {
		t.Fatalf("described %v, want the failing endpoint's health workflow only", srv.described)
	}

	// The circuit closes; the description says so before visibility would.
	srv.mu.Lock()
	srv.circuits[workflows.HealthWorkflowID("failing")] = workflows.CircuitHealthy
	srv.mu.Unlock()
	if err := w.refresh(ctx); err != nil || w.Circuit("failing") != workflows.CircuitHealthy {
		t.Fatalf("after it healed: circuit %s (%v), want healthy", w.Circuit("failing"), err)
	}

	// Failures older than suspectFor: no more descriptions.
	w.mu.Lock()
	w.suspects["failing"] = time.Now().Add(-suspectFor - time.Second)
	w.mu.Unlock()
	before := len(srv.described)
	if err := w.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if len(srv.described) != before {
		t.Fatalf("described %v after the failures aged out, want no more", srv.described[before:])
	}
}

// A described health workflow speaks for its endpoint's circuit only on
// the queues the workers of TaskQueue poll: the health queue, or the
// delivery queue itself; on any other queue it is not believed.
func TestDescribedHealthWorkflowOnAnotherQueueIsNotBelieved(t *testing.T) {
	srv := &laggingServer{
		circuits: map[string]workflows.CircuitState{
			workflows.HealthWorkflowID("forged"): workflows.CircuitDisabled,
			workflows.HealthWorkflowID("legacy"): workflows.CircuitOpen,
		},
		queues: map[string]string{workflows.HealthWorkflowID("forged"): "nobody-polls", workflows.HealthWorkflowID("legacy"): "q"},
	}
	w := &Watcher{Client: srv, Namespace: "default", TaskQueue: "q"}
	ctx := context.Background()
	for _, id := range []string{"forged", "legacy"} {
		w.Observe(ctx, endpoint.Endpoint{ID: id}, id+":evt_1", workflows.Attempt{Outcome: workflows.OutcomeTimeout, StartedAt: time.Now()})
	}
	if err := w.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Circuit("forged"); got != workflows.CircuitHealthy {
		t.Errorf("forged: circuit %s from a health workflow on another queue, want healthy", got)
	}
	if got := w.Circuit("legacy"); got != workflows.CircuitOpen {
		t.Errorf("legacy: circuit %s from a health workflow on the delivery queue, want open", got)
	}
}

// A health workflow not started yet (the report failed) leaves the
// circuit as visibility lists it.
func TestUndescribableHealthWorkflowKeepsVisibilitysWord(t *testing.T) {
	srv := &laggingServer{circuits: map[string]workflows.CircuitState{}}
	w := &Watcher{Client: srv, Namespace: "default", TaskQueue: "q"}
	ctx := context.Background()
	w.Observe(ctx, endpoint.Endpoint{ID: "new"}, "new:evt_1", workflows.Attempt{Outcome: workflows.OutcomeTimeout, StartedAt: time.Now()})
	if err := w.refresh(ctx); err != nil || w.Circuit("new") != workflows.CircuitHealthy || len(srv.described) != 1 {
		t.Fatalf("circuit %s (%v), described %v; want healthy after one description that found nothing", w.Circuit("new"), err, srv.described)
	}
}

// A burst of failures at one endpoint sends one report at a time from a
// worker: the failures while one is in flight are not reported, so
// thousands of concurrent signals never pile onto the one health workflow.
// Another endpoint's report is not held back, and once the report returns
// the next failure is reported again.
func TestOneReportInFlightPerEndpoint(t *testing.T) {
	srv := &laggingServer{circuits: map[string]workflows.CircuitState{}, hold: make(chan struct{}), calls: make(chan string, 100)}
	w := &Watcher{Client: srv, Namespace: "default", TaskQueue: "q"}
	ctx := context.Background()
	failed := workflows.Attempt{Outcome: workflows.OutcomeHTTPError, StartedAt: time.Now()}
	var held sync.WaitGroup
	observe := func(id string) {
		held.Add(1)
		go func() {
			defer held.Done()
			w.Observe(ctx, endpoint.Endpoint{ID: id}, id+":evt_1", failed)
		}()
	}
	observe("burst")
	if got := <-srv.calls; got != workflows.HealthWorkflowID("burst") {
		t.Fatalf("first report to %s", got)
	}
	var burst sync.WaitGroup
	for i := range 50 {
		burst.Add(1)
		go func() {
			defer burst.Done()
			w.Observe(ctx, endpoint.Endpoint{ID: "burst"}, fmt.Sprintf("burst:evt_%d", i+2), failed)
		}()
	}
	burst.Wait() // each returned while the first report was held: not reported
	observe("other")
	if got := <-srv.calls; got != workflows.HealthWorkflowID("other") {
		t.Fatalf("report to %s, want other's: burst's failures while its report was in flight were reported", got)
	}
	close(srv.hold)
	held.Wait()
	srv.mu.Lock()
	srv.hold = nil
	srv.mu.Unlock()
	w.Observe(ctx, endpoint.Endpoint{ID: "burst"}, "burst:evt_99", failed)
	if len(srv.reported) != 3 || srv.reported[2] != workflows.HealthWorkflowID("burst") {
		t.Fatalf("reports %v, want burst, other, then burst again once its first returned", srv.reported)
	}
}
