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

// Portal sessions: every scope and an hour by default, only the hash
// stored, looked up as keys, expired at their time, ended per account at
// once through the cache and within its TTL without it; bounds refused
// naming the field.
func TestPortalSessions(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := newClock()
		r := open(t, dsn, Options{Now: clk.Now})
		s, token, err := r.CreateSession(ctx, "acct_1", apikey.SessionFields{})
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := apikey.IDOf(token); !ok || id != s.ID || !strings.HasPrefix(token, "hrs_") || !strings.HasPrefix(s.ID, "ses_") {
			t.Fatalf("token %q does not carry id %s", token, s.ID)
		}
		if s.CredentialID() != "session:"+s.ID || len(s.Scopes) != 4 || !s.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
			t.Fatalf("session %+v", s)
		}
		var stored string
		if err := r.db.QueryRowContext(ctx, r.dialect.rebind(`SELECT id || account_id || scopes FROM portal_sessions WHERE id = ?`), s.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored, token[len(token)-20:]) {
			t.Fatalf("the token is stored")
		}
		got, err := r.LookupKey(ctx, s.ID)
		if err != nil || !apikey.Verify(token, got.Hash) || got.AccountID != "acct_1" || got.Usable(clk.Now()) != nil {
			t.Fatalf("lookup: %+v %v", got, err)
		}
		if got.Usable(clk.Now().Add(time.Hour)) == nil {
			t.Fatalf("usable at its expiry")
		}

		// Ending: another account's end leaves it; through a cache, an end
		// elsewhere is seen within TTL, one through this cache at once.
		cache := NewKeyCache(r, 5*time.Second)
		cache.Now = clk.Now
		if n, err := r.RevokeSessions(ctx, "acct_2"); err != nil || n != 0 {
			t.Fatalf("another account ended %d: %v", n, err)
		}
		if got, err := cache.LookupKey(ctx, s.ID); err != nil || got.Usable(clk.Now()) != nil {
			t.Fatalf("ended by another account: %+v %v", got, err)
		}
		if n, err := r.RevokeSessions(ctx, "acct_1"); err != nil || n != 1 {
			t.Fatalf("ended %d: %v", n, err)
		}
		if got, _ := cache.LookupKey(ctx, s.ID); got.Usable(clk.Now()) != nil {
			t.Fatalf("the cache answered afresh inside its TTL")
		}
		clk.Advance(5 * time.Second)
		if got, _ := cache.LookupKey(ctx, s.ID); !errors.Is(got.Usable(clk.Now()), apikey.ErrRevoked) {
			t.Fatalf("past the TTL, the ended session is %+v", got)
		}
		s2, _, err := cache.CreateSession(ctx, "acct_1", apikey.SessionFields{Scopes: []string{"endpoints:read"}, ExpiresIn: ptr(apikey.MaxSessionLifetime)})
		if err != nil || len(s2.Scopes) != 1 {
			t.Fatal(s2, err)
		}
		if _, err := cache.LookupKey(ctx, s2.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := cache.RevokeSessions(ctx, "acct_1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := cache.LookupKey(ctx, s2.ID); !errors.Is(got.Usable(clk.Now()), apikey.ErrRevoked) {
			t.Fatalf("ended through the cache, still usable: %+v", got)
		}
		if _, err := cache.LookupKey(ctx, "ses_nosuchsession"); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("unknown session: %v", err)
		}
	})
}

func TestPortalSessionBounds(t *testing.T) {
	ctx := context.Background()
	r := open(t, stores[0].fresh(t), Options{})
	for _, tt := range []struct {
		f     apikey.SessionFields
		field string
	}{
		{apikey.SessionFields{Scopes: []string{}}, "scopes"},
		{apikey.SessionFields{Scopes: []string{"endpoints:read", "admin"}}, "scopes[1]"},
		{apikey.SessionFields{ExpiresIn: ptr(30 * time.Second)}, "expires_in"},
		{apikey.SessionFields{ExpiresIn: ptr(apikey.MaxSessionLifetime + time.Second)}, "expires_in"},
	} {
		_, _, err := r.CreateSession(ctx, "acct_1", tt.f)
		var fe *event.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%+v: %v, want a field error on %s", tt.f, err, tt.field)
		}
	}
	if _, _, err := r.CreateSession(ctx, "acct_1", apikey.SessionFields{ExpiresIn: ptr(apikey.MinSessionLifetime)}); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
}
