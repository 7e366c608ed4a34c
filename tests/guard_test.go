package tests

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// Without --allow-cidr the guard refuses loopback: each delivery fails on its
// first attempt as blocked_destination, despite a retry schedule, and the
// receiver never sees a connection.
func TestBlockedDestinationFailsAtOnce(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	_, port, _ := net.SplitHostPort(rc.Addr)
	retry := []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}
	endpoints := writeEndpoints(t,
		testenv.Endpoint{ID: "loopback", URL: rc.URL + "/hooks?token=fake-token", RetrySchedule: retry},
		testenv.Endpoint{ID: "mapped", URL: "http://[::ffff:127.0.0.1]:" + port + "/hooks", RetrySchedule: retry})
	w := testenv.StartT(t, hookrelay(t).Worker("worker", "--endpoints", endpoints)) // no --allow-cidr: the guard refuses loopback

	lines := send(t, endpoints, sampleEvent(event.PermanentFailure, 7743))
	if len(lines) != 2 {
		t.Fatalf("send = %+v", lines)
	}
	for _, l := range lines {
		st := result(t, l.WorkflowID)
		if st.Status != workflows.StatusFailed || len(st.Attempts) != 1 {
			t.Fatalf("%s: %+v, want failed after one attempt", l.WorkflowID, st)
		}
		a := st.Attempts[0]
		if a.Outcome != workflows.OutcomeBlockedDestination || !strings.Contains(a.Error, "loopback 127.0.0.0/8") || strings.Contains(a.Error, "fake-token") {
			t.Fatalf("%s: attempt %+v", l.WorkflowID, a)
		}
		out, _, code := starter(t, "", "status", l.WorkflowID)
		if code != 0 || !strings.Contains(out, "blocked_destination") || !strings.Contains(out, "failed") {
			t.Fatalf("starter status (exit %d):\n%s", code, out)
		}
	}
	if n := len(rc.Requests()); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
	testenv.Eventually(t, 10*time.Second, "two audit lines", func() bool {
		return strings.Count(w.Log(), `"outcome":"blocked_destination"`) == 2
	})
	testenv.Eventually(t, 20*time.Second, "visibility to show both failed", func() bool {
		n, err := testenv.CountWorkflows(context.Background(), temporal, fmt.Sprintf("TaskQueue = %q AND %s", taskQueue(t), statusQuery(t, workflows.StatusFailed)))
		return err == nil && n == 2
	})
}
