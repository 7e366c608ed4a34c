package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/hookrelay/hookrelay/internal/auditstore"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// The authorization matrix: every operation of routeTable, against every
// kind of credential, on account A's objects, on account B's, and on B's
// objects under A's path. What each operation should demand is written
// here, apart from routeTable: an operation routeTable has and this table
// has not, or declares otherwise, fails the test.

const (
	acctA, acctB  = "acct_a", "acct_b"
	deliveryOfA   = "epa:evt_a"
	deliveryOfB   = "epb:evt_b"
	secondToken   = "second-token-0123456789abcdef"
	matrixTimeout = 10 * time.Second
)

// authzCase is what the test expects of one operation and how to call it:
// the path's {account_id}, {endpoint_id}, {delivery_id} and {key_id} are
// filled in per target, each object made fresh for the request.
type authzCase struct {
	want access
	body string
	ok   int
}

var authzCases = map[string]authzCase{
	"POST /v1/events":                                                      {access{kind: adminOnly}, sampleEvent(1), 202},
	"GET /v1/deliveries/{delivery_id}":                                     {access{kind: adminOnly}, "", 200},
	"POST /v1/deliveries/{delivery_id}/cancel":                             {access{kind: adminOnly}, "", 200},
	"POST /v1/deliveries/{delivery_id}/resend":                             {access{kind: adminOnly}, "", 202},
	"POST /v1/accounts/{account_id}/deliveries/{delivery_id}/cancel":       {access{accountScoped, apikey.DeliveriesWrite}, `{"reason":"matrix"}`, 200},
	"POST /v1/accounts/{account_id}/deliveries/{delivery_id}/resend":       {access{accountScoped, apikey.DeliveriesWrite}, "", 202},
	"POST /v1/accounts/{account_id}/deliveries/{delivery_id}/retry-now":    {access{accountScoped, apikey.DeliveriesWrite}, "", 200},
	"GET /v1/accounts/{account_id}/deliveries":                             {access{accountScoped, apikey.DeliveriesRead}, "", 200},
	"GET /v1/accounts/{account_id}/deliveries/{delivery_id}":               {access{accountScoped, apikey.DeliveriesRead}, "", 200},
	"GET /v1/accounts/{account_id}/deliveries/{delivery_id}/attempts":      {access{accountScoped, apikey.DeliveriesRead}, "", 200},
	"POST /v1/accounts/{account_id}/endpoints":                             {access{accountScoped, apikey.EndpointsWrite}, `{"url":"https://hooks.example.com/new","events":["*"]}`, 201},
	"GET /v1/accounts/{account_id}/endpoints":                              {access{accountScoped, apikey.EndpointsRead}, "", 200},
	"GET /v1/accounts/{account_id}/endpoints/{endpoint_id}":                {access{accountScoped, apikey.EndpointsRead}, "", 200},
	"PATCH /v1/accounts/{account_id}/endpoints/{endpoint_id}":              {access{accountScoped, apikey.EndpointsWrite}, `{"description":"changed"}`, 200},
	"DELETE /v1/accounts/{account_id}/endpoints/{endpoint_id}":             {access{accountScoped, apikey.EndpointsWrite}, "", 204},
	"POST /v1/accounts/{account_id}/endpoints/{endpoint_id}/rotate-secret": {access{accountScoped, apikey.EndpointsWrite}, "", 200},
	"GET /v1/accounts/{account_id}/endpoints/{endpoint_id}/secret":         {access{accountScoped, apikey.EndpointsWrite}, "", 200},
	"POST /v1/accounts/{account_id}/endpoints/{endpoint_id}/recover":       {access{accountScoped, apikey.DeliveriesWrite}, `{"since":"2026-01-02T00:00:00Z"}`, 202},
	"POST /v1/accounts/{account_id}/endpoints/{endpoint_id}/test":          {access{accountScoped, apikey.DeliveriesWrite}, `{"event_name":"api_mail_log_opened"}`, 202},
	"GET /v1/accounts/{account_id}/recoveries/{recover_id}":                {access{accountScoped, apikey.DeliveriesRead}, "", 200},
	"POST /v1/accounts/{account_id}/api-keys":                              {access{kind: adminOnly}, `{"name":"made in the matrix","scopes":["deliveries:read"]}`, 201},
	"GET /v1/accounts/{account_id}/api-keys":                               {access{kind: adminOnly}, "", 200},
	"DELETE /v1/accounts/{account_id}/api-keys/{key_id}":                   {access{kind: adminOnly}, "", 204},
	"POST /v1/accounts/{account_id}/portal-sessions":                       {access{kind: adminOnly}, `{"scopes":["endpoints:read"],"expires_in":600}`, 201},
	"DELETE /v1/accounts/{account_id}/portal-sessions":                     {access{kind: adminOnly}, "", 204},
	"GET /v1/audit":        {access{kind: adminOnly}, "", 200},
	"GET /v1/openapi.json": {access{kind: publicAccess}, "", 200},
	"GET /healthz":         {access{kind: publicAccess}, "", 200},
	"GET /readyz":          {access{kind: publicAccess}, "", 200},
}

// matrixCred is one credential of the matrix.
type matrixCred struct {
	name    string
	token   string // "" sends no Authorization
	admin   bool
	account string         // a usable key's account
	scopes  []apikey.Scope // a usable key's scopes
	session bool           // a portal session, made again when the matrix ends A's sessions
}

// matrixEnv is the server under test and what the test made in it.
type matrixEnv struct {
	t      *testing.T
	reg    *registry.Registry
	keys   *registry.KeyCache
	fake   *fakeDeliveries
	h      http.Handler
	logs   *bytes.Buffer
	tokens []string // every secret the logs must not hold
}

func newMatrixEnv(t *testing.T) *matrixEnv {
	t.Helper()
	clock := time.Now()
	g := netguard.New()
	g.Lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	reg, err := registry.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "r.db"),
		// The matrix registers an endpoint per request that names one: the
		// quota of endpoints per account at its ceiling, not its default.
		registry.Options{Codec: testenv.NewCodecT(t, "k1"), Guard: g, Now: func() time.Time { return clock }, Bounds: matrixBounds()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	e := &matrixEnv{t: t, reg: reg, keys: registry.NewKeyCache(reg, time.Minute), logs: &bytes.Buffer{},
		fake: &fakeDeliveries{accounts: map[string]string{deliveryOfA: acctA, deliveryOfB: acctB}}, tokens: []string{testToken, secondToken}}
	// An expired key: made two days ago, to expire a day ago.
	clock = time.Now().Add(-48 * time.Hour)
	expiredAt := clock.Add(24 * time.Hour)
	_, expired, err := reg.CreateKey(context.Background(), acctA, apikey.Fields{Name: "expired", Scopes: scopeNames(apikey.Scopes), ExpiresAt: &expiredAt})
	if err != nil {
		t.Fatal(err)
	}
	// An expired portal session: made two hours ago for one.
	clock = time.Now().Add(-2 * time.Hour)
	_, expiredSession, err := reg.CreateSession(context.Background(), acctA, apikey.SessionFields{})
	if err != nil {
		t.Fatal(err)
	}
	clock = time.Now()
	e.tokens = append(e.tokens, expired, expiredSession)
	deliveryLog := matrixLog(t)
	trail, err := auditstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "audit.db"), auditstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trail.Close() })
	e.h = newTestServer(t, e.fake, func(c *Config) {
		c.Endpoints, c.Keys, c.SecondToken, c.DeliveryLog, c.Audit = reg, e.keys, secondToken, deliveryLog, trail
		c.Recoveries = registryRecoveries{reg}
		c.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}).Handler()
	return e
}

// matrixLog is a delivery log in SQLite holding deliveryOfA of acctA and
// deliveryOfB of acctB.
func matrixLog(t *testing.T) *LogDB {
	t.Helper()
	db, err := OpenDeliveryLog(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "log.db"), testenv.NewCodecT(t, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for account, id := range map[string]string{acctA: deliveryOfA, acctB: deliveryOfB} {
		ep, ev, _ := strings.Cut(id, ":")
		if err := db.log.UpsertDelivery(context.Background(), deliverylog.Delivery{AccountID: account, DeliveryID: id, EndpointID: ep, EventID: ev,
			EventName: "api_mail_log_delivered", MailLogID: "1", Status: "pending", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func scopeNames(scopes []apikey.Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}

func (e *matrixEnv) key(account string, scopes ...apikey.Scope) (apikey.Key, string) {
	e.t.Helper()
	k, key, err := e.keys.CreateKey(context.Background(), account, apikey.Fields{Name: "matrix", Scopes: scopeNames(scopes)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.tokens = append(e.tokens, key)
	return k, key
}

// session makes a portal session of account with scopes and returns its token.
func (e *matrixEnv) session(account string, scopes ...apikey.Scope) string {
	e.t.Helper()
	_, token, err := e.keys.CreateSession(context.Background(), account, apikey.SessionFields{Scopes: scopeNames(scopes)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.tokens = append(e.tokens, token)
	return token
}

// remintSessions makes the live sessions of creds again, after a request
// that may have ended them.
func (e *matrixEnv) remintSessions(creds []matrixCred) {
	for i, c := range creds {
		if c.session {
			creds[i].token = e.session(c.account, c.scopes...)
		}
	}
}

func (e *matrixEnv) creds() []matrixCred {
	t := e.t
	out := []matrixCred{
		{name: "admin", token: testToken, admin: true},
		{name: "second admin token", token: secondToken, admin: true},
		{name: "none"},
		{name: "wrong token", token: "wrong-token-0123456789abcdef"},
		{name: "expired key", token: e.tokens[2]},
		{name: "expired portal session", token: e.tokens[3]},
	}
	// A's ended session: ended before A's live ones are made.
	out = append(out, matrixCred{name: "ended portal session", token: e.session(acctA, apikey.Scopes...)})
	if _, err := e.keys.RevokeSessions(context.Background(), acctA); err != nil {
		t.Fatal(err)
	}
	for _, s := range apikey.Scopes {
		_, key := e.key(acctA, s)
		out = append(out, matrixCred{name: "A key " + string(s), token: key, account: acctA, scopes: []apikey.Scope{s}})
	}
	for _, s := range apikey.Scopes {
		out = append(out, matrixCred{name: "A portal session " + string(s), token: e.session(acctA, s), account: acctA, scopes: []apikey.Scope{s}, session: true})
	}
	out = append(out, matrixCred{name: "B portal session, every scope", token: e.session(acctB, apikey.Scopes...), account: acctB, scopes: apikey.Scopes, session: true})
	_, keyB := e.key(acctB, apikey.Scopes...)
	out = append(out, matrixCred{name: "B key, every scope", token: keyB, account: acctB, scopes: apikey.Scopes})
	revoked, keyR := e.key(acctA, apikey.Scopes...)
	if err := e.keys.RevokeKey(context.Background(), acctA, revoked.ID); err != nil {
		t.Fatal(err)
	}
	out = append(out, matrixCred{name: "revoked key", token: keyR})
	// A's real key id with another secret: the hash decides, not the id.
	_, keyF := e.key(acctA, apikey.Scopes...)
	forged := keyF[:len(keyF)-4] + "aaaa"
	if forged == keyF {
		forged = keyF[:len(keyF)-4] + "bbbb"
	}
	out = append(out, matrixCred{name: "forged key (real id, wrong secret)", token: forged})
	return out
}

// target is where a request points: the path's account and the account
// whose objects fill the path.
type target struct {
	name          string
	path, objects string
}

var targets = []target{
	{"A's path, A's objects", acctA, acctA},
	{"B's path, B's objects", acctB, acctB},
	{"A's path, B's objects", acctA, acctB},
}

// fill makes the objects the pattern names, of account objects, and
// returns the path and what a refused request must leave as it is.
func (e *matrixEnv) fill(pattern string, tg target) (string, func() string) {
	t := e.t
	ctx := context.Background()
	path := strings.ReplaceAll(pattern, "{account_id}", tg.path)
	var probes []func() string
	if strings.Contains(path, "{endpoint_id}") {
		entry, _, err := e.reg.Create(ctx, tg.objects, endpoint.Fields{URL: ptr("https://hooks.example.com/" + tg.objects), Events: &[]string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		path = strings.ReplaceAll(path, "{endpoint_id}", entry.ID)
		probes = append(probes, func() string {
			ep, err := e.reg.Resolve(ctx, entry.ID)
			if err != nil {
				return "endpoint " + err.Error()
			}
			got, _ := e.reg.Get(ctx, tg.objects, entry.ID)
			secrets, _ := ep.Secrets()
			ids := make([]string, len(secrets))
			for i, s := range secrets {
				ids[i] = s.KeyID()
			}
			return fmt.Sprintf("endpoint %s %s %v %v", ep.URL, got.Description, got.UpdatedAt, ids)
		})
	}
	if strings.Contains(path, "{delivery_id}") {
		path = strings.ReplaceAll(path, "{delivery_id}", map[string]string{acctA: deliveryOfA, acctB: deliveryOfB}[tg.objects])
	}
	if strings.Contains(path, "{recover_id}") {
		path = strings.ReplaceAll(path, "{recover_id}", matrixRecoverID(tg.objects))
	}
	if strings.HasSuffix(path, "/portal-sessions") {
		id, _ := apikey.IDOf(e.session(tg.objects, apikey.EndpointsRead))
		probes = append(probes, func() string {
			got, err := e.reg.LookupKey(ctx, id)
			return fmt.Sprintf("session %v %v", got.RevokedAt, err)
		})
	}
	if strings.Contains(path, "{key_id}") {
		k, _ := e.key(tg.objects, apikey.DeliveriesRead)
		path = strings.ReplaceAll(path, "{key_id}", k.ID)
		probes = append(probes, func() string {
			got, err := e.reg.LookupKey(ctx, k.ID)
			return fmt.Sprintf("key %v %v", got.RevokedAt, err)
		})
	}
	probes = append(probes, func() string {
		e.fake.mu.Lock()
		defer e.fake.mu.Unlock()
		return fmt.Sprintf("calls %v published %d", e.fake.calls, len(e.fake.published))
	}, func() string { return e.counts(tg.objects) })
	return path, func() string {
		var b strings.Builder
		for _, p := range probes {
			b.WriteString(p() + "\n")
		}
		return b.String()
	}
}

// counts is how many endpoints and keys account has.
func (e *matrixEnv) counts(account string) string {
	ctx := context.Background()
	n, cursor := 0, ""
	for {
		page, err := e.reg.List(ctx, account, registry.MaxListLimit, cursor)
		if err != nil {
			e.t.Fatal(err)
		}
		n += len(page.Entries)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	keys, err := e.reg.ListKeys(ctx, account)
	if err != nil {
		e.t.Fatal(err)
	}
	return fmt.Sprintf("%d endpoints, %d keys of %s", n, len(keys), account)
}

func ptr[T any](v T) *T { return &v }

// expect is the answer the matrix expects, from the case's access alone:
// ok, 401, 403, 404 as an unknown path (noSuchPath), or 404 as a miss of an
// object in the path's account.
func expect(c authzCase, cred matrixCred, tg target, hasObject bool) (status int, noSuchPath bool) {
	miss := hasObject && tg.path != tg.objects
	switch {
	case c.want.kind == publicAccess:
		return c.ok, false
	case !cred.admin && cred.account == "":
		return http.StatusUnauthorized, false
	case cred.admin && miss:
		return http.StatusNotFound, false
	case cred.admin:
		return c.ok, false
	case c.want.kind != accountScoped || cred.account != tg.path:
		return http.StatusNotFound, true
	case !slices.Contains(cred.scopes, c.want.scope):
		return http.StatusForbidden, false
	case miss:
		return http.StatusNotFound, false
	}
	return c.ok, false
}

func TestAuthorizationMatrix(t *testing.T) {
	e := newMatrixEnv(t)
	creds := e.creds()
	unknown := do(t, e.h, "GET", "/v1/no-such-path", "")
	if unknown.Code != 404 {
		t.Fatalf("unknown path: %d", unknown.Code)
	}
	noSuchPathBody := unknown.Body.String()

	s := newTestServer(t, &fakeDeliveries{}, nil)
	seen := map[string]bool{}
	for _, rt := range s.routeTable() {
		for method, o := range rt.methods {
			name := method + " " + rt.pattern
			seen[name] = true
			c, ok := authzCases[name]
			if !ok {
				t.Errorf("%s: not in the authorization matrix: add it to authzCases with the access it should demand", name)
				continue
			}
			if o.access != c.want {
				t.Errorf("%s: routeTable declares %+v, the matrix expects %+v", name, o.access, c.want)
				continue
			}
			e.runOperation(t, method, rt.pattern, c, creds, noSuchPathBody)
		}
	}
	for name := range authzCases {
		if !seen[name] {
			t.Errorf("%s: in the matrix, not in routeTable", name)
		}
	}
	// No key and no admin token appears in the server's log, for any request.
	logs := e.logs.String()
	for _, secret := range e.tokens {
		if strings.Contains(logs, secret) || strings.Contains(logs, secret[len(secret)-20:]) {
			t.Errorf("the log holds a credential's secret (…%s)", secret[len(secret)-4:])
		}
	}
	if !strings.Contains(logs, `"credential":"key:key_`) || !strings.Contains(logs, `"credential":"admin:`) || !strings.Contains(logs, `"credential":"session:ses_`) {
		t.Errorf("the log does not name the credentials by id")
	}
}

// runOperation sends one request per credential and target, and checks
// the answer, and that a refused request changed nothing.
func (e *matrixEnv) runOperation(t *testing.T, method, pattern string, c authzCase, creds []matrixCred, noSuchPathBody string) {
	hasObject := strings.Contains(pattern, "{endpoint_id}") || strings.Contains(pattern, "{delivery_id}") || strings.Contains(pattern, "{key_id}")
	for _, tg := range targets {
		if tg.path != tg.objects && (!hasObject || !strings.Contains(pattern, "{account_id}")) {
			continue
		}
		for _, cred := range creds {
			path, state := e.fill(pattern, tg)
			before := state()
			headers := []string{"Authorization", ""}
			if cred.token != "" {
				headers[1] = "Bearer " + cred.token
			}
			w := do(t, e.h, method, path, c.body, headers...)
			if method == http.MethodDelete && strings.HasSuffix(pattern, "/portal-sessions") {
				e.remintSessions(creds)
			}
			want, noSuchPath := expect(c, cred, tg, hasObject)
			where := fmt.Sprintf("%s %s [%s; %s]", method, pattern, cred.name, tg.name)
			if w.Code != want {
				t.Errorf("%s: %d %s, want %d", where, w.Code, strings.TrimSpace(w.Body.String()), want)
				continue
			}
			if noSuchPath && w.Body.String() != noSuchPathBody {
				t.Errorf("%s: answered %s, not as an unknown path (%s)", where, w.Body, noSuchPathBody)
			}
			if want == c.ok {
				continue
			}
			if after := state(); after != before {
				t.Errorf("%s: refused (%d), yet it changed something:\nbefore %safter %s", where, w.Code, before, after)
			}
		}
	}
}

// The credential a request acts with is in its context, by id only.
func TestCredentialID(t *testing.T) {
	e := newMatrixEnv(t)
	k, key := e.key(acctA, apikey.EndpointsRead)
	var got []string
	s, err := New(Config{Deliveries: e.fake, Token: testToken, SecondToken: secondToken, Keys: e.keys})
	if err != nil {
		t.Fatal(err)
	}
	h := s.authorize("/v1/accounts/{account_id}/x", "GET", scoped(apikey.EndpointsRead, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, CredentialID(r.Context()))
	}))
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/accounts/{account_id}/x", h)
	for _, token := range []string{testToken, secondToken, key} {
		do(t, mux, "GET", "/v1/accounts/"+acctA+"/x", "", "Authorization", "Bearer "+token)
	}
	if len(got) != 3 || got[2] != "key:"+k.ID || !strings.HasPrefix(got[0], "admin:") || !strings.HasPrefix(got[1], "admin:") || got[0] == got[1] {
		t.Fatalf("credential ids %q", got)
	}
	for _, id := range got {
		if strings.Contains(id, testToken) || strings.Contains(id, secondToken) || strings.Contains(id, key) {
			t.Fatalf("credential id %q holds a secret", id)
		}
	}
	if id := CredentialID(context.Background()); id != "" {
		t.Fatalf("outside a request: %q", id)
	}
}

func matrixBounds() endpoint.Bounds {
	b := endpoint.DefaultBounds()
	b.MaxEndpointsPerAccount = endpoint.EndpointsPerAccountCeiling
	return b
}

// Making and revoking a key, a recovery, a test event and portal sessions
// are in the audit trail, by the admin token's id,
// with the key's id and never the key; an account key's use is recorded
// under its own id.
func TestAuditRecordsKeysRecoveriesAndTests(t *testing.T) {
	e := newMatrixEnv(t)
	w := do(t, e.h, "POST", "/v1/accounts/"+acctA+"/api-keys", `{"name":"audited","scopes":["endpoints:write"]}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST api-keys: %d %s", w.Code, w.Body)
	}
	made := decode[apikey.View](t, w)
	w = do(t, e.h, "POST", "/v1/accounts/"+acctA+"/endpoints", `{"url":"https://hooks.example.com/a","events":["*"]}`, "Authorization", "Bearer "+made.Key)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST endpoints with the key: %d %s", w.Code, w.Body)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil {
		t.Fatal(err)
	}
	ep := created.ID
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if w := do(t, e.h, "POST", "/v1/accounts/"+acctA+"/endpoints/"+ep+"/recover", `{"since":"`+since+`"}`); w.Code != http.StatusAccepted {
		t.Fatalf("POST recover: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "POST", "/v1/accounts/"+acctA+"/endpoints/"+ep+"/test", `{"event_name":"api_mail_log_opened"}`); w.Code != http.StatusAccepted {
		t.Fatalf("POST test: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "POST", "/v1/accounts/"+acctA+"/portal-sessions", `{}`); w.Code != http.StatusCreated {
		t.Fatalf("POST portal-sessions: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "DELETE", "/v1/accounts/"+acctA+"/portal-sessions", ""); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE portal-sessions: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "DELETE", "/v1/accounts/"+acctA+"/api-keys/"+made.ID, ""); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE api-key: %d %s", w.Code, w.Body)
	}
	w = do(t, e.h, "GET", "/v1/audit?account_id="+acctA, "")
	got := decode[auditList](t, w).lines()
	admin := newAdminToken(testToken).id
	want := []string{
		acctA + " " + admin + " api_key.create " + made.ID + " name,scopes",
		acctA + " key:" + made.ID + " endpoint.create " + ep + " url,events",
		acctA + " " + admin + " endpoint.recover " + ep + " since",
		acctA + " " + admin + " endpoint.test " + ep + " event_name",
		acctA + " " + admin + " portal_session.create ses_",
		acctA + " " + admin + " portal_session.revoke * ",
		acctA + " " + admin + " api_key.revoke " + made.ID + " ",
	}
	// The session's id is new each run: compare up to it, then its changes.
	if len(got) == len(want) && strings.HasPrefix(got[4], want[4]) && strings.HasSuffix(got[4], " scopes,expires_in") {
		got[4] = want[4]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit trail:\n got %q\nwant %q (the endpoint's id after endpoint.create)", got, want)
	}
	if strings.Contains(w.Body.String(), made.Key) {
		t.Fatal("the audit trail holds the key itself")
	}
}

// registryRecoveries answers the recover and test routes for the
// registry's endpoints, each of its account; a recovery of account a is
// matrixRecoverID(a).
type registryRecoveries struct{ reg *registry.Registry }

func matrixRecoverID(account string) string {
	return workflows.RecoverID(account, "ep", time.Unix(0, 0), time.Time{})
}

func (r registryRecoveries) Recover(ctx context.Context, account, ep string, since, until time.Time) (string, error) {
	if _, err := r.reg.Get(ctx, account, ep); err != nil {
		return "", err
	}
	return workflows.RecoverID(account, ep, since, until), nil
}

func (r registryRecoveries) Recovery(_ context.Context, account, id string) (workflows.RecoverState, error) {
	if id != matrixRecoverID(account) {
		return workflows.RecoverState{}, deliveries.ErrRecoveryNotFound
	}
	return workflows.RecoverState{RecoverID: id, AccountID: account, EndpointID: "ep", State: workflows.RecoverDone}, nil
}

func (r registryRecoveries) SendTest(ctx context.Context, account, ep, _ string) (deliveries.Started, error) {
	if _, err := r.reg.Get(ctx, account, ep); err != nil {
		return deliveries.Started{}, err
	}
	return deliveries.Started{DeliveryID: ep + ":test_1", EndpointID: ep, EventID: "test_1"}, nil
}
