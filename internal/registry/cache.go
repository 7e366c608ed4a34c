package registry

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
)

// DefaultCacheTTL bounds how stale a cached answer may be: an update in
// the database reaches the next attempt within it.
const DefaultCacheTTL = 5 * time.Second

// maxCached bounds each of the cache's maps; past it, expired answers are
// dropped, and if none are, everything is.
const maxCached = 200_000

// Cache answers Resolve and Route from memory for up to TTL after it asked
// src, so workers and the API do not query the database for every attempt
// and event. An answer is never older than TTL: an endpoint updated,
// disabled or deleted in the database is seen within TTL by every process.
// Forget drops what it holds of one account at once, for writes made in
// this process. Not-found and deleted answers are cached too; errors are not.
type Cache struct {
	src endpoint.Source
	ttl time.Duration
	// Now is the clock; tests set a fake one.
	Now func() time.Time

	mu sync.Mutex
	// gen counts Forget calls: an answer fetched across one is not kept,
	// since it may predate the write that Forget was told of.
	gen      uint64
	resolved map[string]cached[endpoint.Endpoint]
	routed   map[routeKey]cached[[]endpoint.Endpoint]
}

// cached is one of src's answers and when it was fetched; err is nil or
// one worth keeping (not found, deleted).
type cached[V any] struct {
	v       V
	err     error
	fetched time.Time
}

type routeKey struct{ account, event string }

var _ endpoint.Source = (*Cache)(nil)

// NewCache caches src's answers for ttl (0: DefaultCacheTTL).
func NewCache(src endpoint.Source, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &Cache{src: src, ttl: ttl, Now: time.Now, resolved: map[string]cached[endpoint.Endpoint]{}, routed: map[routeKey]cached[[]endpoint.Endpoint]{}}
}

// TTL is the staleness bound.
func (c *Cache) TTL() time.Duration { return c.ttl }

func (c *Cache) fresh(fetched time.Time) bool { return c.Now().Sub(fetched) < c.ttl }

// Resolve is the source's Resolve, at most TTL old.
func (c *Cache) Resolve(ctx context.Context, id string) (endpoint.Endpoint, error) {
	return lookup(c, &c.resolved, id, func() (endpoint.Endpoint, error) { return c.src.Resolve(ctx, id) },
		func(err error) bool {
			return err == nil || errors.Is(err, endpoint.ErrNotFound) || errors.Is(err, endpoint.ErrDeleted)
		})
}

// Route is the source's Route, at most TTL old.
func (c *Cache) Route(ctx context.Context, accountID, eventName string) ([]endpoint.Endpoint, error) {
	// A partial answer (*endpoint.RouteError) is passed on whole, not kept:
	// a refused endpoint is looked at again on the next event.
	return lookup(c, &c.routed, routeKey{accountID, eventName}, func() ([]endpoint.Endpoint, error) {
		eps, err := c.src.Route(ctx, accountID, eventName)
		var partial *endpoint.RouteError
		if err != nil && !errors.As(err, &partial) {
			return nil, err
		}
		return eps, err
	}, func(err error) bool { return err == nil })
}

// lookup answers key from *m while its answer there is fresh, and otherwise
// from fetch; it keeps fetch's answer unless keep refuses its error or a
// Forget came while fetching.
func lookup[K comparable, V any](c *Cache, m *map[K]cached[V], key K, fetch func() (V, error), keep func(error) bool) (V, error) {
	c.mu.Lock()
	r, ok := (*m)[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.fresh(r.fetched) {
		return r.v, r.err
	}
	fetched := c.Now()
	v, err := fetch()
	if !keep(err) {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return v, err
	}
	if len(*m) >= maxCached {
		*m = sweep(*m, func(r cached[V]) bool { return c.fresh(r.fetched) })
	}
	(*m)[key] = cached[V]{v: v, err: err, fetched: fetched}
	return v, err
}

// Forget drops the cached answers about accountID and endpoint id, so this
// process sees its own writes at once; other processes see them within TTL.
func (c *Cache) Forget(accountID, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.resolved, id)
	for k := range c.routed {
		if k.account == accountID {
			delete(c.routed, k)
		}
	}
}

// sweep keeps the entries still fresh, or none if all are.
func sweep[K comparable, V any](m map[K]V, keep func(V) bool) map[K]V {
	out := make(map[K]V, len(m)/2)
	for k, v := range m {
		if keep(v) {
			out[k] = v
		}
	}
	if len(out) >= maxCached {
		return map[K]V{}
	}
	return out
}
