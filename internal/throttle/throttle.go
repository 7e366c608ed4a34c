// Package throttle holds an endpoint's share of the fleet as one worker
// enforces it: InFlight, the attempts to each endpoint running at once in
// this process (its max_in_flight), and Rates, a rate limit's schedule of
// requests kept in memory for a single process (the endpoints file, a SQLite
// registry). A PostgreSQL registry keeps the schedule for the whole fleet.
package throttle

import (
	"context"
	"sync"
	"time"
)

// InFlight counts the attempts running per endpoint in this process. The
// zero value is ready.
type InFlight struct {
	mu      sync.Mutex
	running map[string]int
}

// TryAcquire takes one of endpointID's limit places without waiting; ok
// false when all are taken. release gives the place back (once).
func (f *InFlight) TryAcquire(endpointID string, limit int) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running == nil {
		f.running = map[string]int{}
	}
	if f.running[endpointID] >= limit {
		return nil, false
	}
	f.running[endpointID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.running[endpointID]--; f.running[endpointID] <= 0 {
				delete(f.running, endpointID)
			}
		})
	}, true
}

// Running is the number of endpointID's attempts running now.
func (f *InFlight) Running(endpointID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running[endpointID]
}

// Rates is a rate limit's schedule in memory (GCRA without a burst: one
// request every 1/perSecond). The zero value is ready.
type Rates struct {
	// Now is the clock; nil is time.Now.
	Now  func() time.Time
	mu   sync.Mutex
	next map[string]time.Time // the earliest time of each endpoint's next request
}

// Reserve reserves endpointID's next request at perSecond and returns how
// long from now it may be sent (0: at once). A reservation is never given
// back: one left unused delays the later ones, never the other way.
func (r *Rates) Reserve(_ context.Context, endpointID string, perSecond float64) (time.Duration, error) {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == nil {
		r.next = map[string]time.Time{}
	}
	slot := r.next[endpointID]
	if slot.Before(now) {
		slot = now
	}
	r.next[endpointID] = slot.Add(Interval(perSecond))
	return slot.Sub(now), nil
}

// Interval is the time between two requests at perSecond.
func Interval(perSecond float64) time.Duration {
	return time.Duration(float64(time.Second) / perSecond)
}
