package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// A forged plaintext start ends invalid_input, and resending it does not
// launder it: `starter resend` refuses it, naming the reason, and starts no
// run (so nothing is POSTed); `resend --query` reports it refused and still
// resends the genuine delivery it also matches. Only --reseal-plaintext,
// meant for migrations, re-seals it and gets it delivered.
func TestResendRefusesForgedStart(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "reseal-target", rc.URL, "    retry_schedule: [1s]\n")
	body := `{"event_name":"api_mail_log_delivered","payload":{"id":9101,"time":"2026-04-18T20:27:25.379Z","subject":"Forged subject (fake)"}}`
	forge := func(n int) string {
		input := fmt.Sprintf(`{"endpoint_id":"reseal-target","event_id":"forged-%d","event_name":%q,"mail_log_id":9101,"body":%s,"retry_schedule":[1000000000],"timeout":2000000000}`,
			n, event.Delivered, body)
		id := fmt.Sprintf("reseal-target:forged-%d", n)
		attackerCLI(t, "workflow", "start", "--type", workflows.DeliveryWorkflowName, "--task-queue", taskQueue(t),
			"--workflow-id", id, "--input", input)
		return id
	}

	// Open (no worker yet): retry-now, with or without --wait, refuses it.
	open := forge(1)
	for _, args := range [][]string{{"retry-now", open}, {"retry-now", open, "--wait"}} {
		if _, errOut, code := starter(t, "", args...); code != 1 || !strings.Contains(errOut, "did not arrive sealed") {
			t.Fatalf("%v of an open forged start: exit %d, stderr %q; want 1 naming the reason", args, code, errOut)
		}
	}

	startWorker(t, endpoints)
	forged := forge(0)
	if st := result(t, forged); st.Status != workflows.StatusFailed || len(st.Attempts) != 1 || st.Attempts[0].Outcome != workflows.OutcomeInvalidInput {
		t.Fatalf("forged delivery: %+v, want failed after one invalid_input attempt", st)
	}
	genuine := send(t, endpoints, sampleEvent(event.Delivered, 9102))[0].WorkflowID
	if st := result(t, genuine); st.Status != workflows.StatusDelivered || len(rc.Requests()) != 1 {
		t.Fatalf("a genuine event: %+v, %d requests", st, len(rc.Requests()))
	}
	forgedRun := latestRun(t, forged)

	_, errOut, code := starter(t, "", "resend", forged)
	if code != 1 || !strings.Contains(errOut, "did not arrive sealed") || !strings.Contains(errOut, forged) {
		t.Fatalf("resend of a forged start: exit %d, stderr %q; want 1 naming the delivery and the reason", code, errOut)
	}
	if run := latestRun(t, forged); run != forgedRun {
		t.Fatalf("the refused resend started run %s", run)
	}

	query := fmt.Sprintf("WorkflowId = '%s' OR WorkflowId = '%s'", forged, genuine)
	testenv.Eventually(t, 30*time.Second, "visibility to list both deliveries", func() bool {
		out, _, code := starter(t, "", "list", "--query", query, "--output", "json")
		return code == 0 && strings.Count(out, "\n") == 2
	})
	out, errOut, code := starter(t, "", "resend", "--query", query, "--yes", "--output", "json")
	if code != 1 || !strings.Contains(errOut, "1 of 2 failed") {
		t.Fatalf("resend --query over a forged and a genuine delivery: exit %d\n%s\n%s", code, out, errOut)
	}
	lines := map[string]map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v map[string]string
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("resend --query output %q: %v", l, err)
		}
		lines[v["delivery_id"]] = v
	}
	if !strings.Contains(lines[forged]["error"], "did not arrive sealed") || !strings.HasPrefix(lines[genuine]["result"], "resent (run ") {
		t.Fatalf("resend --query lines: %v", lines)
	}
	if st := result(t, genuine); st.Status != workflows.StatusDelivered || len(rc.Requests()) != 2 {
		t.Fatalf("the genuine delivery after the bulk resend: %+v, %d requests", st, len(rc.Requests()))
	}
	if run := latestRun(t, forged); run != forgedRun {
		t.Fatalf("the bulk resend started forged run %s", run)
	}
	for _, r := range rc.Requests() {
		if strings.Contains(string(r.Body), "Forged subject") {
			t.Fatalf("the receiver got the forged event before --reseal-plaintext")
		}
	}

	if _, errOut, code := starter(t, "", "resend", "--reseal-plaintext", forged); code != 0 {
		t.Fatalf("resend --reseal-plaintext: exit %d: %s", code, errOut)
	}
	if st := result(t, forged); st.Status != workflows.StatusDelivered {
		t.Fatalf("forged delivery after resend --reseal-plaintext: %+v", st)
	}
	reqs := rc.Requests()
	if len(reqs) != 3 || !strings.Contains(string(reqs[2].Body), "Forged subject") {
		t.Fatalf("after resend --reseal-plaintext the receiver has %d requests, want the re-sealed one last", len(reqs))
	}
}

// latestRun is the run id of a workflow's latest run.
func latestRun(t *testing.T, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	desc, err := temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	return desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}
