package tests

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// The noisy neighbour, small: account A's endpoint sleeps per request and A
// sends a burst; account B sends events at 10/s to a healthy endpoint on
// the same worker. B's latency from publish to its receiver's 2xx beside A
// must stay within a second at p99 (its unloaded figure is reported
// beside it): A's endpoint holds at most half the worker's attempt slots
// (max_in_flight, capped per worker), and A's deliveries over it wait
// without holding one. Every event of both is delivered, each once. A long
// scenario: it runs once, on the dev server (make test).
func TestNoisyNeighbour(t *testing.T) {
	if serverMode != testenv.ModeDevServer {
		t.Skipf("a long scenario that runs once, on the dev server (`make test`); this run: %s mode", serverMode)
	}
	const aSleep, aEvents, bEvents = 3 * time.Second, 100, 50
	slow := testenv.NewReceiverT(t, testenv.ReceiverOptions{Secret: testSecret, Answer: func(string, int, http.ResponseWriter) int {
		time.Sleep(aSleep)
		return http.StatusOK
	}})
	var mu sync.Mutex
	got := map[string]time.Time{}
	fast := testenv.NewReceiverT(t, testenv.ReceiverOptions{Secret: testSecret, Answer: func(id string, _ int, _ http.ResponseWriter) int {
		mu.Lock()
		if _, ok := got[id]; !ok {
			got[id] = time.Now()
		}
		mu.Unlock()
		return http.StatusOK
	}})
	file := writeEndpoints(t,
		testenv.Endpoint{ID: "noisy-a", URL: slow.URL, Timeout: 5 * time.Second, Extra: "    account_id: acct-noisy-a\n"},
		testenv.Endpoint{ID: "quiet-b", URL: fast.URL, Extra: "    account_id: acct-quiet-b\n"})
	startWorker(t, file, "--max-concurrent-attempts", "10")
	dc := localPublisher(t, temporal, file)

	sendB := func(base int) []time.Duration {
		sent := map[string]time.Time{}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := range bEvents {
			<-tick.C
			ev, _ := event.Parse([]byte(accountEvent("acct-quiet-b", event.Delivered, base+i)))
			at := time.Now()
			s, err := dc.Publish(context.Background(), ev)
			if err != nil || len(s) != 1 {
				t.Fatalf("publish B: %v %v", s, err)
			}
			sent[s[0].DeliveryID] = at
		}
		var lat []time.Duration
		testenv.Eventually(t, 5*time.Minute, "every B event delivered", func() bool {
			mu.Lock()
			defer mu.Unlock()
			lat = lat[:0]
			for id, at := range sent {
				if r, ok := got[id]; ok {
					lat = append(lat, r.Sub(at))
				}
			}
			return len(lat) == len(sent)
		})
		slices.Sort(lat)
		return lat
	}
	pct := func(l []time.Duration, p float64) time.Duration { return l[int(float64(len(l)-1)*p)] }
	unloaded := sendB(810_000)
	var wg sync.WaitGroup
	for i := range aEvents {
		wg.Go(func() {
			ev, _ := event.Parse([]byte(accountEvent("acct-noisy-a", event.Delivered, 820_000+i)))
			if _, err := dc.Publish(context.Background(), ev); err != nil {
				t.Errorf("publish A: %v", err)
			}
		})
	}
	wg.Wait()
	loaded := sendB(830_000)
	if p99 := pct(loaded, .99); p99 > time.Second {
		t.Errorf("B's p99 beside A: %s, want at most 1s (unloaded: %s)", p99, pct(unloaded, .99))
	}
	aStart := time.Now()
	testenv.Eventually(t, 5*time.Minute, "every A event delivered", func() bool { return slow.Stats().ByStatus[http.StatusOK] >= aEvents })
	if st := slow.Stats(); st.ByStatus[http.StatusOK] != aEvents || st.Duplicates != 0 {
		t.Errorf("A's receiver: %+v, want %d accepted, no duplicates", st, aEvents)
	}
	t.Logf("B unloaded: p50 %s p99 %s max %s", pct(unloaded, .5), pct(unloaded, .99), unloaded[len(unloaded)-1])
	t.Logf("B beside A (%d events, %s each, 10 attempt slots): p50 %s p99 %s max %s", aEvents, aSleep, pct(loaded, .5), pct(loaded, .99), loaded[len(loaded)-1])
	t.Logf("A: every event delivered %s after B's last", time.Since(aStart).Round(time.Second))
}
