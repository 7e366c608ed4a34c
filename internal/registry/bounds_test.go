package registry

import (
	"context"
	"testing"
	"time"
)

// A row written before the bounds applied (here by hand) is served and
// shown with its values brought within the built-in bounds, and takes
// updates of its other fields; a new value outside a bound is refused.
func TestRowsOutsideBoundsAreServedWithin(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		r := open(t, dsn, Options{})
		e, _, err := r.Create(ctx, "acct_1", Fields{URL: ptr("https://hooks.example.com/"), Events: ptr([]string{"*"})})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.exec(ctx, `UPDATE endpoints SET timeout_ms = ?, retry_schedule = ?, circuit = ? WHERE id = ?`, int64(300000), "[604800000,604800000,604800000,604800000,604800000]",
			`{"open_after":10000,"probe_every":[1],"drain_per_second":1e-9,"disable_after":3600000000000,"park_limit":31536000000000000}`, e.ID); err != nil {
			t.Fatal(err)
		}
		resolved, err := r.Resolve(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		c := resolved.Circuit
		if resolved.Timeout != 30*time.Second || len(resolved.RetrySchedule) != 4 || c.OpenAfter != 1000 || c.ProbeEvery[0] != 5*time.Second ||
			c.DrainPerSecond != 0.1 || c.ParkLimit != 720*time.Hour || c.DisableAfter != time.Hour {
			t.Fatalf("resolved %+v %+v, want each value at its bound", resolved, c)
		}
		got, err := r.Update(ctx, "acct_1", e.ID, Fields{Description: ptr("still served")})
		if err != nil || got.Timeout != 30*time.Second || got.Circuit.DrainPerSecond != 0.1 {
			t.Fatalf("update of another field: %+v %v", got, err)
		}
		if _, err := r.Update(ctx, "acct_1", e.ID, Fields{Timeout: ptr("31s")}); err == nil {
			t.Fatal("a timeout over the bound was accepted")
		}
	})
}
