package workflows

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// These tests rehearse a rollout: a change to DeliveryWorkflow deployed
// while deliveries wait in backoff, perhaps for hours, on timers the old
// code started. The change here adds a step before every wait: an activity
// that notes the wait (it stands for any new command: an activity, a
// timer, a child workflow). Rather than copy DeliveryWorkflow, the change is
// applied to the real workflow through a workflow interceptor, at the moment
// it starts a backoff timer, exactly where such a change would sit in
// delivery.go (see docs/operations.md, "Changing DeliveryWorkflow safely"):
//
//	if workflow.GetVersion(ctx, "note-backoff", workflow.DefaultVersion, 1) == 1 {
//		noteBackoff(ctx)
//	}
//	timer := workflow.NewTimerWithOptions(...)

const (
	noteBackoffChange   = "note-backoff"
	noteBackoffActivity = "NoteBackoff"
)

// change says how the new code is written.
type change int

const (
	unguarded        change = iota // the new step always runs
	guarded                        // GetVersion(DefaultVersion, 1): old runs keep the old path
	oldBranchRemoved               // GetVersion(1, 1): after every old run has drained
)

// recordedHistories are every history in testdata: some waited in backoff
// (retried, canceled, retry_now), some never waited (gone, resent).
var recordedHistories = map[string]bool{ // file -> it waited in backoff
	"testdata/delivery_retried_history.json":   true,
	"testdata/delivery_canceled_history.json":  true,
	"testdata/delivery_retry_now_history.json": true,
	"testdata/delivery_gone_history.json":      false,
	"testdata/delivery_resent_history.json":    false,
}

func TestGuardedChangeReplaysDeliveriesParkedInBackoff(t *testing.T) {
	for file := range recordedHistories {
		for name, h := range historyAndParkedPrefix(t, file) {
			if err := replay(t, h, guarded); err != nil {
				t.Errorf("%s (%s): the GetVersion-guarded change does not replay: %v", file, name, err)
			}
		}
	}
}

func TestUnguardedChangeBreaksDeliveriesParkedInBackoff(t *testing.T) {
	for file, waited := range recordedHistories {
		for name, h := range historyAndParkedPrefix(t, file) {
			err := replay(t, h, unguarded)
			if err != nil {
				t.Logf("%s (%s): %v", file, name, err)
			}
			switch {
			case waited && err == nil:
				t.Errorf("%s (%s): the unguarded change replayed cleanly; want a nondeterminism error", file, name)
			case waited && !isNondeterminism(err):
				t.Errorf("%s (%s): %v; want a nondeterminism error", file, name, err)
			case !waited && err != nil:
				// A run that never waited never reaches the changed code.
				t.Errorf("%s (%s): %v", file, name, err)
			}
		}
	}
}

// Removing the old branch (minSupported raised to 1) is safe only once no
// run that started before the change can be replayed any more: replaying
// one fails, so the old branch stays until they have drained.
func TestRemovingTheOldBranchTooEarlyBreaksOldDeliveries(t *testing.T) {
	for file, waited := range recordedHistories {
		if !waited {
			continue
		}
		for name, h := range historyAndParkedPrefix(t, file) {
			err := replay(t, h, oldBranchRemoved)
			if err == nil || !strings.Contains(err.Error(), "removed support of version -1") {
				t.Errorf("%s (%s): %v; want an error saying the code removed support of DefaultVersion", file, name, err)
			}
		}
	}
}

// A delivery that starts after the deployment takes the new branch at its
// first wait and keeps it: the step runs before every wait.
func TestGuardedChangeTakesTheNewBranchForNewDeliveries(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "acme:evt_1"})
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&rollout{change: guarded}}})
	Register(env)
	env.RegisterActivityWithOptions(scripted(t,
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 503},
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 503},
		Attempt{Outcome: OutcomeDelivered, StatusCode: 200},
	), activity.RegisterOptions{Name: AttemptActivityName})
	notes := 0
	env.RegisterActivityWithOptions(func(context.Context) error { notes++; return nil }, activity.RegisterOptions{Name: noteBackoffActivity})
	env.ExecuteWorkflow(DeliveryWorkflowName, testInput(5*time.Minute, 2*time.Hour))
	var st DeliveryState
	if err := env.GetWorkflowResult(&st); err != nil || st.Status != StatusDelivered {
		t.Fatalf("result %+v, %v", st, err)
	}
	if notes != 2 {
		t.Fatalf("the new step ran %d times, want once before each of the 2 waits", notes)
	}
}

// replay replays h with DeliveryWorkflow changed as c says.
func replay(t *testing.T, h *historypb.History, c change) error {
	t.Helper()
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		Interceptors: []interceptor.WorkerInterceptor{&rollout{change: c}},
	})
	if err != nil {
		t.Fatal(err)
	}
	Register(r)
	// Quiet: a failed replay logs the workflow's panic and stack at length.
	return r.ReplayWorkflowHistory(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), h)
}

// historyAndParkedPrefix loads a recorded history whole and, if it waited,
// cut just after its first backoff timer started: the delivery as the old
// code left it, parked in backoff, when the new code is deployed.
func historyAndParkedPrefix(t *testing.T, file string) map[string]*historypb.History {
	t.Helper()
	load := func(last int64) *historypb.History {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{LastEventID: last})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return h
	}
	whole := load(0)
	out := map[string]*historypb.History{"whole history": whole}
	for _, e := range whole.Events {
		if e.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED {
			out["parked in backoff"] = load(e.GetEventId())
			break
		}
	}
	if recordedHistories[file] != (len(out) == 2) {
		t.Fatalf("%s: waited in backoff is %t, but the history has %d timers", file, recordedHistories[file], len(out)-1)
	}
	return out
}

func isNondeterminism(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "TMPRL1100") || strings.Contains(err.Error(), "nondeterministic"))
}

// rollout applies the change to DeliveryWorkflow's backoff timers.
type rollout struct {
	interceptor.WorkerInterceptorBase
	change change
}

func (r *rollout) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	in := &rolloutInbound{change: r.change}
	in.Next = next
	return in
}

type rolloutInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	change change
}

func (in *rolloutInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	out := &rolloutOutbound{change: in.change}
	out.Next = outbound
	return in.Next.Init(out)
}

type rolloutOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	change change
}

func (out *rolloutOutbound) NewTimer(ctx workflow.Context, d time.Duration) workflow.Future {
	out.beforeWait(ctx)
	return out.Next.NewTimer(ctx, d)
}

func (out *rolloutOutbound) NewTimerWithOptions(ctx workflow.Context, d time.Duration, opts workflow.TimerOptions) workflow.Future {
	out.beforeWait(ctx)
	return out.Next.NewTimerWithOptions(ctx, d, opts)
}

// beforeWait is the change: the new step, guarded or not.
func (out *rolloutOutbound) beforeWait(ctx workflow.Context) {
	switch out.change {
	case guarded:
		if workflow.GetVersion(ctx, noteBackoffChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			return // a delivery that started before the change: the old path
		}
	case oldBranchRemoved:
		workflow.GetVersion(ctx, noteBackoffChange, 1, 1)
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	// Its failure would not matter to the delivery; the replay checks commands only.
	_ = workflow.ExecuteActivity(ctx, noteBackoffActivity).Get(ctx, nil)
}
