package httpapi

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
)

// A portal session's URL carries its token in the fragment only, on the
// request's origin; the token acts as a key of the session's scopes until
// the admin ends the account's sessions.
func TestPortalSessionRoutes(t *testing.T) {
	e := newMatrixEnv(t)
	path := "/v1/accounts/" + acctA + "/portal-sessions"
	w := do(t, e.h, "POST", path, "", "Content-Type", "")
	created := decode[sessionView](t, w)
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	if life := time.Until(created.ExpiresAt); life < 59*time.Minute || life > time.Hour {
		t.Fatalf("default lifetime: expires at %s", created.ExpiresAt)
	}
	u, err := url.Parse(created.URL)
	if err != nil || u.Scheme != "http" || u.Host != "example.com" || u.Path != PortalPath || u.RawQuery != "" || !strings.HasPrefix(u.Fragment, "token=hrs_") {
		t.Fatalf("url %q: %v", created.URL, err)
	}
	frag, err := url.ParseQuery(u.Fragment)
	token := frag.Get("token")
	if err != nil || frag.Get("account") != acctA || !strings.HasPrefix(token, "hrs_") {
		t.Fatalf("fragment %q: %v", u.Fragment, err)
	}
	e.tokens = append(e.tokens, token)
	asSession := []string{"Authorization", "Bearer " + token}
	if w := do(t, e.h, "GET", "/v1/accounts/"+acctA+"/endpoints", "", asSession...); w.Code != 200 {
		t.Fatalf("the session reads its account's endpoints: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "GET", "/v1/accounts/"+acctB+"/endpoints", "", asSession...); w.Code != 404 {
		t.Fatalf("the session reads another account: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "POST", path, "", asSession...); w.Code != 404 {
		t.Fatalf("a session made a session: %d %s", w.Code, w.Body)
	}
	w = do(t, e.h, "POST", path, `{"scopes":["deliveries:read"],"expires_in":120}`)
	narrow := decode[sessionView](t, w)
	if w.Code != 201 || time.Until(narrow.ExpiresAt) > 2*time.Minute {
		t.Fatalf("narrow: %d %s", w.Code, w.Body)
	}
	narrowFrag, _ := url.ParseQuery(narrow.URL[strings.Index(narrow.URL, "#")+1:])
	narrowToken := narrowFrag.Get("token")
	if got := narrowFrag.Get("scopes"); got != "deliveries:read" || frag.Get("scopes") != "deliveries:read,deliveries:write,endpoints:read,endpoints:write" {
		t.Fatalf("fragment scopes: %q and %q (default)", got, frag.Get("scopes"))
	}
	e.tokens = append(e.tokens, narrowToken)
	if w := do(t, e.h, "GET", "/v1/accounts/"+acctA+"/endpoints", "", "Authorization", "Bearer "+narrowToken); w.Code != 403 {
		t.Fatalf("without endpoints:read: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "DELETE", path, ""); w.Code != 204 {
		t.Fatalf("end: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "GET", "/v1/accounts/"+acctA+"/endpoints", "", asSession...); w.Code != 401 || !strings.Contains(w.Body.String(), "portal session has ended") {
		t.Fatalf("an ended session: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "DELETE", path, ""); w.Code != 204 {
		t.Fatalf("end again: %d %s", w.Code, w.Body)
	}
	if strings.Contains(e.logs.String(), token) || strings.Contains(e.logs.String(), narrowToken) {
		t.Fatalf("the log holds a session token")
	}
}

// With a portal base URL, session URLs point there.
func TestPortalSessionBaseURL(t *testing.T) {
	e := newMatrixEnv(t)
	h := newTestServer(t, e.fake, func(c *Config) { c.Keys, c.PortalBaseURL = e.keys, "https://hooks.example.com/relay/" }).Handler()
	w := do(t, h, "POST", "/v1/accounts/"+acctA+"/portal-sessions", "{}")
	if got := decode[sessionView](t, w).URL; w.Code != 201 || !strings.HasPrefix(got, "https://hooks.example.com/relay/portal/#token=hrs_") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, bad := range []string{"hooks.example.com", "ftp://hooks.example.com", "https://hooks.example.com/?a=b", "https://hooks.example.com/#x"} {
		if err := (Config{Token: testToken, PortalBaseURL: bad}).Validate(); err == nil {
			t.Errorf("portal base URL %q accepted", bad)
		}
	}
}

// Every refused session body names its field.
func TestPortalSessionRequestRules(t *testing.T) {
	e := newMatrixEnv(t)
	path := "/v1/accounts/" + acctA + "/portal-sessions"
	for _, tt := range []struct {
		body   string
		status int
		field  string
	}{
		{`{"scopes":`, 400, "body"},
		{`[]`, 422, "body"},
		{`{"scopes":[]}`, 422, "scopes"},
		{`{"scopes":null}`, 422, "scopes"},
		{`{"scopes":["deliveries:read","root"]}`, 422, "scopes[1]"},
		{`{"expires_in":"1h"}`, 422, "expires_in"},
		{`{"expires_in":1.5}`, 422, "expires_in"},
		{`{"expires_in":59}`, 422, "expires_in"},
		{`{"expires_in":-1}`, 422, "expires_in"},
		{`{"expires_in":604801}`, 422, "expires_in"},
		{`{"expires_in":99999999999999}`, 422, "expires_in"},
		{`{"account_id":"acct_b"}`, 422, "account_id"},
	} {
		w := do(t, e.h, "POST", path, tt.body)
		if w.Code != tt.status || decode[apiError](t, w).Field != tt.field {
			t.Errorf("%s: %d %s, want %d on %s", tt.body, w.Code, w.Body, tt.status, tt.field)
		}
	}
	if w := do(t, e.h, "POST", path, `{"expires_in":604800}`); w.Code != 201 {
		t.Fatalf("at the bound: %d %s", w.Code, w.Body)
	}
	if scopes, life, err := (apikey.SessionFields{}).Check(); err != nil || len(scopes) != len(apikey.Scopes) || life != time.Hour {
		t.Fatalf("defaults: %v %s %v", scopes, life, err)
	}
}
