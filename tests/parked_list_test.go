package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// In an outage, `starter list --status parked` lists the parked deliveries,
// in text and JSON, and deliveries.Filter{Status: parked} finds the same:
// exactly those of the failing endpoint, not the delivered ones of the
// endpoint that stayed up.
func TestListParkedDuringAnOutage(t *testing.T) {
	down := newReceiver(t, always(http.StatusServiceUnavailable))
	up := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t,
		testenv.Endpoint{ID: "list-parked-down", URL: down.URL, RetrySchedule: []time.Duration{time.Second, time.Second, time.Minute},
			Extra: "    circuit: {open_after: 3, probe_every: [1h]}\n"}, // no probe within the test: every delivery stays parked
		testenv.Endpoint{ID: "list-parked-up", URL: up.URL})
	w := startWorker(t, eps, "--circuit-refresh", "200ms")
	dc := healthClient(t, eps)

	const n = 6
	var parked, delivered []string
	for i := range n {
		started, err := dc.Publish(context.Background(), timedEvent(t, 400+i, time.Now()))
		if err != nil || len(started) != 2 {
			t.Fatalf("publish %d: %v %v", i, started, err)
		}
		for _, s := range started {
			if s.EndpointID == "list-parked-down" {
				parked = append(parked, s.DeliveryID)
			} else {
				delivered = append(delivered, s.DeliveryID)
			}
		}
	}
	slices.Sort(parked)
	waitCircuit(t, w, "list-parked-down", workflows.CircuitOpen)
	testenv.Eventually(t, time.Minute, "every delivery to the failing endpoint parked", func() bool { return parkedCount(t, "list-parked-down") == n })
	for _, id := range delivered {
		if st := result(t, id); st.Status != workflows.StatusDelivered {
			t.Fatalf("%s: %+v", id, st)
		}
	}

	onQueue := fmt.Sprintf("TaskQueue = %q", taskQueue(t))
	var got []string
	testenv.Eventually(t, 30*time.Second, "list --status parked --output json to list the parked deliveries", func() bool {
		got = listJSON(t, "parked", "--status", "parked", "--query", onQueue)
		return reflect.DeepEqual(got, parked)
	})
	if got := listText(t, "parked", "--status", "parked", "--endpoint", "list-parked-down"); !reflect.DeepEqual(got, parked) {
		t.Fatalf("list --status parked (text): %v, want %v", got, parked)
	}
	if got := listJSON(t, "parked", "--status", "parked", "--endpoint", "list-parked-up"); len(got) != 0 {
		t.Fatalf("list --status parked --endpoint list-parked-up: %v, want none", got)
	}

	q, err := deliveries.Filter{Status: string(workflows.StatusParked)}.Query()
	if err != nil {
		t.Fatal(err)
	}
	listed, err := dc.List(context.Background(), q+" AND "+onQueue)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range listed {
		if l.Status != string(workflows.StatusParked) || !l.Running || l.EndpointID != "list-parked-down" {
			t.Errorf("Filter{Status: parked} listed %+v", l)
		}
		ids = append(ids, l.DeliveryID)
	}
	if slices.Sort(ids); !reflect.DeepEqual(ids, parked) {
		t.Fatalf("Filter{Status: parked}: %v, want %v", ids, parked)
	}
}

// listJSON runs `starter list --output json` with args and returns the
// delivery ids it prints, sorted, failing the test on a line whose status
// is not status.
func listJSON(t *testing.T, status string, args ...string) []string {
	t.Helper()
	out, errOut, code := starter(t, "", append([]string{"list", "--output", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("starter list %v: exit %d: %s", args, code, errOut)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var v struct {
			DeliveryID string `json:"delivery_id"`
			Status     string `json:"status"`
			Running    bool   `json:"running"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Status != status || !v.Running {
			t.Fatalf("starter list %v: line %s (%v), want status %s, running", args, l, err, status)
		}
		ids = append(ids, v.DeliveryID)
	}
	slices.Sort(ids)
	return ids
}

// listText runs `starter list` with args and returns the delivery ids of
// its table, sorted, failing the test on a row whose status is not status.
func listText(t *testing.T, status string, args ...string) []string {
	t.Helper()
	out, errOut, code := starter(t, "", append([]string{"list"}, args...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || !strings.HasPrefix(lines[0], "DELIVERY ID") {
		t.Fatalf("starter list %v: exit %d\n%s\n%s", args, code, out, errOut)
	}
	var ids []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 2 || f[1] != status {
			t.Fatalf("starter list %v: row %q, want status %s", args, l, status)
		}
		ids = append(ids, f[0])
	}
	slices.Sort(ids)
	return ids
}
