package httpapi

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/accountrate"
)

// testClock is a settable clock for the account rate's buckets.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func accountEvent(account string, mailLogID int) string {
	return fmt.Sprintf(`{"account_id":%q,"event_name":"api_mail_log_delivered","payload":{"id":%d,"time":"2026-04-18T20:27:25.379Z"}}`, account, mailLogID)
}

func batchOf(events ...string) string { return `{"events":[` + strings.Join(events, ",") + `]}` }

// The account rate: over it, POST /v1/events is 429 with Retry-After and a
// JSON error, and starts nothing of the request, a batch included (other
// accounts' events in it too); one account's use leaves another's whole;
// events without an account are not limited; a batch holding more of an
// account's events than its burst is 422; a request that fails after the
// rate admitted it gives its events back.
func TestAccountRate(t *testing.T) {
	f := &fakeDeliveries{}
	s := newTestServer(t, f, func(c *Config) { c.AccountRate, c.AccountBurst = 1, 3 })
	clock := &testClock{t: time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)}
	s.accountRate = accountrate.New(1, 3, accountrate.Options{Now: clock.now})
	h := s.Handler()
	post := func(body string) (int, string, apiError) {
		t.Helper()
		w := do(t, h, "POST", "/v1/events", body)
		var e apiError
		if w.Code != 202 {
			e = decode[apiError](t, w)
		}
		return w.Code, w.Header().Get("Retry-After"), e
	}
	if code, _, e := post(batchOf(accountEvent("acct_a", 1), accountEvent("acct_a", 2), accountEvent("acct_a", 3))); code != 202 {
		t.Fatalf("acct_a's burst: %d %+v", code, e)
	}
	before := len(f.publishedIDs())
	code, retry, e := post(accountEvent("acct_a", 4))
	if code != 429 || retry != "1" || e.Field != "account_id" || !strings.Contains(e.Error, "acct_a") || !strings.Contains(e.Error, "nothing of this request was started") {
		t.Fatalf("acct_a past its burst: %d Retry-After %q %+v, want 429, Retry-After 1, naming the account", code, retry, e)
	}
	// A batch of two accounts, one over its rate: refused whole.
	if code, _, _ := post(batchOf(accountEvent("acct_b", 5), accountEvent("acct_b", 6), accountEvent("acct_a", 7))); code != 429 {
		t.Fatalf("a batch with acct_a over its rate: %d, want 429", code)
	}
	if got := len(f.publishedIDs()); got != before {
		t.Fatalf("%d events published by refused requests, want none", got-before)
	}
	if code, _, e := post(batchOf(accountEvent("acct_b", 8), accountEvent("acct_b", 9), accountEvent("acct_b", 10))); code != 202 {
		t.Fatalf("acct_b's whole burst after a refused batch: %d %+v", code, e)
	}
	for i := range 10 {
		if code, _, e := post(sampleEvent(100 + i)); code != 202 {
			t.Fatalf("an event without an account: %d %+v", code, e)
		}
	}
	if code, _, e := post(batchOf(accountEvent("acct_c", 11), accountEvent("acct_c", 12), accountEvent("acct_c", 13), accountEvent("acct_c", 14))); code != 422 || e.Field != "events" || !strings.Contains(e.Error, "burst") {
		t.Fatalf("4 events of one account against a burst of 3: %d %+v, want 422 on events", code, e)
	}
	clock.advance(time.Second)
	if code, _, e := post(accountEvent("acct_a", 15)); code != 202 {
		t.Fatalf("acct_a a second later: %d %+v", code, e)
	}
	// Temporal unavailable: 503, and the event does not count.
	f.publish = func(context.Context, event.Event) ([]deliveries.Started, error) {
		return nil, deliveries.ErrUnavailable
	}
	for range 5 {
		if code, _, _ := post(accountEvent("acct_d", 16)); code != 503 {
			t.Fatalf("Temporal unavailable: %d, want 503", code)
		}
		s.temporalDown.Store(false)
	}
	f.publish = nil
	if code, _, e := post(batchOf(accountEvent("acct_d", 17), accountEvent("acct_d", 18), accountEvent("acct_d", 19))); code != 202 {
		t.Fatalf("acct_d's burst after five failed requests: %d %+v, want its burst whole", code, e)
	}
}

// Retry-After is the wait for the tokens, in whole seconds rounded up.
func TestAccountRateRetryAfter(t *testing.T) {
	s := newTestServer(t, &fakeDeliveries{}, func(c *Config) { c.AccountRate, c.AccountBurst = 0.4, 1 })
	clock := &testClock{t: time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)}
	s.accountRate = accountrate.New(0.4, 1, accountrate.Options{Now: clock.now})
	if w := do(t, s.Handler(), "POST", "/v1/events", accountEvent("acct_a", 1)); w.Code != 202 {
		t.Fatalf("first event: %d %s", w.Code, w.Body)
	}
	w := do(t, s.Handler(), "POST", "/v1/events", accountEvent("acct_a", 2))
	if w.Code != 429 || w.Header().Get("Retry-After") != "3" {
		t.Fatalf("at 0.4/s: %d Retry-After %q, want 429 and 3 (2.5s rounded up)", w.Code, w.Header().Get("Retry-After"))
	}
	for _, c := range []Config{{Deliveries: &fakeDeliveries{}, NoAuth: true, AccountRate: -1}, {Deliveries: &fakeDeliveries{}, NoAuth: true, AccountRate: 1}} {
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), "account") {
			t.Errorf("rate %g burst %d: %v, want refused", c.AccountRate, c.AccountBurst, err)
		}
	}
}
