package deliverylog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// fixture is two accounts' deliveries over three endpoints, three event
// names, every status, one a minute from t0 back, and some created in the
// same millisecond (the cursor's tie-break).
func fixture(t *testing.T, l *Log) []Delivery {
	t.Helper()
	endpoints := []string{"ep_1", "ep_2", "ep_3"}
	names := []string{"api_mail_log_delivered", "api_mail_log_opened", "api_mail_log_permanent_failure"}
	var all []Delivery
	for i := range 120 {
		account := "acct_a"
		if i%4 == 3 {
			account = "acct_b"
		}
		created := t0.Add(-time.Duration(i/2) * time.Minute) // pairs share a millisecond
		d := delivery(account, endpoints[i%3], i, created)
		d.EventName = names[(i/3)%3]
		d.Status = Statuses[i%len(Statuses)]
		all = append(all, d)
	}
	upsert(t, l, all...)
	return all
}

// Filters and time windows return exactly the deliveries a plain scan of
// the fixture selects, in order, over as many pages as it takes.
func TestListFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		l := openLog(t, dsn)
		all := fixture(t, l)
		for _, c := range []struct {
			name  string
			f     Filter
			count int // the expected count, stated, so the oracle cannot drift with the fixture
		}{
			{"all", Filter{}, 90},
			{"endpoint", Filter{EndpointID: "ep_2"}, 30},
			{"status", Filter{Status: "parked"}, 10},
			{"event name", Filter{EventName: "api_mail_log_opened"}, 29},
			{"since", Filter{Since: t0.Add(-10 * time.Minute)}, 17},
			{"until", Filter{Until: t0.Add(-50 * time.Minute)}, 13},
			{"window", Filter{Since: t0.Add(-20 * time.Minute), Until: t0.Add(-10 * time.Minute)}, 15},
			{"empty window", Filter{Since: t0.Add(-5 * time.Minute), Until: t0.Add(-5 * time.Minute)}, 0},
			{"endpoint and status in a window", Filter{EndpointID: "ep_1", Status: "pending",
				Since: t0.Add(-40 * time.Minute), Until: t0}, 13},
			{"unknown endpoint", Filter{EndpointID: "ep_9"}, 0},
		} {
			t.Run(c.name, func(t *testing.T) {
				var want []string
				for _, d := range all {
					if d.AccountID == "acct_a" && matches(d, c.f) {
						want = append(want, d.DeliveryID)
					}
				}
				slices.Reverse(want) // the fixture is oldest last; ties: the higher id first
				sortNewestFirst(all, want)
				if len(want) != c.count {
					t.Fatalf("the oracle selects %d, the case says %d", len(want), c.count)
				}
				for _, limit := range []int{7, MaxLimit} {
					f := c.f
					f.Limit = limit
					if got := listAll(t, l, "acct_a", f); !slices.Equal(got, want) {
						t.Errorf("limit %d: got %d %v\nwant %d %v", limit, len(got), got, len(want), want)
					}
				}
			})
		}
	})
}

func matches(d Delivery, f Filter) bool {
	return (f.EndpointID == "" || d.EndpointID == f.EndpointID) &&
		(f.Status == "" || d.Status == f.Status) &&
		(f.EventName == "" || d.EventName == f.EventName) &&
		(f.Since.IsZero() || !d.CreatedAt.Before(f.Since)) &&
		(f.Until.IsZero() || d.CreatedAt.Before(f.Until))
}

// sortNewestFirst orders ids by their deliveries' (created, id), newest
// first: the order List promises.
func sortNewestFirst(all []Delivery, ids []string) {
	created := map[string]time.Time{}
	for _, d := range all {
		created[d.DeliveryID] = d.CreatedAt
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := created[b].Compare(created[a]); c != 0 {
			return c
		}
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
}

// listAll follows cursors to the last page.
func listAll(t testing.TB, l *Log, account string, f Filter) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("the cursor never ends")
		}
		page, err := l.List(context.Background(), account, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Deliveries) > f.Limit {
			t.Fatalf("page of %d, limit %d", len(page.Deliveries), f.Limit)
		}
		for _, d := range page.Deliveries {
			ids = append(ids, d.DeliveryID)
		}
		if page.Next == "" {
			return ids
		}
		f.Cursor = page.Next
	}
}

// 1,000 deliveries, ten to a millisecond, paged by 100: ten pages, each
// delivery once.
func TestPaging(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		l := openLog(t, dsn)
		var ds []Delivery
		for i := range 1000 {
			ds = append(ds, delivery("acct_a", "ep_1", i, t0.Add(-time.Duration(i/10)*time.Millisecond)))
		}
		upsert(t, l, ds...)
		upsert(t, l, delivery("acct_b", "ep_9", 1, t0)) // another account's, never listed
		seen := map[string]int{}
		f := Filter{Limit: 100}
		pages := 0
		for {
			page, err := l.List(context.Background(), "acct_a", f)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, d := range page.Deliveries {
				seen[d.DeliveryID]++
			}
			if page.Next == "" {
				if len(page.Deliveries) != 100 {
					t.Errorf("last page holds %d", len(page.Deliveries))
				}
				break
			}
			f.Cursor = page.Next
		}
		if pages != 10 || len(seen) != 1000 {
			t.Fatalf("%d pages, %d distinct deliveries; want 10 and 1000", pages, len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s listed %d times", id, n)
			}
		}
	})
}

// Account A never sees account B's deliveries: not in a list, not by id,
// not their attempts, not to write.
func TestAccountIsolation(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLog(t, dsn)
		b := delivery("acct_b", "ep_b", 1, t0)
		upsert(t, l, b, delivery("acct_a", "ep_a", 2, t0))
		record(t, l, attempt(b, 1, 200, "ok"))
		page, err := l.List(ctx, "acct_a", Filter{Limit: MaxLimit})
		if err != nil || len(page.Deliveries) != 1 || page.Deliveries[0].AccountID != "acct_a" {
			t.Fatalf("A's list: %+v %v", page, err)
		}
		if page, _ := l.List(ctx, "acct_a", Filter{Limit: 10, EndpointID: "ep_b"}); len(page.Deliveries) != 0 {
			t.Fatalf("A's list by B's endpoint: %+v", page)
		}
		if _, err := l.Get(ctx, "acct_a", b.DeliveryID); !errors.Is(err, ErrNotFound) {
			t.Errorf("A gets B's delivery: %v", err)
		}
		if _, err := l.Attempts(ctx, "acct_a", b.DeliveryID); !errors.Is(err, ErrNotFound) {
			t.Errorf("A reads B's attempts: %v", err)
		}
		if err := l.SetStatus(ctx, "acct_a", b.DeliveryID, "canceled", time.Time{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("A sets B's status: %v", err)
		}
		if err := l.RecordAttempt(ctx, AttemptRecord{AccountID: "acct_a", DeliveryID: b.DeliveryID, RunID: "r",
			Attempt: 2, Started: t0, Status: "failed"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("A records an attempt of B's delivery: %v", err)
		}
		got, err := l.Get(ctx, "acct_b", b.DeliveryID)
		if err != nil || got.Status != "delivered" || got.Attempts != 1 {
			t.Fatalf("B's delivery after A's tries: %+v %v", got, err)
		}
		if as, err := l.Attempts(ctx, "acct_b", b.DeliveryID); err != nil || len(as) != 1 {
			t.Fatalf("B's attempts: %d %v", len(as), err)
		}
	})
}

// Bad input is an error naming the field, before any query.
func TestBadInput(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		l := openLog(t, dsn)
		for _, c := range []struct {
			f     Filter
			field string
		}{
			{Filter{Limit: 0}, "limit"},
			{Filter{Limit: 251}, "limit"},
			{Filter{Limit: -1}, "limit"},
			{Filter{Limit: 10, Cursor: "not-a-cursor!"}, "cursor"},
			{Filter{Limit: 10, Cursor: "MS4x"}, "cursor"}, // base64 of "1.1": no id
			{Filter{Limit: 10, Since: t0, Until: t0.Add(-time.Second)}, "since"},
			{Filter{Limit: 10, Status: "lost"}, "status"},
		} {
			_, err := l.List(context.Background(), "acct_a", c.f)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("List(%+v): %v, want an error naming %s", c.f, err, c.field)
			}
		}
		for _, c := range []struct {
			err   error
			field string
		}{
			{l.UpsertDelivery(context.Background(), Delivery{AccountID: "a"}), "delivery_id"},
			{l.UpsertDelivery(context.Background(), func() Delivery { d := delivery("a", "e", 1, t0); d.Status = "x"; return d }()), "status"},
			{l.RecordAttempt(context.Background(), AttemptRecord{AccountID: "a", DeliveryID: "e:1", RunID: "r"}), "attempt"},
		} {
			var fe *FieldError
			if !errors.As(c.err, &fe) || fe.Field != c.field {
				t.Errorf("%v, want an error naming %s", c.err, c.field)
			}
		}
	})
}

func TestCursorRoundTrip(t *testing.T) {
	d := Delivery{DeliveryID: "ep.1:evt.2", CreatedAt: time.UnixMilli(1776542400123)}
	created, id, ok := decodeCursor(encodeCursor(d))
	if !ok || created != 1776542400123 || id != d.DeliveryID {
		t.Fatal(fmt.Sprint(created, id, ok))
	}
}
