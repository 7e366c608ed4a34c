package registry

import (
	"context"
	"time"
)

// OpenCached opens the registry at dsn behind a cache of ttl (0:
// DefaultCacheTTL) for attempts and routing; the cache forgets at once what
// this process writes through the registry.
func OpenCached(ctx context.Context, dsn string, ttl time.Duration, o Options) (*Registry, *Cache, error) {
	var cache *Cache
	next := o.OnChange
	o.OnChange = func(accountID, id string) {
		cache.Forget(accountID, id)
		if next != nil {
			next(accountID, id)
		}
	}
	r, err := Open(ctx, dsn, o)
	if err != nil {
		return nil, nil, err
	}
	cache = NewCache(r, ttl)
	return r, cache, nil
}
