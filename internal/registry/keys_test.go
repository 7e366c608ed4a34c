package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
	"github.com/hookrelay/hookrelay/event"
)

// Keys: made with their hash only stored, listed without it, scoped to
// their account, revoked at once through the cache and within its TTL
// without it; bounds refused naming the field.
func TestAPIKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := newClock()
		r := open(t, dsn, Options{Now: clk.Now})
		expires := clk.Now().Add(30 * 24 * time.Hour)
		k, key, err := r.CreateKey(ctx, "acct_1", apikey.Fields{Name: "crm sync", Scopes: []string{"endpoints:read", "deliveries:read", "endpoints:read"}, ExpiresAt: &expires})
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := apikey.IDOf(key); !ok || id != k.ID || !strings.HasPrefix(key, "hrk_") || len(key) < 4+32 {
			t.Fatalf("key %q does not carry id %s", key, k.ID)
		}
		if got := strings.Join(scopeNames(k.Scopes), ","); got != "deliveries:read,endpoints:read" {
			t.Fatalf("scopes %s", got)
		}
		// Only the hash is stored: no column holds the key or its secret part.
		var stored string
		if err := r.db.QueryRowContext(ctx, r.dialect.rebind(`SELECT id || account_id || name || scopes FROM api_keys WHERE id = ?`), k.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored, key[len(key)-20:]) {
			t.Fatalf("the key is stored")
		}
		got, err := r.LookupKey(ctx, k.ID)
		if err != nil || !apikey.Verify(key, got.Hash) || apikey.Verify(key+"x", got.Hash) || got.AccountID != "acct_1" || !got.ExpiresAt.Equal(expires.Truncate(time.Millisecond)) {
			t.Fatalf("lookup: %+v %v", got, err)
		}
		if err := r.RevokeKey(ctx, "acct_2", k.ID); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("another account revoked the key: %v", err)
		}
		if keys, err := r.ListKeys(ctx, "acct_2"); err != nil || len(keys) != 0 {
			t.Fatalf("another account lists %v %v", keys, err)
		}

		// Through a cache: a revoke elsewhere is seen within TTL, one
		// through this cache at once.
		cache := NewKeyCache(r, 5*time.Second)
		cache.Now = clk.Now
		if _, err := cache.LookupKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if err := r.RevokeKey(ctx, "acct_1", k.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := cache.LookupKey(ctx, k.ID); got.Usable(clk.Now()) != nil {
			t.Fatalf("the cache answered afresh inside its TTL")
		}
		clk.Advance(5 * time.Second)
		if got, _ := cache.LookupKey(ctx, k.ID); !errors.Is(got.Usable(clk.Now()), apikey.ErrRevoked) {
			t.Fatalf("past the TTL, the revoked key is %+v", got)
		}
		k2, _, err := cache.CreateKey(ctx, "acct_1", apikey.Fields{Name: "second", Scopes: []string{"deliveries:write"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cache.LookupKey(ctx, k2.ID); err != nil {
			t.Fatal(err)
		}
		if err := cache.RevokeKey(ctx, "acct_1", k2.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := cache.LookupKey(ctx, k2.ID); !errors.Is(got.Usable(clk.Now()), apikey.ErrRevoked) {
			t.Fatalf("revoked through the cache, still usable: %+v", got)
		}
		if keys, err := r.ListKeys(ctx, "acct_1"); err != nil || len(keys) != 0 {
			t.Fatalf("revoked keys listed: %v %v", keys, err)
		}
		if _, err := cache.LookupKey(ctx, "key_nosuchkey"); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
	})
}

func scopeNames(s []apikey.Scope) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

func TestAPIKeyBounds(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	r := open(t, stores[0].fresh(t), Options{Now: clk.Now})
	now := clk.Now()
	for _, tt := range []struct {
		f     apikey.Fields
		field string
	}{
		{apikey.Fields{Scopes: []string{"deliveries:read"}}, "name"},
		{apikey.Fields{Name: strings.Repeat("n", apikey.MaxNameLength+1), Scopes: []string{"deliveries:read"}}, "name"},
		{apikey.Fields{Name: "tab\there", Scopes: []string{"deliveries:read"}}, "name"},
		{apikey.Fields{Name: "n"}, "scopes"},
		{apikey.Fields{Name: "n", Scopes: []string{"deliveries:read", "admin"}}, "scopes[1]"},
		{apikey.Fields{Name: "n", Scopes: []string{"deliveries:read"}, ExpiresAt: ptr(now.Add(-time.Hour))}, "expires_at"},
		{apikey.Fields{Name: "n", Scopes: []string{"deliveries:read"}, ExpiresAt: ptr(now.Add(apikey.MaxLifetime + time.Hour))}, "expires_at"},
	} {
		_, _, err := r.CreateKey(ctx, "acct_1", tt.f)
		var fe *event.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%+v: %v, want a field error on %s", tt.f, err, tt.field)
		}
	}
	if _, _, err := r.CreateKey(ctx, "acct_1", apikey.Fields{Name: strings.Repeat("n", apikey.MaxNameLength), Scopes: []string{"deliveries:read"}, ExpiresAt: ptr(now.Add(apikey.MaxLifetime))}); err != nil {
		t.Fatalf("at the bounds: %v", err)
	}
	for i := 1; i < apikey.MaxPerAccount; i++ {
		if _, _, err := r.CreateKey(ctx, "acct_1", apikey.Fields{Name: "n", Scopes: []string{"deliveries:read"}}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := r.CreateKey(ctx, "acct_1", apikey.Fields{Name: "one too many", Scopes: []string{"deliveries:read"}})
	var fe *event.FieldError
	if !errors.As(err, &fe) || fe.Field != "account_id" {
		t.Fatalf("key %d: %v", apikey.MaxPerAccount+1, err)
	}
	if _, _, err := r.CreateKey(ctx, "acct_2", apikey.Fields{Name: "other account", Scopes: []string{"deliveries:read"}}); err != nil {
		t.Fatalf("another account's room: %v", err)
	}
}
