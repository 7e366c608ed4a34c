package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
)

// An update reaches the next Resolve and Route within the cache's TTL, and
// not a moment later: the fake clock stands in for time passing.
func TestCacheStalenessBound(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		r := open(t, dsn, Options{})
		clk := newClock()
		cache := NewCache(r, 5*time.Second)
		cache.Now = clk.Now

		e, _ := create(t, r, "acct_c", fields("https://hooks.example.com/v1", "*"))
		url := func() string {
			t.Helper()
			ep, err := cache.Resolve(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			return ep.URL.String()
		}
		routed := func() int {
			t.Helper()
			eps, err := cache.Route(ctx, "acct_c", event.Delivered)
			if err != nil {
				t.Fatal(err)
			}
			return len(eps)
		}
		if url() != "https://hooks.example.com/v1" || routed() != 1 {
			t.Fatal("first answers")
		}
		if _, err := r.Update(ctx, "acct_c", e.ID, Fields{URL: ptr("https://hooks.example.com/v2"), Enabled: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(4999 * time.Millisecond)
		if url() != "https://hooks.example.com/v1" || routed() != 1 {
			t.Fatal("the cache asked the database again within its TTL")
		}
		clk.Advance(time.Millisecond)
		if url() != "https://hooks.example.com/v2" || routed() != 0 {
			t.Fatal("an update was not seen once the TTL passed")
		}

		// Deleted and unknown are cached answers too, within the same bound.
		if err := r.Delete(ctx, "acct_c", e.ID); err != nil {
			t.Fatal(err)
		}
		clk.Advance(5 * time.Second)
		if _, err := cache.Resolve(ctx, e.ID); !errors.Is(err, endpoint.ErrDeleted) {
			t.Fatalf("deleted: %v", err)
		}
		if _, err := cache.Resolve(ctx, "ep_unknown"); !errors.Is(err, endpoint.ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	})
}

// Writes through a registry whose OnChange is the cache's Forget are seen
// by that process at once.
func TestCacheForgetsOwnWrites(t *testing.T) {
	dsn := stores[0].fresh(t)
	ctx := context.Background()
	var cache *Cache
	r := open(t, dsn, Options{OnChange: func(a, id string) { cache.Forget(a, id) }})
	cache = NewCache(r, time.Hour)
	if eps, _ := cache.Route(ctx, "acct_f", event.Opened); len(eps) != 0 {
		t.Fatal("routed before any endpoint")
	}
	e, _ := create(t, r, "acct_f", fields("https://hooks.example.com/", "*"))
	if eps, _ := cache.Route(ctx, "acct_f", event.Opened); len(eps) != 1 {
		t.Fatal("a new endpoint waited out the cache")
	}
	if _, err := r.Update(ctx, "acct_f", e.ID, Fields{Description: ptr("changed")}); err != nil {
		t.Fatal(err)
	}
	if ep, _ := cache.Resolve(ctx, e.ID); ep.Description != "changed" {
		t.Fatal("an update waited out the cache")
	}
}

// A source that fails is not cached: the next call asks again.
func TestCacheDoesNotKeepErrors(t *testing.T) {
	src := &failingSource{}
	cache := NewCache(src, time.Hour)
	for range 2 {
		if _, err := cache.Resolve(context.Background(), "ep_x"); err == nil {
			t.Fatal("no error")
		}
		if _, err := cache.Route(context.Background(), "a", event.Opened); err == nil {
			t.Fatal("no error")
		}
	}
	if src.calls != 4 {
		t.Fatalf("%d calls to the source, want 4", src.calls)
	}
}

type failingSource struct{ calls int }

func (f *failingSource) Resolve(context.Context, string) (endpoint.Endpoint, error) {
	f.calls++
	return endpoint.Endpoint{}, errors.New("database down")
}

func (f *failingSource) Route(context.Context, string, string) ([]endpoint.Endpoint, error) {
	f.calls++
	return nil, errors.New("database down")
}
