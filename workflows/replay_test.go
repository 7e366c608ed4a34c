package workflows

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/hookrelay/hookrelay/internal/tracing"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// Every history in testdata was recorded from the dev server with fake data:
// by `make demo` (delivery_retried, delivery_gone) and by
// scripts/record-histories.sh (cancel, retry-now, resend and first-try
// cases, per tag; since signal-bounds, a delivery whose sixth resend in an
// hour was dropped, with the bounds' version marker; the recoveries by tests' TestRecoverAfterOutage, and
// a first try to a slow endpoint by TestBillableActionsPerDelivery, their
// payloads decrypted). Replaying them all catches non-deterministic changes to
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
			RegisterHealth(replayer)
			RegisterRecover(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replay %s: %v", file, err)
			}
		})
	}
}

// A worker holding payload keys decodes these plaintext histories with its
// sealing converter, which marks their inputs unsealed (Provenance): the
// refusal happens in the attempt, whose result history holds, so each
// history still replays into the same commands.
func TestReplayRecordedHistoriesWithKeys(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "codec.key")
	if err := os.WriteFile(keyFile, []byte("replay:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dc, err := temporalclient.Options{CodecKeyFile: keyFile}.DataConverter()
	if err != nil {
		t.Fatal(err)
	}
	var in DeliveryInput
	p, _ := converter.GetDefaultDataConverter().ToPayload(DeliveryInput{EndpointID: "acme"})
	if err := dc.FromPayload(p, &in); err != nil || !in.Unsealed() {
		t.Fatalf("a plaintext input through the keyed converter: unsealed %t, %v; want marked", in.Unsealed(), err)
	}
	// Deliveries only: a keyed worker fails a health workflow started in
	// plaintext at once, by design (docs/security.md, forged starts), so a
	// plaintext health recording replays only without keys (above).
	files, _ := filepath.Glob("testdata/delivery_*_history.json")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: dc})
			if err != nil {
				t.Fatal(err)
			}
			Register(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replay %s with keys: %v", file, err)
			}
		})
	}
}

// With the tracing interceptor (tracing on), every recorded history still
// replays into the same commands: workflow spans add headers, never a
// command, and none is recorded while replaying.
func TestReplayRecordedHistoriesWithTracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	i, err := tracing.Interceptor(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/*_history.json")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{Interceptors: []interceptor.WorkerInterceptor{i}})
			if err != nil {
				t.Fatal(err)
			}
			Register(replayer)
			RegisterHealth(replayer)
			RegisterRecover(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replay %s with tracing: %v", file, err)
			}
		})
	}
	for _, s := range rec.Ended() {
		if strings.HasPrefix(s.Name(), "StartActivity:") || strings.HasPrefix(s.Name(), "SignalWorkflow:") {
			t.Errorf("replay recorded %s: spans of replayed work would repeat", s.Name())
		}
	}
}
