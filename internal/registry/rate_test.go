package registry

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Reservations under a rate_limit are one interval apart, per endpoint,
// whoever makes them: on PostgreSQL two registries on one database share
// the schedule (two workers), on SQLite each process keeps its own.
func TestReserve(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		a, b := open(t, dsn, Options{}), open(t, dsn, Options{})
		ctx := context.Background()
		var waits []time.Duration
		for _, r := range []*Registry{a, b, a, b} {
			w, err := r.Reserve(ctx, "ep-rated", 5)
			if err != nil {
				t.Fatal(err)
			}
			waits = append(waits, w)
		}
		other, _ := a.Reserve(ctx, "ep-other", 5)
		shared := a.Dialect() == "postgres"
		for i, w := range waits {
			want := time.Duration(i) * 200 * time.Millisecond
			if !shared {
				want = time.Duration(i/2) * 200 * time.Millisecond // each registry its own schedule
			}
			// The reservations themselves take time: each waits a little less.
			if w > want || w < want-150*time.Millisecond {
				t.Fatalf("%s: waits %v, want about %v", a.Dialect(), waits, fmt.Sprint(want))
			}
		}
		if other != 0 {
			t.Fatalf("another endpoint waits %s, want 0", other)
		}
	})
}
