package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
)

// Every history in testdata was recorded from the dev server with fake data:
// by `make demo` (delivery_retried, delivery_gone) and by
// scripts/record-histories.sh (cancel, retry-now, resend and first-try
// cases, per tag). Replaying them all catches non-deterministic changes to
// DeliveryWorkflow. A deliberate change is guarded (workflow.GetVersion, or
// an input flag such as FirstAttemptLocal) and adds recordings; old ones stay,
// since running workflows may still have those shapes.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*_history.json")
	if err != nil || len(files) < 9 {
		t.Fatalf("recorded histories: %v (%v)", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			replayer := worker.NewWorkflowReplayer()
			Register(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replay %s: %v", file, err)
			}
		})
	}
}
