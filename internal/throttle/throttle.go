// Package throttle holds an endpoint's share of the fleet as one worker
// enforces it: InFlight, the attempts to each endpoint running at once in
// this process (its max_in_flight), and Rates, a rate limit's schedule of
// requests kept in memory for a single process (the endpoints file, a SQLite
// registry). A PostgreSQL registry keeps the schedule for the whole fleet.
package throttle

import (
	"context"
	"slices"
	"sync"
	"time"
)

// InFlight counts the attempts running per endpoint in this process, and
// learns how long each endpoint's attempts take, so an attempt it turns
// away is told when a place is likely free. The zero value is ready.
type InFlight struct {
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	mu  sync.Mutex
	eps map[string]*flight
}

// flight is one endpoint's attempts in this process.
type flight struct {
	running int
	started []time.Time   // of the running attempts, oldest first
	took    time.Duration // moving average of the attempts' durations; 0: none seen yet
	next    time.Time     // when the last attempt turned away was told to come back
}

func (f *InFlight) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// TryAcquire takes one of endpointID's limit places without waiting. ok
// false when all are taken: then wait is when to come back, a queue kept
// in time (each one turned away comes back one place's worth of the
// endpoint's attempt duration after the one before), so those turned away
// return about as fast as places free. release gives the place back (once).
func (f *InFlight) TryAcquire(endpointID string, limit int) (release func(), wait time.Duration, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.eps == nil {
		f.eps = map[string]*flight{}
	}
	ep := f.eps[endpointID]
	if ep == nil {
		ep = &flight{}
		f.eps[endpointID] = ep
	}
	now := f.now()
	if ep.running >= limit {
		// The duration of an attempt: the average of those that ended,
		// at least as long as the oldest still running has taken, at
		// least a second before any ended.
		took := max(ep.took, now.Sub(ep.started[0]))
		if ep.took == 0 {
			took = max(took, time.Second)
		}
		ep.next = later(ep.next, now).Add(took / time.Duration(limit))
		return nil, ep.next.Sub(now), false
	}
	ep.running++
	started := now
	ep.started = append(ep.started, started)
	var once sync.Once
	return func() {
		once.Do(func() { f.release(endpointID, started) })
	}, 0, true
}

func (f *InFlight) release(endpointID string, started time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ep := f.eps[endpointID]
	took := f.now().Sub(started)
	if ep.took == 0 {
		ep.took = took
	} else {
		ep.took = (4*ep.took + took) / 5
	}
	ep.running--
	if i := slices.Index(ep.started, started); i >= 0 {
		ep.started = slices.Delete(ep.started, i, i+1)
	}
	if ep.running == 0 && !ep.next.After(f.now()) {
		delete(f.eps, endpointID) // idle: forget it
	}
}

// Running is the number of endpointID's attempts running now.
func (f *InFlight) Running(endpointID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ep := f.eps[endpointID]; ep != nil {
		return ep.running
	}
	return 0
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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
