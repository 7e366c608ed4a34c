package registry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
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
		if _, err := r.exec(ctx, `UPDATE endpoints SET timeout_ms = ?, retry_schedule = ?, circuit = ?, max_in_flight = ?, rate_limit = ? WHERE id = ?`, int64(300000), "[604800000,604800000,604800000,604800000,604800000]",
			`{"open_after":10000,"probe_every":[1],"drain_per_second":1e-9,"disable_after":3600000000000,"park_limit":31536000000000000}`, 500, 0.001, e.ID); err != nil {
			t.Fatal(err)
		}
		resolved, err := r.Resolve(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		c := resolved.Circuit
		if resolved.Timeout != 30*time.Second || len(resolved.RetrySchedule) != 4 || c.OpenAfter != 1000 || c.ProbeEvery[0] != 5*time.Second ||
			c.DrainPerSecond != 0.1 || c.ParkLimit != 720*time.Hour || c.DisableAfter != time.Hour || resolved.MaxInFlight != 100 || resolved.RateLimit != 0.1 {
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

// The endpoint quota holds under concurrent creations from two processes
// (two registries on one database): exactly the quota's worth succeed, the
// rest are refused naming the quota; another account is not counted, and a
// deleted endpoint frees its place.
func TestEndpointQuotaUnderConcurrentCreations(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		b := endpoint.DefaultBounds()
		b.MaxEndpointsPerAccount = 5
		hosts := []*Registry{open(t, dsn, Options{Bounds: b}), open(t, dsn, Options{Bounds: b})}
		const tries = 16
		errs := make(chan error, tries)
		var wg sync.WaitGroup
		for i := range tries {
			wg.Go(func() {
				_, _, err := hosts[i%2].Create(ctx, "acct_q", fields("https://hooks.example.com/q", "*"))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		created := 0
		for err := range errs {
			var fe *event.FieldError
			switch {
			case err == nil:
				created++
			case errors.As(err, &fe) && fe.Field == "account_id" && strings.Contains(fe.Problem, "max-endpoints-per-account: 5"):
			default:
				t.Errorf("a creation over the quota: %v, want a field error naming max-endpoints-per-account", err)
			}
		}
		page, err := hosts[0].List(ctx, "acct_q", 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if created != 5 || len(page.Entries) != 5 {
			t.Fatalf("%d creations succeeded, %d endpoints listed; want 5 and 5", created, len(page.Entries))
		}
		create(t, hosts[1], "acct_other", fields("https://hooks.example.com/o", "*"))
		if err := hosts[1].Delete(ctx, "acct_q", page.Entries[0].ID); err != nil {
			t.Fatal(err)
		}
		create(t, hosts[0], "acct_q", fields("https://hooks.example.com/q", "*"))
		if _, _, err := hosts[1].Create(ctx, "acct_q", fields("https://hooks.example.com/q", "*")); err == nil {
			t.Fatal("a sixth endpoint was registered under a quota of 5")
		}
	})
}
