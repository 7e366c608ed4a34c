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
	resolved map[string]resolved
	routed   map[routeKey]routed
}

type resolved struct {
	ep      endpoint.Endpoint
	err     error
	fetched time.Time
}

type routeKey struct{ account, event string }

type routed struct {
	eps     []endpoint.Endpoint
	fetched time.Time
}

var _ endpoint.Source = (*Cache)(nil)

// NewCache caches src's answers for ttl (0: DefaultCacheTTL).
func NewCache(src endpoint.Source, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &Cache{src: src, ttl: ttl, Now: time.Now, resolved: map[string]resolved{}, routed: map[routeKey]routed{}}
}

// TTL is the staleness bound.
func (c *Cache) TTL() time.Duration { return c.ttl }

func (c *Cache) fresh(fetched time.Time) bool { return c.Now().Sub(fetched) < c.ttl }

// Resolve is the source's Resolve, at most TTL old.
func (c *Cache) Resolve(ctx context.Context, id string) (endpoint.Endpoint, error) {
	c.mu.Lock()
	r, ok := c.resolved[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.fresh(r.fetched) {
		return r.ep, r.err
	}
	fetched := c.Now()
	ep, err := c.src.Resolve(ctx, id)
	if err != nil && !errors.Is(err, endpoint.ErrNotFound) && !errors.Is(err, endpoint.ErrDeleted) {
		return ep, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return ep, err
	}
	if len(c.resolved) >= maxCached {
		c.resolved = sweep(c.resolved, func(r resolved) bool { return c.fresh(r.fetched) })
	}
	c.resolved[id] = resolved{ep: ep, err: err, fetched: fetched}
	return ep, err
}

// Route is the source's Route, at most TTL old.
func (c *Cache) Route(ctx context.Context, accountID, eventName string) ([]endpoint.Endpoint, error) {
	key := routeKey{accountID, eventName}
	c.mu.Lock()
	r, ok := c.routed[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.fresh(r.fetched) {
		return r.eps, nil
	}
	fetched := c.Now()
	eps, err := c.src.Route(ctx, accountID, eventName)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return eps, nil
	}
	if len(c.routed) >= maxCached {
		c.routed = sweep(c.routed, func(r routed) bool { return c.fresh(r.fetched) })
	}
	c.routed[key] = routed{eps: eps, fetched: fetched}
	return eps, nil
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
