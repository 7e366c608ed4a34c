package accountrate

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)} }

func one(account string) []Count { return []Count{{AccountID: account, N: 1}} }

// An account gets its burst at once, then its rate; another account's
// bucket is its own.
func TestBurstThenRate(t *testing.T) {
	c := newClock()
	l := New(10, 20, Options{Now: c.now})
	for i := range 20 {
		if r := l.Take(one("acct_a")); r != nil {
			t.Fatalf("event %d of the burst refused: %+v", i, r)
		}
	}
	r := l.Take(one("acct_a"))
	if r == nil || r.AccountID != "acct_a" || r.Wait != 100*time.Millisecond || r.OverBurst {
		t.Fatalf("the 21st event at once: %+v, want refused with a 100ms wait", r)
	}
	if r := l.Take(one("acct_b")); r != nil {
		t.Fatalf("another account refused for acct_a's burst: %+v", r)
	}
	c.advance(100 * time.Millisecond)
	if r := l.Take(one("acct_a")); r != nil {
		t.Fatalf("after the wait it named: %+v", r)
	}
	if r := l.Take(one("acct_a")); r == nil {
		t.Fatal("a second event 100ms later was admitted at 10/s")
	}
}

// A request of several accounts takes from all or from none; one holding
// more events of an account than its burst is refused as such.
func TestAllOrNothing(t *testing.T) {
	c := newClock()
	l := New(1, 5, Options{Now: c.now})
	if r := l.Take([]Count{{"acct_a", 4}}); r != nil {
		t.Fatal(r)
	}
	r := l.Take([]Count{{"acct_b", 3}, {"acct_a", 3}})
	if r == nil || r.AccountID != "acct_a" || r.Wait != 2*time.Second {
		t.Fatalf("acct_a over its rate in a mixed request: %+v, want refused, wait 2s", r)
	}
	// acct_b lost nothing to the refused request: its burst is whole.
	if r := l.Take([]Count{{"acct_b", 5}}); r != nil {
		t.Fatalf("acct_b's burst after a refused request: %+v", r)
	}
	if r := l.Take([]Count{{"acct_c", 6}}); r == nil || !r.OverBurst || r.Events != 6 {
		t.Fatalf("6 events against a burst of 5: %+v, want OverBurst", r)
	}
	// Give returns what a request that started nothing took.
	l.Give([]Count{{"acct_b", 5}})
	if r := l.Take([]Count{{"acct_b", 5}}); r != nil {
		t.Fatalf("after Give: %+v", r)
	}
}

// Buckets that refilled are dropped; at the bound the fullest makes way,
// so memory stays bounded whatever number of accounts sends.
func TestBoundedMemory(t *testing.T) {
	c := newClock()
	l := New(1, 2, Options{Now: c.now, MaxAccounts: 100})
	for i := range 1000 {
		if r := l.Take(one(fmt.Sprintf("acct_%d", i))); r != nil {
			t.Fatalf("account %d's first event: %+v", i, r)
		}
		if l.Held() > 100 {
			t.Fatalf("%d buckets held, bound 100", l.Held())
		}
		c.advance(time.Millisecond)
	}
	c.advance(SweepEvery)
	l.Take(one("acct_last"))
	if l.Held() != 1 {
		t.Fatalf("%d buckets held after every other refilled, want 1", l.Held())
	}
	var off *Limiter = New(0, 0, Options{})
	if off != nil || off.Take([]Count{{"acct_a", 1e6}}) != nil {
		t.Fatal("rate 0 limits")
	}
}
