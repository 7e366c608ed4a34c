package tests

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// An endpoint's rate_limit holds across the fleet: rate_limit 5, three
// workers sharing a PostgreSQL registry, 300 events at once. In every
// 1-second window after the first the receiver sees at most 6 requests
// (5, and one a window may hold at its edges); every event is delivered,
// each once. A long scenario: it runs once, on the dev server (make test).
func TestRateLimitAcrossWorkers(t *testing.T) {
	if serverMode != testenv.ModeDevServer {
		t.Skipf("a long scenario that runs once, on the dev server (`make test`); this run: %s mode", serverMode)
	}
	const events, batch, perSecond, workers = 300, 20, 5, 3
	dsn := testenv.PostgresT(t)
	h := hookrelay(t)
	srv := startServeWith(t, h, "--https-only=false", "--endpoints-db", dsn, "--allow-cidr", "127.0.0.0/8", "--account-rate", "0", "--request-timeout", "60s")
	for i := range workers {
		testenv.StartT(t, h.Worker(fmt.Sprintf("worker-%d", i), "--endpoints-db", dsn, "--allow-cidr", "127.0.0.0/8"))
	}
	rc := newMultiReceiver(t)
	ep, err := srv.createEndpoint("acct-rated", map[string]any{"url": rc.url + "/rated", "events": []string{"*"}, "rate_limit": perSecond, "timeout": "5s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.register("/rated", ep.Secret); err != nil {
		t.Fatal(err)
	}
	bodies := make([]string, events/batch)
	for b := range bodies {
		var items []string
		for i := b * batch; i < (b+1)*batch; i++ {
			items = append(items, accountEvent("acct-rated", event.Delivered, 900_000+i))
		}
		bodies[b] = `{"events":[` + strings.Join(items, ",") + `]}`
	}
	start := time.Now()
	errs := inParallel(len(bodies), len(bodies), func(b int) error {
		r, _, err := postRetrying(srv, bodies[b], 2*time.Minute)
		if err != nil || r.code != http.StatusAccepted {
			return fmt.Errorf("batch %d: %v %d %s", b, err, r.code, r.body)
		}
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("%d batches not accepted, first: %v", len(errs), errs[0])
	}
	testenv.Eventually(t, 4*time.Minute, "every event delivered", func() bool { return len(rc.all()) >= events })
	time.Sleep(2 * time.Second) // a duplicate, if any, would arrive on the same schedule
	hits := rc.all()
	seen := map[string]int{}
	var at []time.Time
	for _, h := range hits {
		if h.verifyErr != nil {
			t.Fatalf("a request did not verify: %v", h.verifyErr)
		}
		seen[h.deliveryID]++
		at = append(at, h.at)
	}
	if len(hits) != events || len(seen) != events {
		t.Fatalf("receiver saw %d requests of %d deliveries, want %d each once", len(hits), len(seen), events)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	worst := 0
	for i := range at {
		if at[i].Before(at[0].Add(time.Second)) {
			continue // the first window
		}
		n := 0
		for j := i; j < len(at) && at[j].Before(at[i].Add(time.Second)); j++ {
			n++
		}
		worst = max(worst, n)
	}
	took := at[len(at)-1].Sub(at[0])
	t.Logf("%d events at rate_limit %d over %d workers: delivered in %s (first after %s), at most %d in any 1 s window after the first",
		events, perSecond, workers, took.Round(time.Millisecond), at[0].Sub(start).Round(time.Millisecond), worst)
	if worst > perSecond+1 {
		t.Errorf("a 1 s window held %d requests, want at most %d", worst, perSecond+1)
	}
	if min := time.Duration(float64(events-perSecond-1) / perSecond * float64(time.Second)); took < min {
		t.Errorf("delivered in %s, faster than the rate allows (%s)", took, min)
	}
}
