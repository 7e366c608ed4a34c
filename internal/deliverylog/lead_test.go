package deliverylog

import (
	"context"
	"testing"
)

// In PostgreSQL one process holds a lease at a time, and it passes on
// when released; in SQLite (one host) every process holds it.
func TestLeaseIsHeldByOneProcess(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := openLog(t, dsn), openLog(t, dsn)
		first, err := a.TryLead(ctx, "reconcile")
		if err != nil || first == nil || !first.Held(ctx) {
			t.Fatalf("first TryLead: %v, %v", first, err)
		}
		second, err := b.TryLead(ctx, "reconcile")
		if err != nil {
			t.Fatal(err)
		}
		if a.postgres() != (second == nil) {
			t.Fatalf("%s: a second process got the lease: %v", a.Dialect(), second != nil)
		}
		if other, err := b.TryLead(ctx, "another duty"); err != nil || other == nil {
			t.Fatalf("another lease's name: %v, %v", other, err)
		} else {
			other.Release()
		}
		first.Release()
		if second == nil {
			if second, err = b.TryLead(ctx, "reconcile"); err != nil || second == nil {
				t.Fatalf("after release: %v, %v", second, err)
			}
		}
		second.Release()
	})
}
