package tests

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// scrape returns the value of every sample whose name and labels contain all of want.
func scrape(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+)$`)
	for _, l := range strings.Split(string(body), "\n") {
		m := sample.FindStringSubmatch(l)
		if m == nil || m[1] != name {
			continue
		}
		match := true
		for _, want := range labels {
			match = match && strings.Contains(m[2], want)
		}
		if match {
			v, _ := strconv.ParseFloat(m[3], 64)
			sum += v
		}
	}
	return sum
}

// After some deliveries the worker's /metrics shows hookrelay's counters
// (attempts by outcome and endpoint, latency, deliveries by final status)
// next to the SDK's.
func TestWorkerServesMetrics(t *testing.T) {
	rc := newReceiver(t, failFirst(1, http.StatusInternalServerError))
	gone := newReceiver(t, always(http.StatusGone))
	endpoints := writeEndpoints(t,
		testenv.Endpoint{ID: "metrics-acme", URL: rc.URL, Events: []string{event.Delivered}, RetrySchedule: []time.Duration{100 * time.Millisecond}},
		testenv.Endpoint{ID: "metrics-gone", URL: gone.URL, Events: []string{event.Opened}})
	w := startWorker(t, endpoints, "--metrics-listen", "127.0.0.1:0")
	addr, err := w.LoggedAddr("metrics serving")
	if err != nil {
		t.Fatalf("the worker logged no metrics address: %v\n%s", err, w.Log())
	}

	var ids []string
	for i := range 3 {
		ids = append(ids, send(t, endpoints, sampleEvent(event.Delivered, 900+i))[0].WorkflowID)
	}
	ids = append(ids, send(t, endpoints, sampleEvent(event.Opened, 910))[0].WorkflowID)
	for _, id := range ids {
		result(t, id)
	}

	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hookrelay_attempts_total", []string{`endpoint="metrics-acme"`, `outcome="http_error"`}, 3},
		{"hookrelay_attempts_total", []string{`endpoint="metrics-acme"`, `outcome="delivered"`}, 3},
		{"hookrelay_attempts_total", []string{`endpoint="metrics-gone"`, `outcome="gone"`}, 1},
		{"hookrelay_attempt_latency_seconds_count", []string{`endpoint="metrics-acme"`}, 6},
		{"hookrelay_deliveries_total", []string{`endpoint="metrics-acme"`, `status="delivered"`}, 3},
		{"hookrelay_deliveries_total", []string{`endpoint="metrics-gone"`, `status="failed"`}, 1},
	}
	for _, c := range checks {
		var got float64
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%s%v to reach %g", c.name, c.labels, c.want), func() bool {
			got = scrape(t, addr, c.name, c.labels...)
			return got == c.want
		})
	}
	// A delivery's final status is its close status: three completed, the 410 one failed.
	if n := scrape(t, addr, "temporal_workflow_completed_total", `workflow_type="`+workflows.DeliveryWorkflowName+`"`); n < 3 {
		t.Errorf("the SDK's temporal_workflow_completed_total = %g, want at least 3", n)
	}
	if n := scrape(t, addr, "temporal_workflow_failed_total", `workflow_type="`+workflows.DeliveryWorkflowName+`"`); n < 1 {
		t.Errorf("the SDK's temporal_workflow_failed_total = %g, want at least 1", n)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}
