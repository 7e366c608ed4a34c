package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// historyLength is the number of events in a delivery's current run.
func historyLength(t *testing.T, id string) int64 {
	t.Helper()
	desc, err := rawTemporal.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	return desc.GetWorkflowExecutionInfo().GetHistoryLength()
}

// settled waits until a delivery has made want attempts and has no
// workflow task pending, and returns its history length then.
func settled(t *testing.T, id string, want int) int64 {
	t.Helper()
	var n int64
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%s to make %d attempts and settle", id, want), func() bool {
		st, err := statusOf(id)
		if err != nil || len(st.Attempts) != want || st.Status != workflows.StatusRetrying {
			return false
		}
		desc, err := rawTemporal.DescribeWorkflowExecution(context.Background(), id, "")
		if err != nil || desc.GetPendingWorkflowTask() != nil || len(desc.GetPendingActivities()) > 0 {
			return false
		}
		n = desc.GetWorkflowExecutionInfo().GetHistoryLength()
		return true
	})
	return n
}

// TestResendAndRetryNowBoundedPerHour: five resends and retry-nows of a
// delivery within the hour are accepted; the sixth is refused, by the CLI
// (non-zero exit naming the limit) and the API (429 with Retry-After), and
// adds nothing to the delivery's history; signals sent straight to the
// frontend past the bound POST nothing and add a few events each.
func TestResendAndRetryNowBoundedPerHour(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [1h, 1h, 1h, 1h, 1h, 1h, 1h, 1h, 1h, 1h]\n")
	startWorker(t, endpoints)
	srv := startServe(t, hookrelay(t), endpoints)
	id := parkedDelivery(t, endpoints, 331)

	for i := range workflows.MaxOperatorAttempts {
		verb := "resend"
		if i%2 == 1 {
			verb = "retry-now"
		}
		if _, errOut, code := starter(t, "", verb, id); code != 0 {
			t.Fatalf("%s %d of %d exited %d: %s", verb, i+1, workflows.MaxOperatorAttempts, code, errOut)
		}
		settled(t, id, i+2)
	}
	before := settled(t, id, 1+workflows.MaxOperatorAttempts)
	posts := len(rc.Requests())

	_, errOut, code := starter(t, "", "resend", id)
	if code == 0 || !strings.Contains(errOut, "at most 5 per delivery per hour") {
		t.Fatalf("the sixth resend exited %d: %q, want non-zero naming the limit", code, errOut)
	}
	if _, errOut, code := starter(t, "", "retry-now", id, "--wait"); code == 0 || !strings.Contains(errOut, "too many resends and retry-nows") {
		t.Fatalf("a retry-now over the bound exited %d: %q", code, errOut)
	}
	resp, err := srv.do(http.MethodPost, "/v1/deliveries/"+id+"/resend", nil, nil)
	if err != nil || resp.code != http.StatusTooManyRequests {
		t.Fatalf("resend over the API: %d %s %v, want 429", resp.code, resp.body, err)
	}
	if s, err := strconv.Atoi(resp.header.Get("Retry-After")); err != nil || s < 1 || s > 3600 {
		t.Fatalf("Retry-After %q, want the seconds until the hour is over", resp.header.Get("Retry-After"))
	}
	if after := historyLength(t, id); after != before {
		t.Fatalf("refused requests grew the history from %d to %d events", before, after)
	}

	// A client straight to the frontend: the signals are recorded, but do nothing.
	const direct = 3
	for range direct {
		if err := rawTemporal.SignalWorkflow(context.Background(), id, "", workflows.ResendSignal, nil); err != nil {
			t.Fatal(err)
		}
	}
	after := settled(t, id, 1+workflows.MaxOperatorAttempts)
	// Each: the signal and a workflow task (3 events); once, the bound's
	// version marker and its search attribute.
	if grew := after - before; grew < direct || grew > direct*4+2 {
		t.Fatalf("%d signals over the bound grew the history by %d events, want at most 4 each and 2 once", direct, grew)
	}
	if len(rc.Requests()) != posts {
		t.Fatalf("signals over the bound POSTed %d more times", len(rc.Requests())-posts)
	}
	st, _ := statusOf(id)
	if len(st.Actions) != workflows.MaxOperatorAttempts {
		t.Fatalf("actions = %+v, want the %d accepted", st.Actions, workflows.MaxOperatorAttempts)
	}
}

// TestResendOfAClosedDeliveryBoundedPerHour: each resend of a delivered
// delivery is a new run; the bound counts across them, so the sixth resend
// within the hour is refused and starts nothing.
func TestResendOfAClosedDeliveryBoundedPerHour(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL, "")
	startWorker(t, endpoints)
	first := send(t, endpoints, sampleEvent(event.Delivered, 332))[0]
	result(t, first.WorkflowID)

	for i := range workflows.MaxOperatorAttempts {
		if _, errOut, code := starter(t, "", "resend", first.WorkflowID); code != 0 {
			t.Fatalf("resend %d exited %d: %s", i+1, code, errOut)
		}
		testenv.Eventually(t, 30*time.Second, "the resend to be delivered", func() bool { return len(rc.Requests()) == i+2 })
		if st := result(t, first.WorkflowID); st.Status != workflows.StatusDelivered {
			t.Fatalf("resend %d: %+v", i+1, st)
		}
	}
	desc, err := rawTemporal.DescribeWorkflowExecution(context.Background(), first.WorkflowID, "")
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code := starter(t, "", "resend", first.WorkflowID)
	if code == 0 || !strings.Contains(errOut, "at most 5 per delivery per hour") {
		t.Fatalf("the sixth resend exited %d: %q, want non-zero naming the limit", code, errOut)
	}
	after, err := rawTemporal.DescribeWorkflowExecution(context.Background(), first.WorkflowID, "")
	if err != nil || after.GetWorkflowExecutionInfo().GetExecution().GetRunId() != desc.GetWorkflowExecutionInfo().GetExecution().GetRunId() {
		t.Fatalf("the refused resend started a new run (%v)", err)
	}
	if n := len(rc.Requests()); n != 1+workflows.MaxOperatorAttempts {
		t.Fatalf("%d POSTs, want the first and %d resends", n, workflows.MaxOperatorAttempts)
	}
}

// TestLongDeliveryContinuesAsNew: on a server that suggests continuing as
// new after 60 events, a waiting delivery that keeps receiving signals
// continues as new with the same delivery id: its status (attempts,
// actions) and search attributes answer from the new run, the bound on
// operators carries over (a retry-now is still refused), and a cancel
// reaches it.
func TestLongDeliveryContinuesAsNew(t *testing.T) {
	opts := testenv.DevServerOptions{ExtraArgs: []string{"--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60"}}
	ds := startOwnDevServer(t, opts)
	h := on(hookrelay(t), ds.FrontendHostPort())
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [1h, 1h, 1h, 1h, 1h, 1h, 1h, 1h, 1h, 1h]\n")
	testenv.StartT(t, h.Worker("worker", "--endpoints", endpoints, "--allow-cidr", "127.0.0.0/8"))
	tc, err := temporalclient.DialLazy(h.Options(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	dc := localPublisher(t, tc, endpoints)
	ctx := context.Background()
	started, err := dc.PublishJSON(ctx, []byte(sampleEvent(event.Delivered, 333)))
	if err != nil || len(started) != 1 {
		t.Fatalf("publish: %+v %v", started, err)
	}
	id, firstRun := started[0].DeliveryID, started[0].RunID
	testenv.Eventually(t, 30*time.Second, "the delivery to wait for its retry", func() bool {
		st, err := dc.Status(ctx, id)
		return err == nil && st.Status == workflows.StatusRetrying
	})

	// Five retry-nows act (five POSTs); the signals after them are dropped,
	// each a few events, until the run continues as new.
	for i := range workflows.MaxOperatorAttempts {
		if _, err := dc.RetryNowWait(ctx, id); err != nil {
			t.Fatalf("retry-now %d: %v", i+1, err)
		}
	}
	var newRun string
	for i := 0; newRun == ""; i++ {
		if i == 40 {
			t.Fatal("40 signals over the bound, and the run did not continue as new")
		}
		if err := tc.SignalWorkflow(ctx, id, "", workflows.RetryNowSignal, nil); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "the signal to be handled", func() bool {
			desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
			if err != nil || desc.GetPendingWorkflowTask() != nil {
				return false
			}
			if run := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(); run != firstRun {
				newRun = run
			}
			return true
		})
	}
	old, err := tc.DescribeWorkflowExecution(ctx, id, firstRun)
	if err != nil || old.GetWorkflowExecutionInfo().GetStatus().String() != "ContinuedAsNew" || old.GetWorkflowExecutionInfo().GetHistoryLength() > 200 {
		t.Fatalf("the first run: %v, %v", old.GetWorkflowExecutionInfo(), err)
	}

	st, err := dc.Status(ctx, id)
	if err != nil || st.Status != workflows.StatusRetrying || len(st.Attempts) != 1+workflows.MaxOperatorAttempts ||
		len(st.Actions) != workflows.MaxOperatorAttempts || st.DeliveryID != id || st.NextAttemptAt == nil {
		t.Fatalf("status from the new run: %+v %v", st, err)
	}
	// The search attributes as the first run left them (HookrelayAttempts is
	// upserted with a change of status only), on the new run.
	var listed []deliveries.Listed
	testenv.Eventually(t, 30*time.Second, "visibility to list the new run", func() bool {
		listed, err = dc.List(ctx, fmt.Sprintf("HookrelayEndpoint = 'acme' AND %s", workflows.StatusRetrying.VisibilityQuery()))
		return err == nil && len(listed) == 1 && listed[0].RunID == newRun
	})
	if l := listed[0]; l.DeliveryID != id || l.EventName != event.Delivered || l.Attempts != 1 {
		t.Fatalf("the new run listed as %+v", l)
	}
	if _, err := dc.RetryNow(ctx, id); !errors.Is(err, deliveries.ErrOperatorLimit) {
		t.Fatalf("retry-now on the new run within the hour: %v, want the bound", err)
	}
	final, err := dc.Cancel(ctx, id, "test over")
	if err != nil || final.Status != workflows.StatusCanceled || len(final.Attempts) != 1+workflows.MaxOperatorAttempts {
		t.Fatalf("cancel of the new run: %+v %v", final, err)
	}
	if n := len(rc.Requests()); n != 1+workflows.MaxOperatorAttempts {
		t.Fatalf("%d POSTs, want %d", n, 1+workflows.MaxOperatorAttempts)
	}
}
