package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// The endpoint routes run on a real registry in an SQLite file; names
// resolve through a fake resolver, so no DNS is involved.
func newRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	return newRegistryWith(t, endpoint.Bounds{})
}

// newRegistryWith is a registry holding endpoints to b.
func newRegistryWith(t *testing.T, b endpoint.Bounds) *registry.Registry {
	t.Helper()
	c := testenv.NewCodecT(t, "k1")
	g := netguard.New()
	g.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "internal.example.com" {
			return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	r, err := registry.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "e.db"), registry.Options{Codec: c, Guard: g, Bounds: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func endpointServer(t *testing.T, eps Endpoints, logs *bytes.Buffer) http.Handler {
	return newTestServer(t, &fakeDeliveries{}, func(c *Config) {
		c.Endpoints = eps
		if logs != nil {
			c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		}
	}).Handler()
}

const endpointsPath = "/v1/accounts/acct_1/endpoints"

func TestEndpointLifecycle(t *testing.T) {
	var logs bytes.Buffer
	h := endpointServer(t, newRegistry(t), &logs)
	w := do(t, h, "POST", endpointsPath, `{"url":"https://hooks.example.com/mail?token=fake-query-token","events":["api_mail_log_delivered"],"description":"CRM","timeout":"10s","retry_schedule":["5s","5m","2h"],"circuit":{"open_after":3}}`)
	created := decode[registry.View](t, w)
	if w.Code != 201 || !strings.HasPrefix(created.ID, "ep_") || !strings.HasPrefix(created.Secret, "whsec_") || created.AccountID != "acct_1" ||
		created.Timeout != "10s" || strings.Join(created.RetrySchedule, ",") != "5s,5m,2h" || !created.Enabled || created.CreatedAt == nil ||
		*created.Circuit.OpenAfter != 3 || *created.Circuit.ParkLimit != "168h" {
		t.Fatalf("create: %d %+v", w.Code, created)
	}
	one := endpointsPath + "/" + created.ID

	w = do(t, h, "GET", one, "")
	got := decode[registry.View](t, w)
	if w.Code != 200 || got.Secret != "" || got.URL != created.URL || got.Description != "CRM" {
		t.Fatalf("get: %d %+v", w.Code, got)
	}
	if w := do(t, h, "GET", "/v1/accounts/acct_2/endpoints/"+created.ID, ""); w.Code != 404 || decode[apiError](t, w).Field != "endpoint_id" {
		t.Fatalf("another account's endpoint: %d %s", w.Code, w.Body)
	}

	w = do(t, h, "PATCH", one, `{"enabled":false,"account_id":"acct_1"}`)
	if got := decode[registry.View](t, w); w.Code != 200 || got.Enabled || got.Description != "CRM" || got.Secret != "" || got.TraceContext {
		t.Fatalf("patch: %d %+v", w.Code, got)
	}
	w = do(t, h, "PATCH", one, `{"trace_context":true}`)
	if got := decode[registry.View](t, w); w.Code != 200 || !got.TraceContext || got.Enabled {
		t.Fatalf("patch trace_context: %d %+v", w.Code, got)
	}

	w = do(t, h, "POST", one+"/rotate-secret?overlap=1h", "")
	rot := decode[rotatedView](t, w)
	if w.Code != 200 || !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == created.Secret || rot.PreviousExpiresAt == nil {
		t.Fatalf("rotate: %d %+v", w.Code, rot)
	}
	w = do(t, h, "POST", one+"/rotate-secret?overlap=0", "")
	if rot := decode[rotatedView](t, w); w.Code != 200 || rot.PreviousExpiresAt != nil {
		t.Fatalf("rotate overlap=0: %d %+v", w.Code, rot)
	}

	for i := range 4 {
		do(t, h, "POST", endpointsPath, fmt.Sprintf(`{"url":"https://hooks.example.com/%d","events":["*"]}`, i))
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		w := do(t, h, "GET", endpointsPath+"?limit=2&cursor="+cursor, "")
		list := decode[endpointList](t, w)
		if w.Code != 200 || len(list.Endpoints) > 2 || pages > 3 {
			t.Fatalf("list: %d %+v", w.Code, list)
		}
		for _, e := range list.Endpoints {
			if e.Secret != "" || e.AccountID != "acct_1" {
				t.Fatalf("listed %+v", e)
			}
			seen[e.ID] = true
		}
		if list.NextCursor == "" {
			break
		}
		cursor = list.NextCursor
	}
	if len(seen) != 5 {
		t.Fatalf("listed %d endpoints, want 5", len(seen))
	}

	if w := do(t, h, "DELETE", one, ""); w.Code != 204 || w.Body.Len() != 0 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if w := do(t, h, m, one, ""); w.Code != 404 {
			t.Fatalf("%s after delete: %d", m, w.Code)
		}
	}

	// Never a secret, a URL query or a body in the logs.
	out := logs.String()
	for _, s := range []string{created.Secret, rot.Secret, "fake-query-token", "hooks.example.com", "CRM", testToken} {
		if strings.Contains(out, s) {
			t.Errorf("logs contain %q", s)
		}
	}
	if !strings.Contains(out, `"route":"POST /v1/accounts/{account_id}/endpoints"`) && !strings.Contains(out, `"route":"/v1/accounts/{account_id}/endpoints"`) {
		t.Errorf("no request line for the endpoint routes:\n%s", out)
	}
}

// Every field refused with 422 naming it, and nothing written.
func TestEndpointBadInput(t *testing.T) {
	r := newRegistry(t)
	h := endpointServer(t, r, nil)
	w := do(t, h, "POST", endpointsPath, `{"url":"https://hooks.example.com/","events":["*"]}`)
	existing := decode[registry.View](t, w)
	valid := map[string]any{"url": "https://hooks.example.com/", "events": []string{"*"}}
	with := func(k string, v any) string {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, c := range []struct {
		name, body, field string
	}{
		{"url missing", with("url", nil), "url"},
		{"url not a string", with("url", 7), "url"},
		{"url scheme", with("url", "ftp://hooks.example.com/"), "url"},
		{"url private", with("url", "https://internal.example.com/"), "url"},
		{"url loopback", with("url", "http://127.0.0.1:8080/"), "url"},
		{"url null", `{"url":null,"events":["*"]}`, "url"},
		{"events missing", with("events", nil), "events"},
		{"events a string", with("events", "*"), "events"},
		{"events unknown", with("events", []string{"api_mail_log_exploded"}), "events"},
		{"events empty", with("events", []string{}), "events"},
		{"description a number", with("description", 3), "description"},
		{"description too long", with("description", strings.Repeat("d", 501)), "description"},
		{"timeout bad", with("timeout", "soon"), "timeout"},
		{"timeout a number", with("timeout", 15), "timeout"},
		{"timeout too long", with("timeout", "1h"), "timeout"},
		{"retry_schedule a string", with("retry_schedule", "5s"), "retry_schedule"},
		{"retry_schedule bad delay", with("retry_schedule", []string{"5s", "never"}), "retry_schedule[1]"},
		{"enabled a string", with("enabled", "yes"), "enabled"},
		{"trace_context a string", with("trace_context", "true"), "trace_context"},
		{"account_id another", with("account_id", "acct_2"), "account_id"},
		{"account_id a number", with("account_id", 2), "account_id"},
		{"unknown field", with("headers", map[string]string{"x": "y"}), "headers"},
		{"secret given", with("secret", "whsec_fake"), "secret"},
		{"circuit not an object", with("circuit", 3), "circuit"},
		{"circuit unknown key", with("circuit", map[string]any{"trip": 1}), "circuit.trip"},
		{"circuit open_after a string", with("circuit", map[string]any{"open_after": "ten"}), "circuit.open_after"},
		{"circuit open_after zero", with("circuit", map[string]any{"open_after": 0}), "circuit.open_after"},
		{"circuit park_limit bad", with("circuit", map[string]any{"park_limit": "a while"}), "circuit.park_limit"},
	} {
		for _, target := range []struct{ method, path string }{{"POST", endpointsPath}, {"PATCH", endpointsPath + "/" + existing.ID}} {
			body := c.body
			if target.method == "PATCH" && (c.field == "url" || c.field == "events") && strings.Contains(c.name, "missing") {
				continue // a patch may leave any field out
			}
			w := do(t, h, target.method, target.path, body)
			e := decode[apiError](t, w)
			if w.Code != 422 || e.Field != c.field || e.Error == "" {
				t.Errorf("%s %s: %d %+v, want 422 on %s", target.method, c.name, w.Code, e, c.field)
			}
		}
	}
	for _, c := range []struct{ method, path, body, field string }{
		{"POST", "/v1/accounts/acct%20bad/endpoints", with("url", "https://hooks.example.com/"), "account_id"},
		{"GET", "/v1/accounts/" + strings.Repeat("a", 129) + "/endpoints", "", "account_id"},
		{"GET", endpointsPath + "?limit=1000", "", "limit"},
		{"GET", endpointsPath + "?limit=ten", "", "limit"},
		{"GET", endpointsPath + "?cursor=garbage", "", "cursor"},
		{"POST", endpointsPath + "/" + existing.ID + "/rotate-secret?overlap=forever", "", "overlap"},
		{"POST", endpointsPath + "/" + existing.ID + "/rotate-secret?overlap=-1h", "", "overlap"},
		{"POST", endpointsPath + "/" + existing.ID + "/rotate-secret?overlap=9999h", "", "overlap"},
	} {
		w := do(t, h, c.method, c.path, c.body)
		if e := decode[apiError](t, w); w.Code != 422 || e.Field != c.field {
			t.Errorf("%s %s: %d %+v, want 422 on %s", c.method, c.path, w.Code, e, c.field)
		}
	}
	for _, c := range []struct {
		body, ct string
		code     int
		field    string
	}{
		{`{"url":`, "application/json", 400, "body"},
		{``, "application/json", 400, "body"},
		{`[1]`, "application/json", 422, "body"},
		{`{"url":"https://hooks.example.com/","events":["*"]}`, "text/plain", 415, "Content-Type"},
	} {
		w := do(t, h, "POST", endpointsPath, c.body, "Content-Type", c.ct)
		if e := decode[apiError](t, w); w.Code != c.code || e.Field != c.field {
			t.Errorf("body %q as %s: %d %+v", c.body, c.ct, w.Code, e)
		}
	}
	page, _ := r.List(context.Background(), "acct_1", 0, "")
	if len(page.Entries) != 1 {
		t.Fatalf("refused requests wrote endpoints: %d", len(page.Entries))
	}
	if got := page.Entries[0]; got.URL.String() != "https://hooks.example.com/" || len(got.Events) != 1 || got.Timeout != endpoint.DefaultTimeout {
		t.Fatalf("refused patches changed the endpoint: %+v", got)
	}
}

// With only a YAML file, writes answer 409 and reads show the file's
// endpoints of the account, without secrets.
func TestEndpointsManagedInFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	os.WriteFile(path, []byte(`endpoints:
  - id: crm
    account_id: acct_1
    url: https://hooks.example.com/crm
    events: ["*"]
    secret: `+secret+`
  - id: other
    account_id: acct_2
    url: https://hooks.example.com/other
    events: ["*"]
    secret: `+secret+`
`), 0o600)
	f, err := endpoint.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := endpointServer(t, registry.FileView{File: f}, nil)
	for _, c := range []struct{ method, path, body string }{
		{"POST", endpointsPath, `{"url":"https://hooks.example.com/","events":["*"]}`},
		{"PATCH", endpointsPath + "/crm", `{"enabled":false}`},
		{"DELETE", endpointsPath + "/crm", ""},
		{"POST", endpointsPath + "/crm/rotate-secret", ""},
	} {
		w := do(t, h, c.method, c.path, c.body)
		if e := decode[apiError](t, w); w.Code != 409 || !strings.Contains(e.Error, "endpoints file") {
			t.Errorf("%s %s: %d %+v, want 409", c.method, c.path, w.Code, e)
		}
	}
	w := do(t, h, "GET", endpointsPath, "")
	list := decode[endpointList](t, w)
	if w.Code != 200 || len(list.Endpoints) != 1 || list.Endpoints[0].ID != "crm" || strings.Contains(w.Body.String(), "whsec_") {
		t.Fatalf("list from the file: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/v1/accounts/acct_2/endpoints/crm", ""); w.Code != 404 {
		t.Fatalf("another account's file endpoint: %d", w.Code)
	}
}

// A URL whose host resolves to a refused address gets a generic 422 naming
// url: the answer names neither the address nor its range, so the API is no
// oracle for what internal names resolve to.
func TestRefusedAddressIsNotShown(t *testing.T) {
	r := newRegistry(t)
	h := endpointServer(t, r, nil)
	w := do(t, h, "POST", endpointsPath, `{"url":"https://hooks.example.com/","events":["*"]}`)
	existing := decode[registry.View](t, w)
	for _, target := range []struct{ method, path string }{{"POST", endpointsPath}, {"PATCH", endpointsPath + "/" + existing.ID}} {
		w := do(t, h, target.method, target.path, `{"url":"https://internal.example.com/","events":["*"]}`)
		body := w.Body.String()
		e := decode[apiError](t, w)
		if w.Code != 422 || e.Field != "url" {
			t.Fatalf("%s: %d %+v, want 422 on url", target.method, w.Code, e)
		}
		for _, leak := range []string{"10.1.2.3", "10.0.0.0", "private"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s: the answer %s shows %q", target.method, body, leak)
			}
		}
	}
}

// parkedDeliveries counts parked deliveries as visibility would, per
// account, or fails as Temporal down does.
type parkedDeliveries struct {
	*fakeDeliveries
	counts map[string]map[string]int // account, endpoint: parked
	err    error
}

func (p parkedDeliveries) ParkedCounts(_ context.Context, account string, ids []string) (map[string]int, error) {
	out := map[string]int{}
	for _, id := range ids {
		out[id] = p.counts[account][id]
	}
	return out, p.err
}

// The list shows each endpoint's parked count, counted in the list's
// account only; without Temporal it lists the endpoints without counts.
func TestEndpointListParked(t *testing.T) {
	reg := newRegistry(t)
	for _, c := range []struct {
		name    string
		err     error
		want    []int // parked of the two endpoints, -1: absent
		logPart string
	}{
		{"counted", nil, []int{0, 3}, ""},
		{"temporal down", errors.New("visibility: unavailable"), []int{-1, -1}, "parked_error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			account := "acct_parked_" + strings.ReplaceAll(c.name, " ", "_")
			h := newTestServer(t, &fakeDeliveries{}, func(cfg *Config) {
				cfg.Endpoints = reg
				cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
				cfg.Deliveries = parkedDeliveries{&fakeDeliveries{}, nil, c.err}
			}).Handler()
			var ids []string
			for _, u := range []string{"https://hooks.example.com/a", "https://hooks.example.com/b"} {
				ids = append(ids, decode[registry.View](t, do(t, h, "POST", "/v1/accounts/"+account+"/endpoints", `{"url":"`+u+`","events":["*"]}`)).ID)
			}
			h = newTestServer(t, &fakeDeliveries{}, func(cfg *Config) {
				cfg.Endpoints = reg
				cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
				// The other account's count of the same id must not show.
				cfg.Deliveries = parkedDeliveries{&fakeDeliveries{}, map[string]map[string]int{account: {ids[1]: 3}, "acct_other": {ids[0]: 9}}, c.err}
			}).Handler()
			w := do(t, h, "GET", "/v1/accounts/"+account+"/endpoints", "")
			list := decode[endpointList](t, w)
			if w.Code != 200 || len(list.Endpoints) != 2 {
				t.Fatalf("list: %d %s", w.Code, w.Body)
			}
			byID := map[string]*int{}
			for _, e := range list.Endpoints {
				byID[e.ID] = e.Parked
			}
			for i, id := range ids {
				got := -1
				if byID[id] != nil {
					got = *byID[id]
				}
				if got != c.want[i] {
					t.Errorf("endpoint %d: parked %d, want %d", i, got, c.want[i])
				}
			}
			if !strings.Contains(logs.String(), c.logPart) {
				t.Errorf("log lacks %q: %s", c.logPart, logs.String())
			}
		})
	}
}
