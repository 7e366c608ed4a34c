package throttle

import (
	"context"
	"testing"
	"time"
)

func TestInFlight(t *testing.T) {
	var f InFlight
	r1, ok1 := f.TryAcquire("ep", 2)
	_, ok2 := f.TryAcquire("ep", 2)
	_, ok3 := f.TryAcquire("ep", 2)
	_, other := f.TryAcquire("other", 2)
	if !ok1 || !ok2 || ok3 || !other {
		t.Fatalf("acquire: got %t %t %t %t, want true true false true", ok1, ok2, ok3, other)
	}
	r1()
	r1() // a second release gives back nothing more
	if got := f.Running("ep"); got != 1 {
		t.Fatalf("running after release: %d, want 1", got)
	}
	if _, ok := f.TryAcquire("ep", 2); !ok {
		t.Fatal("a released place was not taken again")
	}
	if _, ok := f.TryAcquire("ep", 2); ok {
		t.Fatal("a third place was taken with a limit of 2")
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
