package metrics

import (
	"io"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The endpoint label takes at most N values besides "other": the first N
// endpoints with traffic keep theirs, the rest are counted together, and a
// state gauge never admits an endpoint.
func TestEndpointLabelsAreBounded(t *testing.T) {
	reg := New(2)
	h := reg.Handler()
	h.WithTags(map[string]string{"endpoint": "ep-gauge-only", "state": "closed"}).Gauge(EndpointState).Update(1)
	for i, id := range []string{"ep-a", "ep-b", "ep-c", "ep-d", "ep-a", "ep-e"} {
		m := h.WithTags(map[string]string{"endpoint": id})
		m.WithTags(map[string]string{"outcome": "success"}).Counter(Attempts).Inc(1)
		m.Timer(AttemptLatency).Record(0)
		if i == 0 {
			h.WithTags(map[string]string{"endpoint": "ep-gauge-only", "state": "closed"}).Gauge(EndpointState).Update(1)
		}
	}
	reg.Close() // flushes to the Prometheus registry
	rec := httptest.NewRecorder()
	reg.reporter.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	var labels []string
	for _, m := range regexp.MustCompile(`endpoint="([^"]*)"`).FindAllStringSubmatch(string(body), -1) {
		if !slices.Contains(labels, m[1]) {
			labels = append(labels, m[1])
		}
	}
	slices.Sort(labels)
	if !slices.Equal(labels, []string{"ep-a", "ep-b", "other"}) {
		t.Fatalf("endpoint labels %v, want ep-a, ep-b and other", labels)
	}
	for _, want := range []string{
		`hookrelay_attempts_total{endpoint="ep-a",outcome="success"} 2`,
		`hookrelay_attempts_total{endpoint="other",outcome="success"} 3`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
}
