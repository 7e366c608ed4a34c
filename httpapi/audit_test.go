package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// auditStores runs test on the registry and the audit trail sharing one
// database: an SQLite file, and a fresh PostgreSQL database (skipped where
// none answers, except in CI).
func auditStores(t *testing.T, test func(t *testing.T, reg *registry.Registry, trail *auditstore.Store)) {
	for _, st := range []struct {
		name  string
		fresh func(t testing.TB) string
	}{
		{"sqlite", func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "hookrelay.db") }},
		{"postgres", func(t testing.TB) string { return testenv.PostgresT(t) }},
	} {
		t.Run(st.name, func(t *testing.T) {
			dsn := st.fresh(t)
			g := netguard.New()
			g.Lookup = func(context.Context, string) ([]netip.Addr, error) {
				return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
			}
			reg, err := registry.Open(context.Background(), dsn, registry.Options{Codec: testenv.NewCodecT(t, "k1"), Guard: g})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reg.Close() })
			trail, err := auditstore.Open(context.Background(), dsn, auditstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { trail.Close() })
			test(t, reg, trail)
		})
	}
}

func auditServer(t *testing.T, reg *registry.Registry, trail AuditTrail) http.Handler {
	return newTestServer(t, &fakeDeliveries{}, func(c *Config) { c.Endpoints, c.Audit = reg, trail }).Handler()
}

func (l auditList) lines() []string {
	var out []string
	for _, r := range l.Records {
		out = append(out, strings.Join([]string{r.AccountID, r.Credential, r.Action, r.Target, strings.Join(r.Changes, ",")}, " "))
	}
	return out
}

// Each change made through the API is in the audit trail with the
// credential that made it, its account, its target and the names of the
// fields it set; refused changes are not; no record holds a secret or a
// value; GET /v1/audit filters by account and time.
func TestAuditRecordsEachChange(t *testing.T) {
	auditStores(t, func(t *testing.T, reg *registry.Registry, trail *auditstore.Store) {
		h := auditServer(t, reg, trail)
		w := do(t, h, "POST", "/v1/accounts/acct_1/endpoints", `{"url":"https://hooks.example.com/mail?token=fake-query-token","events":["*"],"circuit":{"open_after":3}}`)
		created := decode[registry.View](t, w)
		if w.Code != 201 {
			t.Fatalf("create: %d %s", w.Code, w.Body)
		}
		ep := "/v1/accounts/acct_1/endpoints/" + created.ID
		steps := []struct {
			method, path, body string
			status             int
		}{
			{"PATCH", ep, `{"url":"https://hooks2.example.com/mail","description":"CRM"}`, 200},
			{"POST", ep + "/rotate-secret", "", 200},
			{"GET", ep + "/secret", "", 200},
			{"GET", "/v1/accounts/acct_2/endpoints/" + created.ID + "/secret", "", 404}, // another account's: refused
			{"POST", "/v1/deliveries/" + created.ID + ":evt_1/resend", "", 202},
			{"POST", "/v1/deliveries/" + created.ID + ":evt_2/cancel", `{"reason":"patient asked to stop"}`, 200},
			{"PATCH", "/v1/accounts/acct_2/endpoints/" + created.ID, `{"enabled":false}`, 404}, // another account's: refused
			{"PATCH", ep, `{"url":"ftp://hooks.example.com/"}`, 422},                           // refused
			{"POST", "/v1/deliveries/crm:missing/resend", "", 404},                             // refused
			{"DELETE", ep, "", 204},
			{"POST", "/v1/accounts/acct_2/endpoints", `{"url":"https://b.example.com/","events":["*"]}`, 201},
		}
		var secrets []string
		secrets = append(secrets, created.Secret)
		for _, s := range steps {
			w := do(t, h, s.method, s.path, s.body)
			if w.Code != s.status {
				t.Fatalf("%s %s: %d %s, want %d", s.method, s.path, w.Code, w.Body, s.status)
			}
			if strings.HasSuffix(s.path, "/rotate-secret") {
				secrets = append(secrets, decode[rotatedView](t, w).Secret)
			}
			if strings.HasSuffix(s.path, "/secret") && s.status == 200 {
				if got := decode[secretView](t, w).Secret; got != secrets[len(secrets)-1] {
					t.Fatalf("reveal answers %t, not the rotated secret", strings.HasPrefix(got, "whsec_"))
				}
			}
		}

		w = do(t, h, "GET", "/v1/audit", "")
		all := decode[auditList](t, w)
		admin := newAdminToken(testToken).id // an id of the token, never the token
		want := []string{
			"acct_1 " + admin + " endpoint.create " + created.ID + " url,events,circuit.open_after",
			"acct_1 " + admin + " endpoint.update " + created.ID + " url,description",
			"acct_1 " + admin + " endpoint.rotate_secret " + created.ID + " secret",
			"acct_1 " + admin + " endpoint.reveal_secret " + created.ID + " ",
			"acct_1 " + admin + " delivery.resend " + created.ID + ":evt_1 ",
			"acct_1 " + admin + " delivery.cancel " + created.ID + ":evt_2 reason",
			"acct_1 " + admin + " endpoint.delete " + created.ID + " ",
		}
		got := all.lines()
		if w.Code != 200 || len(got) != len(want)+1 || !slices.Equal(got[:len(want)], want) || !strings.HasPrefix(got[len(want)], "acct_2 "+admin+" endpoint.create ep_") {
			t.Fatalf("GET /v1/audit: %d\n got %q\nwant %q and acct_2's create", w.Code, got, want)
		}
		for _, secret := range append(secrets, "whsec_", "hooks2.example.com", "fake-query-token", "patient") {
			if strings.Contains(w.Body.String(), secret) {
				t.Errorf("the audit trail holds %q:\n%s", secret, w.Body)
			}
		}

		if got := decode[auditList](t, do(t, h, "GET", "/v1/audit?account_id=acct_2", "")).lines(); len(got) != 1 || !strings.HasPrefix(got[0], "acct_2 ") {
			t.Errorf("account_id=acct_2: %q", got)
		}
		first := all.Records[0].At.Format(time.RFC3339Nano)
		if got := decode[auditList](t, do(t, h, "GET", "/v1/audit?account_id=acct_1&since="+first, "")).lines(); !slices.Equal(got, want) {
			t.Errorf("acct_1 since the first record: %q", got)
		}
		if got := decode[auditList](t, do(t, h, "GET", "/v1/audit?since=2099-01-01T00:00:00Z", "")).lines(); len(got) != 0 {
			t.Errorf("since a future time: %q", got)
		}
		page := decode[auditList](t, do(t, h, "GET", "/v1/audit?limit=2", ""))
		next := decode[auditList](t, do(t, h, "GET", "/v1/audit?limit=2&cursor="+page.NextCursor, ""))
		if len(page.Records) != 2 || page.NextCursor == "" || !slices.Equal(next.lines(), got[2:4]) {
			t.Errorf("pages of 2: %q, then %q", page.lines(), next.lines())
		}
		for query, field := range map[string]string{"since=yesterday": "since", "since=2026-04-18": "since", "limit=0": "limit", "cursor=nope": "cursor"} {
			w := do(t, h, "GET", "/v1/audit?"+query, "")
			if e := decode[apiError](t, w); w.Code != 422 || e.Field != field {
				t.Errorf("?%s: %d %+v, want 422 on %s", query, w.Code, e, field)
			}
		}
	})
}

// brokenTrail is an audit trail whose database refuses writes.
type brokenTrail struct{ *auditstore.Store }

func (brokenTrail) Record(context.Context, audit.Record) (int64, error) {
	return 0, errors.New("audit trail: database unavailable")
}

// A change the audit trail cannot record is not made: 503, and the
// registry unchanged.
func TestAuditWriteFailureRefusesTheChange(t *testing.T) {
	auditStores(t, func(t *testing.T, reg *registry.Registry, trail *auditstore.Store) {
		h := auditServer(t, reg, brokenTrail{trail})
		w := do(t, h, "POST", "/v1/accounts/acct_1/endpoints", `{"url":"https://hooks.example.com/","events":["*"]}`)
		if w.Code != 503 || w.Header().Get("Retry-After") == "" {
			t.Fatalf("create with the trail down: %d %s, want 503", w.Code, w.Body)
		}
		if page, err := reg.List(context.Background(), "acct_1", 0, ""); err != nil || len(page.Entries) != 0 {
			t.Fatalf("the unrecorded create was made: %v %v", page.Entries, err)
		}
		if w := do(t, h, "POST", "/v1/deliveries/crm:evt_1/resend", ""); w.Code != 503 {
			t.Fatalf("resend with the trail down: %d %s, want 503", w.Code, w.Body)
		}
	})
}

// Without an audit trail, /v1/audit is not there.
func TestAuditRouteWithoutATrail(t *testing.T) {
	h := newTestServer(t, &fakeDeliveries{}, nil).Handler()
	if w := do(t, h, "GET", "/v1/audit", ""); w.Code != 404 {
		t.Fatalf("GET /v1/audit without a trail: %d", w.Code)
	}
	if w := do(t, h, "GET", "/v1/audit", "", "Authorization", ""); w.Code != 401 {
		t.Fatalf("GET /v1/audit without a token: %d", w.Code)
	}
}
