package apikey

import (
	"strings"
	"testing"
	"time"
)

// A generated key carries its id, verifies against its hash only, and
// nothing else shaped like it parses.
func TestGenerateAndVerify(t *testing.T) {
	id, key, hash, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := IDOf(key); !ok || got != id || !IsKey(key) || !strings.HasPrefix(id, IDPrefix) {
		t.Fatalf("key %q: id %q %v, want %q", key, got, ok, id)
	}
	changed := key[:len(key)-1] + "a"
	if changed == key {
		changed = key[:len(key)-1] + "b"
	}
	if !Verify(key, hash) || Verify(changed, hash) || Verify("", hash) {
		t.Fatalf("Verify accepts what it should not, or refuses the key")
	}
	_, other, _, _ := Generate()
	if other == key {
		t.Fatalf("two keys alike")
	}
	for _, bad := range []string{"", "hrk_", key + "x", key[:len(key)-1], strings.ToUpper(key), "hrk_" + strings.Repeat("1", 26) + "_" + strings.Repeat("a", 52), strings.Replace(key, "_", "-", 2)} {
		if _, ok := IDOf(bad); ok {
			t.Errorf("IDOf(%q) parsed", bad)
		}
	}
}

func TestFieldsCheck(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	in := func(d time.Duration) *time.Time { at := now.Add(d); return &at }
	scopes, err := Fields{Name: "n", Scopes: []string{"endpoints:write", "deliveries:read", "endpoints:write"}, ExpiresAt: in(MaxLifetime)}.Check(now)
	if err != nil || len(scopes) != 2 || scopes[0] != DeliveriesRead || scopes[1] != EndpointsWrite {
		t.Fatalf("%v %v", scopes, err)
	}
	for _, tt := range []struct {
		f    Fields
		want string
	}{
		{Fields{Name: " ", Scopes: []string{"deliveries:read"}}, "name:"},
		{Fields{Name: "n", Scopes: []string{"Deliveries:Read"}}, "scopes[0]:"},
		{Fields{Name: "n", Scopes: []string{"deliveries:read"}, ExpiresAt: in(30 * time.Second)}, "expires_at:"},
		{Fields{Name: "n", Scopes: []string{"deliveries:read"}, ExpiresAt: in(MaxLifetime + time.Second)}, "expires_at:"},
	} {
		if _, err := tt.f.Check(now); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %s", tt.f, err, tt.want)
		}
	}
}

func TestUsable(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	if (Key{}).Usable(now) != nil || (Key{ExpiresAt: &future}).Usable(now) != nil ||
		(Key{ExpiresAt: &past}).Usable(now) != ErrExpired || (Key{RevokedAt: &past, ExpiresAt: &future}).Usable(now) != ErrRevoked ||
		(Key{ExpiresAt: &now}).Usable(now) != ErrExpired {
		t.Fatal("Usable")
	}
}
