package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/event"
)

// An account API key on a real `starter serve` with a registry and a real
// Temporal server: it acts on its own account's deliveries, finds nothing
// of another account's nor the admin's routes, is refused once revoked, and
// neither it nor the admin token appears in serve's log.
func TestAPIKeysOnServe(t *testing.T) {
	srv := startServeWith(t, hookrelay(t), "--endpoints-db", registryDSN(t, "sqlite"), "--worker", "--allow-cidr", "127.0.0.0/8")
	deliveryOf := map[string]string{}
	for i, account := range []string{"acct-keys-a", "acct-keys-b"} {
		if _, err := srv.createEndpoint(account, map[string]any{"url": "https://127.0.0.1:9009/" + account, "events": []string{"*"}}); err != nil {
			t.Fatal(err)
		}
		r, err := srv.post(accountEvent(account, event.Delivered, 7100+i))
		var acc apiAccepted
		if err != nil || r.code != http.StatusAccepted || json.Unmarshal(r.body, &acc) != nil || len(acc.Deliveries) != 1 {
			t.Fatalf("post for %s: %v %d %s", account, err, r.code, r.body)
		}
		deliveryOf[account] = acc.Deliveries[0].DeliveryID
	}
	r, err := srv.do(http.MethodPost, "/v1/accounts/acct-keys-a/api-keys", strings.NewReader(`{"name":"dashboard","scopes":["deliveries:write","endpoints:read"]}`), nil)
	var made struct{ ID, Key string }
	if err != nil || r.code != http.StatusCreated || json.Unmarshal(r.body, &made) != nil || !strings.HasPrefix(made.Key, "hrk_") {
		t.Fatalf("make a key: %v %d %s", err, r.code, r.body)
	}
	asKey := map[string]string{"Authorization": "Bearer " + made.Key}
	a, b := deliveryOf["acct-keys-a"], deliveryOf["acct-keys-b"]
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/v1/accounts/acct-keys-a/deliveries/" + a + "/resend", http.StatusAccepted},
		{"POST", "/v1/accounts/acct-keys-a/deliveries/" + b + "/resend", http.StatusNotFound},   // B's delivery under A's path
		{"POST", "/v1/accounts/acct-keys-b/deliveries/" + b + "/resend", http.StatusNotFound},   // B's path
		{"POST", "/v1/deliveries/" + a + "/resend", http.StatusNotFound},                        // the admin's route
		{"GET", "/v1/deliveries/" + a, http.StatusNotFound},                                     // the admin's route
		{"GET", "/v1/accounts/acct-keys-a/endpoints", http.StatusOK},                            // endpoints:read
		{"POST", "/v1/accounts/acct-keys-a/endpoints/none/rotate-secret", http.StatusForbidden}, // no endpoints:write
	} {
		r, err := srv.do(tt.method, tt.path, nil, asKey)
		if err != nil || r.code != tt.want {
			t.Errorf("%s %s with A's key: %v %d %s, want %d", tt.method, tt.path, err, r.code, r.body, tt.want)
		}
	}
	// The admin reaches B's delivery through B's path, not through A's.
	if r, err := srv.do("POST", "/v1/accounts/acct-keys-a/deliveries/"+b+"/resend", nil, nil); err != nil || r.code != http.StatusNotFound {
		t.Errorf("admin, B's delivery under A's path: %v %d %s", err, r.code, r.body)
	}
	if r, err := srv.do("POST", "/v1/accounts/acct-keys-b/deliveries/"+b+"/resend", nil, nil); err != nil || r.code != http.StatusAccepted {
		t.Errorf("admin, B's delivery under B's path: %v %d %s", err, r.code, r.body)
	}
	if r, err := srv.do(http.MethodDelete, "/v1/accounts/acct-keys-a/api-keys/"+made.ID, nil, nil); err != nil || r.code != http.StatusNoContent {
		t.Fatalf("revoke: %v %d %s", err, r.code, r.body)
	}
	if r, err := srv.do("GET", "/v1/accounts/acct-keys-a/endpoints", nil, asKey); err != nil || r.code != http.StatusUnauthorized {
		t.Errorf("revoked key: %v %d %s", err, r.code, r.body)
	}
	log := srv.Log()
	for name, secret := range map[string]string{"the key": made.Key, "its secret part": made.Key[len(made.Key)-30:], "the admin token": srv.token} {
		if strings.Contains(log, secret) {
			t.Errorf("serve's log holds %s", name)
		}
	}
	if !strings.Contains(log, `"credential":"key:`+made.ID+`"`) {
		t.Errorf("serve's log does not name the key by id:\n%s", log)
	}
}
