// Package accountrate is the quota on events accepted per account: a token
// bucket per account (rate tokens a second, up to burst), kept in this
// process's memory. A request takes one token per event of each account it
// holds, all or none, so a refused request starts nothing.
//
// Memory stays bounded: a bucket that has refilled to its burst is the same
// as no bucket, and is dropped when the buckets are swept (every
// SweepEvery, or when MaxAccounts are held); at MaxAccounts after a sweep,
// the fullest bucket makes way for a new account's.
//
// The buckets are per process: N processes sharing the traffic accept up to
// N times the rate between them.
package accountrate

import (
	"math"
	"sync"
	"time"
)

// Defaults.
const (
	// MaxAccounts bounds the buckets held at once.
	MaxAccounts = 100_000
	// SweepEvery is how often full buckets are dropped.
	SweepEvery = time.Minute
)

// Limiter holds one token bucket per account. A nil *Limiter admits
// everything.
type Limiter struct {
	rate        float64 // tokens a second
	burst       float64
	maxAccounts int
	now         func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was counted
}

// Options configure a Limiter beyond its rate and burst.
type Options struct {
	// MaxAccounts bounds the buckets held; 0 is MaxAccounts.
	MaxAccounts int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// New is a limiter admitting rate events a second per account, burst at
// once; rate 0 is no limit (nil).
func New(rate float64, burst int, o Options) *Limiter {
	if rate <= 0 {
		return nil
	}
	l := &Limiter{rate: rate, burst: float64(burst), maxAccounts: o.MaxAccounts, now: o.Now, buckets: map[string]*bucket{}}
	if l.maxAccounts <= 0 {
		l.maxAccounts = MaxAccounts
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.lastSweep = l.now()
	return l
}

// Refusal says why a request was refused.
type Refusal struct {
	// AccountID is the first account (in the order given) over its rate.
	AccountID string
	// Events is how many events of that account the request held.
	Events int
	// Wait is how long until every account of the request has the tokens
	// it needs, if no other request takes them meanwhile.
	Wait time.Duration
	// OverBurst: the request holds more events of the account than its
	// burst; it can never be admitted as it is.
	OverBurst bool
}

// Take takes counts[i].N tokens from each account's bucket if every one
// holds enough, or none and says why not.
func (l *Limiter) Take(counts []Count) *Refusal {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.maybeSweep(now)
	var refusal *Refusal
	var wait time.Duration
	for _, c := range counts {
		need := float64(c.N)
		if need > l.burst {
			return &Refusal{AccountID: c.AccountID, Events: c.N, OverBurst: true}
		}
		have := l.tokens(c.AccountID, now)
		if have >= need {
			continue
		}
		w := time.Duration(math.Ceil((need - have) / l.rate * float64(time.Second)))
		wait = max(wait, w)
		if refusal == nil {
			refusal = &Refusal{AccountID: c.AccountID, Events: c.N}
		}
	}
	if refusal != nil {
		refusal.Wait = wait
		return refusal
	}
	for _, c := range counts {
		l.bucket(c.AccountID, now).tokens -= float64(c.N)
	}
	return nil
}

// Give returns tokens Take took for a request that then started nothing,
// up to each bucket's burst.
func (l *Limiter) Give(counts []Count) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range counts {
		if b, ok := l.buckets[c.AccountID]; ok {
			b.tokens = min(l.burst, b.tokens+float64(c.N))
		}
	}
}

// Count is how many events of one account a request holds.
type Count struct {
	AccountID string
	N         int
}

// Held is how many buckets the limiter holds, for tests and metrics.
func (l *Limiter) Held() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// tokens is what account's bucket holds at now, refilled; a missing bucket
// is full.
func (l *Limiter) tokens(account string, now time.Time) float64 {
	b, ok := l.buckets[account]
	if !ok {
		return l.burst
	}
	return l.refill(b, now)
}

func (l *Limiter) refill(b *bucket, now time.Time) float64 {
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.at = now
	}
	return b.tokens
}

// bucket is account's bucket, made full (and room made for it) if missing.
func (l *Limiter) bucket(account string, now time.Time) *bucket {
	if b, ok := l.buckets[account]; ok {
		l.refill(b, now)
		return b
	}
	if len(l.buckets) >= l.maxAccounts {
		l.sweep(now)
	}
	if len(l.buckets) >= l.maxAccounts {
		l.evictFullest(now)
	}
	b := &bucket{tokens: l.burst, at: now}
	l.buckets[account] = b
	return b
}

func (l *Limiter) maybeSweep(now time.Time) {
	if now.Sub(l.lastSweep) >= SweepEvery {
		l.sweep(now)
	}
}

// sweep drops every bucket that has refilled to its burst.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for account, b := range l.buckets {
		if l.refill(b, now) >= l.burst {
			delete(l.buckets, account)
		}
	}
}

// evictFullest drops the bucket closest to full: its account has waited
// longest since its last events, and loses least by starting full.
func (l *Limiter) evictFullest(now time.Time) {
	var fullest string
	most := math.Inf(-1)
	for account, b := range l.buckets {
		if t := l.refill(b, now); t > most {
			fullest, most = account, t
		}
	}
	delete(l.buckets, fullest)
}
