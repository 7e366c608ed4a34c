package activities

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

// An activity that ends within its first interval sends no heartbeat (each
// is a billable action); a longer one heartbeats.
func TestHeartbeatWhileRunningWaitsAnInterval(t *testing.T) {
	const every = 100 * time.Millisecond
	for _, tt := range []struct {
		runs     time.Duration
		min, max int64
	}{
		{every / 4, 0, 0},
		{every*3 + every/2, 1, 3}, // the test environment sends the first and batches the rest
	} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		var beats atomic.Int64
		env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) { beats.Add(1) })
		env.RegisterActivityWithOptions(func(ctx context.Context) error {
			defer heartbeatWhileRunning(ctx, every)()
			time.Sleep(tt.runs)
			return nil
		}, activity.RegisterOptions{Name: "run"})
		if _, err := env.ExecuteActivity("run"); err != nil {
			t.Fatal(err)
		}
		if n := beats.Load(); n < tt.min || n > tt.max {
			t.Errorf("an activity of %s heartbeat %d times, want %d to %d", tt.runs, n, tt.min, tt.max)
		}
	}
}
