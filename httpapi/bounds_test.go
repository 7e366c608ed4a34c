package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/registry"
)

// boundCase is a value of one field just inside a bound and just outside
// it: the refusal names field and bound.
type boundCase struct {
	name            string
	key             string
	inside, outside any
	field, bound    string
}

// checkBoundCases POSTs and PATCHes (to the endpoint id) each case's value
// just inside, which is accepted, and just outside, which is 422 naming the
// field and the bound.
func checkBoundCases(t *testing.T, h http.Handler, id string, cases []boundCase) {
	t.Helper()
	for _, c := range cases {
		body := func(v any) string {
			b, _ := json.Marshal(map[string]any{"url": "https://hooks.example.com/", "events": []string{"*"}, c.key: v})
			return string(b)
		}
		for _, target := range []struct{ method, path string }{{"POST", endpointsPath}, {"PATCH", endpointsPath + "/" + id}} {
			if w := do(t, h, target.method, target.path, body(c.inside)); w.Code != 201 && w.Code != 200 {
				t.Errorf("%s %s just inside (%v): %d %s", target.method, c.name, c.inside, w.Code, w.Body)
			}
			w := do(t, h, target.method, target.path, body(c.outside))
			e := decode[apiError](t, w)
			if w.Code != 422 || e.Field != c.field || !strings.Contains(e.Error, c.bound) {
				t.Errorf("%s %s just outside (%v): %d %+v, want 422 on %s naming %s", target.method, c.name, c.outside, w.Code, e, c.field, c.bound)
			}
		}
	}
}

// Every bound on an endpoint's values, at registration and update: a value
// just inside is accepted; one just outside is 422 naming the field and
// the bound, and changes nothing.
func TestEndpointBounds(t *testing.T) {
	r := newRegistry(t)
	h := endpointServer(t, r, nil)
	w := do(t, h, "POST", endpointsPath, `{"url":"https://hooks.example.com/","events":["*"]}`)
	existing := decode[registry.View](t, w)
	ones := func(n int) []string { return strings.Split(strings.Repeat("1s,", n-1)+"1s", ",") }
	checkBoundCases(t, h, existing.ID, []boundCase{
		{"timeout", "timeout", "30s", "30001ms", "timeout", "30s"},
		{"probe_every", "circuit", map[string]any{"probe_every": []string{"5s", "1m"}}, map[string]any{"probe_every": []string{"1m", "4s"}}, "circuit.probe_every[1]", "5s"},
		{"drain_per_second", "circuit", map[string]any{"drain_per_second": 0.1}, map[string]any{"drain_per_second": 0.099}, "circuit.drain_per_second", "0.1"},
		{"drain_per_second tiny", "circuit", map[string]any{"drain_per_second": 1}, map[string]any{"drain_per_second": 1e-9}, "circuit.drain_per_second", "0.1"},
		{"open_after", "circuit", map[string]any{"open_after": 1000}, map[string]any{"open_after": 1001}, "circuit.open_after", "1000"},
		{"park_limit", "circuit", map[string]any{"park_limit": "720h"}, map[string]any{"park_limit": "720h1s"}, "circuit.park_limit", "720h"},
		{"retry_schedule steps", "retry_schedule", ones(30), ones(31), "retry_schedule", "30"},
		{"max_in_flight", "max_in_flight", 100, 101, "max_in_flight", "1 to 100"},
		{"max_in_flight zero", "max_in_flight", 1, 0, "max_in_flight", "1 to 100"},
		{"rate_limit", "rate_limit", 1000, 1000.5, "rate_limit", "0.1 to 1000"},
		{"rate_limit tiny", "rate_limit", 0.1, 1e-9, "rate_limit", "0.1 to 1000"},
		{"retry_schedule total", "retry_schedule", []string{"168h", "168h", "168h", "168h", "48h"}, []string{"168h", "168h", "168h", "168h", "48h", "1s"}, "retry_schedule", "720h"},
	})
	got := decode[registry.View](t, do(t, h, "GET", endpointsPath+"/"+existing.ID, ""))
	if *got.Circuit.OpenAfter != 1000 || *got.Circuit.DrainPerSecond != 1 || *got.Circuit.ParkLimit != "720h" || got.Timeout != "30s" || len(got.RetrySchedule) != 5 ||
		got.MaxInFlight != 1 || got.RateLimit != 0.1 {
		t.Fatalf("after the patches: %+v, want each last value inside its bound", got)
	}
}

// max_in_flight and rate_limit under bounds narrowed by flag
// (--max-in-flight-limit 5, --min-rate-limit 1, --max-rate-limit 50):
// registration and update past them are 422 naming the field and the
// narrowed bound; the default max_in_flight is brought within it, and no
// rate limit stays allowed.
func TestEndpointNarrowedThrottleBounds(t *testing.T) {
	b := endpoint.DefaultBounds()
	b.MaxInFlight, b.MinRateLimit, b.MaxRateLimit = 5, 1, 50
	h := endpointServer(t, newRegistryWith(t, b), nil)
	existing := decode[registry.View](t, do(t, h, "POST", endpointsPath, `{"url":"https://hooks.example.com/","events":["*"]}`))
	if existing.MaxInFlight != 5 || existing.RateLimit != 0 {
		t.Fatalf("registered without max_in_flight or rate_limit: %d, %g; want 5 (the narrowed bound), 0", existing.MaxInFlight, existing.RateLimit)
	}
	checkBoundCases(t, h, existing.ID, []boundCase{
		{"max_in_flight", "max_in_flight", 5, 6, "max_in_flight", "1 to 5"},
		{"rate_limit", "rate_limit", 50, 50.5, "rate_limit", "1 to 50 requests"},
		{"rate_limit slow", "rate_limit", 1, 0.9, "rate_limit", "1 to 50 requests"},
		{"rate_limit none", "rate_limit", 0, 0.5, "rate_limit", "1 to 50 requests"},
	})
	got := decode[registry.View](t, do(t, h, "GET", endpointsPath+"/"+existing.ID, ""))
	if got.MaxInFlight != 5 || got.RateLimit != 0 {
		t.Fatalf("after the patches: max_in_flight %d, rate_limit %g; want 5 and 0, the last values inside", got.MaxInFlight, got.RateLimit)
	}
}

// The endpoint quota: registration past it is 422 on account_id naming
// the quota, and registers nothing; another account is not counted.
func TestEndpointQuota(t *testing.T) {
	b := endpoint.DefaultBounds()
	b.MaxEndpointsPerAccount = 2
	h := endpointServer(t, newRegistryWith(t, b), nil)
	body := `{"url":"https://hooks.example.com/","events":["*"]}`
	for range 2 {
		if w := do(t, h, "POST", endpointsPath, body); w.Code != 201 {
			t.Fatalf("within the quota: %d %s", w.Code, w.Body)
		}
	}
	w := do(t, h, "POST", endpointsPath, body)
	e := decode[apiError](t, w)
	if w.Code != 422 || e.Field != "account_id" || !strings.Contains(e.Error, "max-endpoints-per-account: 2") {
		t.Fatalf("past the quota: %d %+v, want 422 on account_id naming max-endpoints-per-account", w.Code, e)
	}
	if list := decode[endpointList](t, do(t, h, "GET", endpointsPath, "")); len(list.Endpoints) != 2 {
		t.Fatalf("%d endpoints listed after a refused registration, want 2", len(list.Endpoints))
	}
	if w := do(t, h, "POST", "/v1/accounts/acct_2/endpoints", body); w.Code != 201 {
		t.Fatalf("another account: %d %s", w.Code, w.Body)
	}
}
