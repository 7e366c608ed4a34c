package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/internal/throttle"
)

// Reserve reserves endpointID's next request at perSecond (its rate_limit)
// and returns how long from now it may be sent. On PostgreSQL the schedule
// is one row per endpoint that every worker of the fleet reserves from, one
// statement a reservation, on the database's clock; on SQLite (one host)
// it is this process's.
func (r *Registry) Reserve(ctx context.Context, endpointID string, perSecond float64) (time.Duration, error) {
	if r.dialect.name != postgres.name {
		return r.rates.Reserve(ctx, endpointID, perSecond)
	}
	interval := throttle.Interval(perSecond)
	var ahead float64 // seconds from now to the next request after this one
	err := r.db.QueryRowContext(ctx, `INSERT INTO endpoint_rates AS r (endpoint_id, next_at)
		VALUES ($1, clock_timestamp() + $2 * interval '1 microsecond')
		ON CONFLICT (endpoint_id) DO UPDATE SET next_at = GREATEST(r.next_at, clock_timestamp()) + $2 * interval '1 microsecond'
		RETURNING EXTRACT(EPOCH FROM r.next_at - clock_timestamp())::float8`,
		endpointID, interval.Microseconds()).Scan(&ahead)
	if err != nil {
		return 0, fmt.Errorf("endpoint %q: reserve a request under its rate_limit: %w", endpointID, err)
	}
	return max(0, time.Duration(ahead*float64(time.Second))-interval), nil
}

// Reserve passes a rate limit's reservation to the registry the cache
// holds: a schedule is never cached.
func (c *Cache) Reserve(ctx context.Context, endpointID string, perSecond float64) (time.Duration, error) {
	r, ok := c.src.(interface {
		Reserve(ctx context.Context, endpointID string, perSecond float64) (time.Duration, error)
	})
	if !ok {
		return 0, fmt.Errorf("endpoint %q: the cached source keeps no rate_limit schedule", endpointID)
	}
	return r.Reserve(ctx, endpointID, perSecond)
}
