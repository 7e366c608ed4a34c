package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// Histories recorded from the dev server (fake data only) by `make demo`: a
// delivery that got two 503s with Retry-After and then a 200, and one that
// got a 410; by scripts/record-histories.sh: a cancel signal during a wait,
// a retry-now update during a wait, and a resend run of a delivered event.
// Replaying them catches non-deterministic changes to DeliveryWorkflow; a
// deliberate change needs workflow.GetVersion, and keeps these files.
func TestReplayRecordedHistories(t *testing.T) {
	for _, file := range []string{
		"testdata/delivery_retried_history.json",
		"testdata/delivery_gone_history.json",
		"testdata/delivery_canceled_history.json",
		"testdata/delivery_retry_now_history.json",
		"testdata/delivery_resent_history.json",
	} {
		t.Run(file, func(t *testing.T) {
			replayer := worker.NewWorkflowReplayer()
			Register(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replay %s: %v", file, err)
			}
		})
	}
}
