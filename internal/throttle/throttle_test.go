package throttle

import (
	"context"
	"testing"
	"time"
)

func TestInFlight(t *testing.T) {
	now := time.Unix(1000, 0)
	f := InFlight{Now: func() time.Time { return now }}
	r1, _, ok1 := f.TryAcquire("ep", 2)
	_, _, ok2 := f.TryAcquire("ep", 2)
	_, wait, ok3 := f.TryAcquire("ep", 2)
	_, _, other := f.TryAcquire("other", 2)
	if !ok1 || !ok2 || ok3 || !other {
		t.Fatalf("acquire: got %t %t %t %t, want true true false true", ok1, ok2, ok3, other)
	}
	// Nothing ended yet: a second an attempt, two places: back in 500 ms,
	// the next one turned away 500 ms after that.
	if _, w, _ := f.TryAcquire("ep", 2); wait != 500*time.Millisecond || w != time.Second {
		t.Fatalf("waits %s, %s; want 500ms, 1s", wait, w)
	}
	now = now.Add(4 * time.Second)
	r1()
	r1() // a second release gives back nothing more
	if got := f.Running("ep"); got != 1 {
		t.Fatalf("running after release: %d, want 1", got)
	}
	if _, _, ok := f.TryAcquire("ep", 2); !ok {
		t.Fatal("a released place was not taken again")
	}
	// Attempts take 4 s here now: one turned away comes back in 2 s.
	if _, w, ok := f.TryAcquire("ep", 2); ok || w != 2*time.Second {
		t.Fatalf("third place: ok %t, wait %s; want refused, back in 2s", ok, w)
	}
}

func TestRates(t *testing.T) {
	now := time.Unix(1000, 0)
	r := Rates{Now: func() time.Time { return now }}
	want := []time.Duration{0, 200 * time.Millisecond, 400 * time.Millisecond}
	for i, w := range want {
		got, _ := r.Reserve(context.Background(), "ep", 5)
		if got != w {
			t.Fatalf("reservation %d: %s, want %s", i, got, w)
		}
	}
	if got, _ := r.Reserve(context.Background(), "other", 5); got != 0 {
		t.Fatalf("another endpoint waits %s, want 0", got)
	}
	now = now.Add(10 * time.Second) // idle: no credit is saved up
	for i, w := range []time.Duration{0, 200 * time.Millisecond} {
		if got, _ := r.Reserve(context.Background(), "ep", 5); got != w {
			t.Fatalf("after idle, reservation %d: %s, want %s", i, got, w)
		}
	}
}
