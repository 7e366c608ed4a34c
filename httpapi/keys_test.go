package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
)

// A key made by the admin is shown once, listed without it, acts within its
// scopes, and once revoked is refused at once by this server (401).
func TestAPIKeyRoutes(t *testing.T) {
	e := newMatrixEnv(t)
	keysPath := "/v1/accounts/" + acctA + "/api-keys"
	w := do(t, e.h, "POST", keysPath, `{"name":"crm sync","scopes":["endpoints:read","deliveries:read"],"expires_at":"`+time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339)+`"}`)
	created := decode[apikey.View](t, w)
	if w.Code != 201 || !strings.HasPrefix(created.Key, "hrk_") || !strings.HasPrefix(created.ID, "key_") || created.ExpiresAt == nil ||
		len(created.Scopes) != 2 || created.Scopes[0] != apikey.DeliveriesRead {
		t.Fatalf("create: %d %+v", w.Code, created)
	}
	e.tokens = append(e.tokens, created.Key)
	w = do(t, e.h, "GET", keysPath, "")
	list := decode[keyList](t, w)
	if w.Code != 200 || len(list.APIKeys) != 2 || strings.Contains(w.Body.String(), "hrk_") {
		t.Fatalf("list: %d %s", w.Code, w.Body) // the expired key of newMatrixEnv, and this one
	}

	asKey := []string{"Authorization", "Bearer " + created.Key}
	if w := do(t, e.h, "GET", "/v1/accounts/"+acctA+"/endpoints", "", asKey...); w.Code != 200 {
		t.Fatalf("the key reads its account's endpoints: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "POST", "/v1/accounts/"+acctA+"/endpoints", `{"url":"https://hooks.example.com/x","events":["*"]}`, asKey...); w.Code != 403 || decode[apiError](t, w).Field != "Authorization" {
		t.Fatalf("without endpoints:write: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "POST", keysPath, `{"name":"mine","scopes":["endpoints:write"]}`, asKey...); w.Code != 404 {
		t.Fatalf("a key made a key: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "DELETE", keysPath+"/"+created.ID, ""); w.Code != 204 {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "GET", "/v1/accounts/"+acctA+"/endpoints", "", asKey...); w.Code != 401 || !strings.Contains(w.Body.String(), "revoked") {
		t.Fatalf("a revoked key: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "DELETE", keysPath+"/"+created.ID, ""); w.Code != 404 || decode[apiError](t, w).Field != "key_id" {
		t.Fatalf("revoke again: %d %s", w.Code, w.Body)
	}
	if w := do(t, e.h, "DELETE", "/v1/accounts/"+acctB+"/api-keys/"+created.ID, ""); w.Code != 404 {
		t.Fatalf("revoke under another account: %d %s", w.Code, w.Body)
	}
}

// Every refused key body names its field.
func TestAPIKeyRequestRules(t *testing.T) {
	e := newMatrixEnv(t)
	keysPath := "/v1/accounts/" + acctA + "/api-keys"
	for _, tt := range []struct {
		body   string
		status int
		field  string
	}{
		{``, 400, "body"},
		{`{"name":`, 400, "body"},
		{`[]`, 422, "body"},
		{`{"scopes":["deliveries:read"]}`, 422, "name"},
		{`{"name":"` + strings.Repeat("n", 101) + `","scopes":["deliveries:read"]}`, 422, "name"},
		{`{"name":7,"scopes":["deliveries:read"]}`, 422, "name"},
		{`{"name":"n"}`, 422, "scopes"},
		{`{"name":"n","scopes":[]}`, 422, "scopes"},
		{`{"name":"n","scopes":"deliveries:read"}`, 422, "scopes"},
		{`{"name":"n","scopes":["deliveries:read","root"]}`, 422, "scopes[1]"},
		{`{"name":"n","scopes":["deliveries:read"],"expires_at":"tomorrow"}`, 422, "expires_at"},
		{`{"name":"n","scopes":["deliveries:read"],"expires_at":"2020-01-01T00:00:00Z"}`, 422, "expires_at"},
		{`{"name":"n","scopes":["deliveries:read"],"expires_at":"` + time.Now().Add(400*24*time.Hour).UTC().Format(time.RFC3339) + `"}`, 422, "expires_at"},
		{`{"name":"n","scopes":["deliveries:read"],"account_id":"acct_b"}`, 422, "account_id"},
		{`{"name":"n","scopes":["deliveries:read"],"key":"hrk_mine"}`, 422, "key"},
	} {
		w := do(t, e.h, "POST", keysPath, tt.body)
		if w.Code != tt.status || decode[apiError](t, w).Field != tt.field {
			t.Errorf("%s: %d %s, want %d on %s", tt.body, w.Code, w.Body, tt.status, tt.field)
		}
	}
}
