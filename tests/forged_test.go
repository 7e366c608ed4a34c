package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	sdktemporal "go.temporal.io/sdk/temporal"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// attackerCLI runs the Temporal CLI as someone who reaches the frontend
// but holds no payload key: plaintext input, no codec.
func attackerCLI(t *testing.T, args ...string) {
	t.Helper()
	needTemporalCLI(t, "a start forged with the Temporal CLI")
	if suiteSecurity.APIKey != "" || suiteSecurity.APIKeyFile != "" {
		t.Skipf("the suite's server wants %s; the forged start is tested where a client certificate or nothing admits the CLI", suiteSecurity.Mode())
	}
	cmd := exec.Command(temporalCLI, append(args[:len(args):len(args)], temporalCLIConn()...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("temporal %s: %v\n%s", strings.Join(args[:2], " "), err, out)
	}
}

// A DeliveryWorkflow started past the codec, in plaintext through the
// Temporal CLI, names a real endpoint: the worker, which holds the keys,
// signs nothing for it. The attempt ends invalid_input, the delivery fails
// without retrying, the receiver gets nothing, and the audit line says why.
// The same worker still delivers a genuine event to that endpoint.
func TestForgedStartIsNotDelivered(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "forge-target", rc.URL, "    retry_schedule: [1s]\n")
	w := startWorker(t, endpoints)

	body := `{"event_name":"api_mail_log_delivered","payload":{"id":9001,"time":"2026-04-18T20:27:25.379Z","subject":"Forged subject (fake)"}}`
	for i, local := range []bool{true, false} {
		id := fmt.Sprintf("forge-target:forged-%d", i)
		input := fmt.Sprintf(`{"endpoint_id":"forge-target","event_id":"forged-%d","event_name":%q,"mail_log_id":9001,"body":%s,"retry_schedule":[1000000000],"timeout":2000000000,"first_attempt_local":%t}`,
			i, event.Delivered, body, local)
		attackerCLI(t, "workflow", "start", "--type", workflows.DeliveryWorkflowName, "--task-queue", taskQueue(t),
			"--workflow-id", id, "--input", input)
		st := result(t, id)
		if st.Status != workflows.StatusFailed || len(st.Attempts) != 1 || st.Attempts[0].Outcome != workflows.OutcomeInvalidInput {
			t.Fatalf("forged delivery %s (local first attempt %t): %+v, want failed after one invalid_input attempt", id, local, st)
		}
	}
	if n := len(rc.Requests()); n != 0 {
		t.Fatalf("the receiver got %d forged POSTs", n)
	}
	log := w.Log()
	if strings.Count(log, `"outcome":"invalid_input"`) != 2 || !strings.Contains(log, `"reason":"the delivery's input did not arrive encrypted with a payload key this worker holds`) {
		t.Fatalf("worker log lacks two invalid_input audit lines with the reason:\n%s", log)
	}

	id := send(t, endpoints, sampleEvent(event.Delivered, 9002))[0].WorkflowID
	if st := result(t, id); st.Status != workflows.StatusDelivered || len(rc.Requests()) != 1 {
		t.Fatalf("a genuine event: %+v, %d requests", st, len(rc.Requests()))
	}
}

// The endpoint health workflow takes no forged input either: a plaintext
// start (which would disable the endpoint with settings of its own) fails
// at once, and plaintext signals (a disable with a reason a notice would
// sign, failure reports that would open the circuit) are dropped, while the
// operators' own sealed signals work.
func TestForgedHealthInputIsRefused(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	eps := endpointsFile(t, "forge-health", rc.URL, "")
	w := startWorker(t, eps, "--circuit-refresh", "200ms")
	healthID := workflows.HealthWorkflowID("forge-health")

	attackerCLI(t, "workflow", "start", "--type", workflows.HealthWorkflowName, "--task-queue", taskQueue(t), "--workflow-id", healthID,
		"--input", `{"endpoint_id":"forge-health","circuit":{"open_after":1,"probe_every":[3600000000000],"drain_per_second":10000,"disable_after":1000000000},"state":{"endpoint_id":"forge-health","state":"disabled"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := temporal.GetWorkflow(ctx, healthID, "").Get(ctx, nil)
	var appErr *sdktemporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != "InvalidInput" {
		t.Fatalf("forged health start ended %v, want an InvalidInput failure", err)
	}

	dc := healthClient(t, eps)
	if st, err := dc.SteerEndpoint(ctx, "forge-health", workflows.PauseSignal, "genuine pause (fake)"); err != nil || st.State != workflows.CircuitPaused {
		t.Fatalf("genuine pause: %+v %v", st, err)
	}
	attackerCLI(t, "workflow", "signal", "--workflow-id", healthID, "--name", workflows.DisableSignal, "--input", `{"reason":"forged reason 7741"}`)
	attackerCLI(t, "workflow", "signal", "--workflow-id", healthID, "--name", workflows.ResumeSignal)
	for range 3 {
		attackerCLI(t, "workflow", "signal", "--workflow-id", healthID, "--name", workflows.FailureSignal, "--input",
			`{"endpoint_id":"forge-health","delivery_id":"forge-health:x","outcome":"http_error","at":"2099-01-01T00:00:00Z","circuit":{"open_after":1,"probe_every":[3600000000000],"drain_per_second":10000,"disable_after":1000000000}}`)
	}
	// Sent after the forged ones, so applied after them.
	st, err := dc.SteerEndpoint(ctx, "forge-health", workflows.ResumeSignal, "genuine resume (fake)")
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range st.Actions {
		actions = append(actions, a.Name+":"+a.Reason)
	}
	if st.State == workflows.CircuitDisabled || st.State == workflows.CircuitOpen || st.ConsecutiveFailures != 0 ||
		strings.Contains(strings.Join(actions, " "), "forged") || strings.Count(strings.Join(actions, " "), "resume:") != 1 {
		t.Fatalf("after forged signals: state %s, %d failures, actions %q; want only the genuine pause and resume", st.State, st.ConsecutiveFailures, actions)
	}
	if n := strings.Count(w.Log(), "signal ignored: it did not arrive sealed"); n != 5 {
		t.Fatalf("worker logged %d ignored signals, want 5:\n%s", n, w.Log())
	}

	// An operator's Temporal CLI, given the codec server, seals its input: that signal counts.
	codecToken := "operator-codec-token-not-secret-0123456789"
	spec := hookrelay(t).Spec("codec-server", "worker", "codec-server", "--listen", "127.0.0.1:0",
		"--codec-key-file", codecKeyFile, "--token-file", writeFile(t, "codec-token", codecToken+"\n"))
	spec.Ready = `"msg":"codec server listening"`
	addr, err := testenv.StartT(t, spec).LoggedAddr("codec server listening")
	if err != nil {
		t.Fatal(err)
	}
	cli := exec.Command(temporalCLI, append([]string{"workflow", "signal"}, append(temporalCLIConn(),
		"--workflow-id", healthID, "--name", workflows.PauseSignal, "--input", `{"reason":"operator via the CLI (fake)"}`)...)...)
	cli.Env = append(testenv.ChildEnv(), "TEMPORAL_CODEC_ENDPOINT=http://"+addr, "TEMPORAL_CODEC_AUTH=Bearer "+codecToken)
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("temporal workflow signal through the codec server: %v\n%s", err, out)
	}
	testenv.Eventually(t, 30*time.Second, "the operator's sealed pause to apply", func() bool {
		st, err := dc.EndpointHealth(ctx, "forge-health")
		return err == nil && st.State == workflows.CircuitPaused && strings.Contains(fmt.Sprint(st.Actions), "operator via the CLI")
	})
}
