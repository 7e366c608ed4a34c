package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// The delivery log routes run on a real log in both stores: an SQLite file
// and a fresh PostgreSQL database (skipped, saying so, where none answers;
// failed in CI). The log is seeded as the workers write it, with
// UpsertDelivery and RecordAttempt. Every exchange is held to the OpenAPI
// document (newTestServer).

var logStores = []struct {
	name  string
	fresh func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "log.db") }},
	{"postgres", func(t *testing.T) string { return testenv.PostgresT(t) }},
}

// eachLogStore runs test on a fresh LogDB of each store, and hands it the
// store underneath to seed.
func eachLogStore(t *testing.T, test func(t *testing.T, db *LogDB, l *deliverylog.Log)) {
	for _, s := range logStores {
		t.Run(s.name, func(t *testing.T) {
			db, err := OpenDeliveryLog(context.Background(), s.fresh(t), testenv.NewCodecT(t, "k1"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			test(t, db, db.log)
		})
	}
}

// logT0 is the fixtures' "now": deliveries are created before it.
var logT0 = time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)

func logServer(t *testing.T, l DeliveryLog) http.Handler {
	return newTestServer(t, &fakeDeliveries{}, func(c *Config) { c.DeliveryLog = l }).Handler()
}

func seed(t *testing.T, l *deliverylog.Log, ds ...deliverylog.Delivery) {
	t.Helper()
	for _, d := range ds {
		if err := l.UpsertDelivery(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

func logged(account, endpointID string, n int, created time.Time) deliverylog.Delivery {
	eventID := fmt.Sprintf("evt_%s_%04d", account, n)
	return deliverylog.Delivery{
		AccountID: account, DeliveryID: endpointID + ":" + eventID, EndpointID: endpointID, EventID: eventID,
		EventName: "api_mail_log_delivered", MailLogID: fmt.Sprint(5555550000 + n), Status: "pending", CreatedAt: created,
	}
}

// logFixture is 60 deliveries, one a minute back from logT0: two of three
// of account acct-a, the rest of acct-b, on the same two endpoint ids,
// cycling through the event names and every status.
func logFixture(t *testing.T, l *deliverylog.Log) []deliverylog.Delivery {
	t.Helper()
	names := []string{"api_mail_log_delivered", "api_mail_log_opened", "api_mail_log_permanent_failure"}
	var all []deliverylog.Delivery
	for i := range 60 {
		account := "acct-a"
		if i%3 == 2 {
			account = "acct-b"
		}
		d := logged(account, []string{"ep_crm", "ep_billing"}[i%2], i, logT0.Add(-time.Duration(i)*time.Minute))
		d.EventName = names[(i/2)%3]
		d.Status = deliverylog.Statuses[i%len(deliverylog.Statuses)]
		all = append(all, d)
	}
	seed(t, l, all...)
	return all
}

// listLogAll follows next_cursor to the last page; each page holds at most
// limit deliveries. It returns the ids in order and the pages it took.
func listLogAll(t *testing.T, h http.Handler, account, query string, limit int) (ids []string, pages int) {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	q.Set("limit", fmt.Sprint(limit))
	for pages = 1; ; pages++ {
		if pages > 1000 {
			t.Fatal("the cursor never ends")
		}
		w := do(t, h, "GET", "/v1/accounts/"+account+"/deliveries?"+q.Encode(), "")
		if w.Code != http.StatusOK {
			t.Fatalf("list %s?%s: %d %s", account, q.Encode(), w.Code, w.Body)
		}
		page := decode[LogPage](t, w)
		if len(page.Deliveries) > limit {
			t.Fatalf("a page of %d, limit %d", len(page.Deliveries), limit)
		}
		for _, d := range page.Deliveries {
			ids = append(ids, d.DeliveryID)
		}
		if page.NextCursor == "" {
			return ids, pages
		}
		q.Set("cursor", page.NextCursor)
	}
}

// Filters and time windows return exactly the deliveries a plain scan of
// the fixture selects, newest first, whatever the page size; account B's
// deliveries never appear in account A's answers.
func TestLogListFilters(t *testing.T) {
	eachLogStore(t, func(t *testing.T, db *LogDB, l *deliverylog.Log) {
		all := logFixture(t, l)
		h := logServer(t, db)
		at := func(minutes int) time.Time { return logT0.Add(-time.Duration(minutes) * time.Minute) }
		in := func(d deliverylog.Delivery, since, until time.Time) bool {
			return !d.CreatedAt.Before(since) && d.CreatedAt.Before(until)
		}
		always := func(deliverylog.Delivery) bool { return true }
		for _, c := range []struct {
			name  string
			query string
			keep  func(deliverylog.Delivery) bool
			count int // stated, so the oracle cannot drift with the fixture
		}{
			{"all", "", always, 40},
			{"endpoint", "endpoint_id=ep_crm", func(d deliverylog.Delivery) bool { return d.EndpointID == "ep_crm" }, 20},
			{"status", "status=failed", func(d deliverylog.Delivery) bool { return d.Status == "failed" }, 10},
			{"event name", "event_name=api_mail_log_opened", func(d deliverylog.Delivery) bool { return d.EventName == "api_mail_log_opened" }, 10},
			{"since", "since=" + at(10).Format(time.RFC3339), func(d deliverylog.Delivery) bool { return !d.CreatedAt.Before(at(10)) }, 8},
			{"until", "until=" + at(50).Format(time.RFC3339), func(d deliverylog.Delivery) bool { return d.CreatedAt.Before(at(50)) }, 6},
			{"window", "since=" + at(30).Format(time.RFC3339) + "&until=" + at(20).Format(time.RFC3339),
				func(d deliverylog.Delivery) bool { return in(d, at(30), at(20)) }, 7},
			{"window with + offsets", "since=" + url.QueryEscape(at(30).In(time.FixedZone("", 2*3600)).Format(time.RFC3339)) +
				"&until=" + url.QueryEscape(at(20).In(time.FixedZone("", 2*3600)).Format(time.RFC3339)),
				func(d deliverylog.Delivery) bool { return in(d, at(30), at(20)) }, 7},
			{"endpoint, status and window", "endpoint_id=ep_billing&status=retrying&since=" + at(40).Format(time.RFC3339),
				func(d deliverylog.Delivery) bool {
					return d.EndpointID == "ep_billing" && d.Status == "retrying" && !d.CreatedAt.Before(at(40))
				}, 7},
			{"endpoint and event name in a window", "endpoint_id=ep_crm&event_name=api_mail_log_delivered&since=" +
				at(50).Format(time.RFC3339) + "&until=" + at(10).Format(time.RFC3339),
				func(d deliverylog.Delivery) bool {
					return d.EndpointID == "ep_crm" && d.EventName == "api_mail_log_delivered" && in(d, at(50), at(10))
				}, 7},
			{"empty window", "since=" + at(5).Format(time.RFC3339) + "&until=" + at(5).Format(time.RFC3339), func(deliverylog.Delivery) bool { return false }, 0},
			{"unknown endpoint", "endpoint_id=ep_nowhere", func(deliverylog.Delivery) bool { return false }, 0},
		} {
			t.Run(c.name, func(t *testing.T) {
				var want []string
				for _, d := range all { // newest first already
					if d.AccountID == "acct-a" && c.keep(d) {
						want = append(want, d.DeliveryID)
					}
				}
				if len(want) != c.count {
					t.Fatalf("the oracle selects %d, the case says %d", len(want), c.count)
				}
				for _, limit := range []int{3, 250} {
					if got, _ := listLogAll(t, h, "acct-a", c.query, limit); !slices.Equal(got, want) {
						t.Errorf("limit %d: got %d %v\nwant %d %v", limit, len(got), got, len(want), want)
					}
				}
			})
		}
		// Without limit, a page is 50: account B's 20 fit in one, and are only B's.
		w := do(t, h, "GET", "/v1/accounts/acct-b/deliveries", "")
		page := decode[LogPage](t, w)
		if w.Code != 200 || len(page.Deliveries) != 20 || page.NextCursor != "" {
			t.Fatalf("acct-b: %d, %d deliveries, next %q", w.Code, len(page.Deliveries), page.NextCursor)
		}
		for _, d := range page.Deliveries {
			if !strings.Contains(d.EventID, "acct-b") {
				t.Fatalf("acct-b's list holds %s", d.DeliveryID)
			}
		}
	})
}

// 1,000 deliveries, ten to a millisecond, paged by 100 through the API: ten
// pages, each delivery exactly once, newest first.
func TestLogListPagesEachOnce(t *testing.T) {
	eachLogStore(t, func(t *testing.T, db *LogDB, l *deliverylog.Log) {
		var want []string
		for i := range 1000 {
			d := logged("acct-a", "ep_crm", i, logT0.Add(-time.Duration(i/10)*time.Millisecond))
			seed(t, l, d)
			want = append(want, d.DeliveryID)
		}
		seed(t, l, logged("acct-b", "ep_crm", 0, logT0)) // another account's, as new as the newest
		// Within a millisecond the higher id comes first.
		for i := 0; i < len(want); i += 10 {
			slices.Reverse(want[i : i+10])
		}
		got, pages := listLogAll(t, logServer(t, db), "acct-a", "", 100)
		if pages != 10 || !slices.Equal(got, want) {
			t.Fatalf("%d pages, %d deliveries (%d distinct); want 10 pages of the 1,000 in order", pages, len(got), len(slices.Compact(slices.Sorted(slices.Values(got)))))
		}
	})
}

// One delivery and its attempts: an endpoint that answered 503 twice then
// 200 shows three attempts with those codes in order, excerpts opened as
// text; an attempt with no HTTP answer has null status_code; a body that is
// not UTF-8 shows U+FFFD.
func TestLogDeliveryAndAttempts(t *testing.T) {
	eachLogStore(t, func(t *testing.T, db *LogDB, l *deliverylog.Log) {
		ctx := context.Background()
		h := logServer(t, db)
		d := logged("acct-a", "ep_crm", 1, logT0)
		other := logged("acct-a", "ep_crm", 2, logT0.Add(time.Second))
		seed(t, l, d, other)
		for i, code := range []int{503, 503, 200} {
			status, outcome, next := "retrying", "http_error", logT0.Add(time.Duration(i+2)*time.Minute)
			if code == 200 {
				status, outcome, next = "delivered", "delivered", time.Time{}
			}
			if err := l.RecordAttempt(ctx, deliverylog.AttemptRecord{AccountID: "acct-a", DeliveryID: d.DeliveryID, RunID: "run-1",
				Attempt: i + 1, Started: logT0.Add(time.Duration(i+1) * time.Minute), Duration: 250 * time.Millisecond, StatusCode: code,
				Outcome: outcome, Response: []byte(fmt.Sprintf("answer %d: %d", i+1, code)), Status: status, NextAttemptAt: next}); err != nil {
				t.Fatal(err)
			}
		}
		for i, a := range []deliverylog.AttemptRecord{
			{Outcome: "timeout", ErrorClass: "timeout", Status: "retrying", NextAttemptAt: logT0.Add(time.Hour)},
			{StatusCode: 500, Outcome: "http_error", Response: []byte("bad \xff\xfe bytes, cut mid-rune \xe2\x82"), Status: "retrying"},
		} {
			a.AccountID, a.DeliveryID, a.RunID, a.Attempt = "acct-a", other.DeliveryID, "run-1", i+1
			a.Started, a.Duration = logT0.Add(time.Duration(i+1)*time.Minute), 15*time.Second
			if err := l.RecordAttempt(ctx, a); err != nil {
				t.Fatal(err)
			}
		}

		w := do(t, h, "GET", "/v1/accounts/acct-a/deliveries/"+d.DeliveryID, "")
		got := decode[LoggedDelivery](t, w)
		if w.Code != 200 || got.DeliveryID != d.DeliveryID || got.Status != "delivered" || got.Attempts != 3 || got.MailLogID != "5555550001" ||
			got.LastStatusCode == nil || *got.LastStatusCode != 200 || got.LastAttemptAt == nil || !got.LastAttemptAt.Equal(logT0.Add(3*time.Minute)) ||
			got.NextAttemptAt != nil || !got.CreatedAt.Equal(logT0) {
			t.Fatalf("get: %d %+v", w.Code, got)
		}
		w = do(t, h, "GET", "/v1/accounts/acct-a/deliveries/"+d.DeliveryID+"/attempts", "")
		as := decode[attemptList](t, w).Attempts
		var codes []int
		for i, a := range as {
			codes = append(codes, *a.StatusCode)
			if a.Attempt != i+1 || a.DurationMS != 250 || a.ResponseExcerpt == nil || *a.ResponseExcerpt != fmt.Sprintf("answer %d: %d", i+1, *a.StatusCode) || a.Error != nil {
				t.Errorf("attempt %d: %+v", i+1, a)
			}
		}
		if w.Code != 200 || !slices.Equal(codes, []int{503, 503, 200}) {
			t.Fatalf("attempts: %d, codes %v", w.Code, codes)
		}

		w = do(t, h, "GET", "/v1/accounts/acct-a/deliveries/"+other.DeliveryID+"/attempts", "")
		as = decode[attemptList](t, w).Attempts
		if w.Code != 200 || len(as) != 2 || as[0].StatusCode != nil || as[0].Error == nil || *as[0].Error != "timeout" || as[0].ResponseExcerpt != nil ||
			as[1].ResponseExcerpt == nil || *as[1].ResponseExcerpt != "bad \uFFFD bytes, cut mid-rune \uFFFD" {
			t.Fatalf("attempts without an answer and with bytes not UTF-8: %d %s", w.Code, w.Body)
		}
		w = do(t, h, "GET", "/v1/accounts/acct-a/deliveries/"+other.DeliveryID, "")
		if got := decode[LoggedDelivery](t, w); got.LastStatusCode == nil || *got.LastStatusCode != 500 || got.NextAttemptAt != nil {
			t.Fatalf("a delivery whose last attempt had no next: %+v", got)
		}
		// A delivery with no attempt yet: an empty list, and nulls.
		fresh := logged("acct-a", "ep_crm", 3, logT0)
		seed(t, l, fresh)
		if w := do(t, h, "GET", "/v1/accounts/acct-a/deliveries/"+fresh.DeliveryID+"/attempts", ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"attempts":[]}` {
			t.Fatalf("no attempts: %d %s", w.Code, w.Body)
		}
		w = do(t, h, "GET", "/v1/accounts/acct-a/deliveries/"+fresh.DeliveryID, "")
		if !strings.Contains(w.Body.String(), `"last_attempt_at":null,"last_status_code":null,"next_attempt_at":null`) {
			t.Fatalf("a delivery never attempted: %s", w.Body)
		}
	})
}

// Account B's delivery is a 404 on every route of account A, as one that
// does not exist; B's own routes answer it.
func TestLogAccountIsolation(t *testing.T) {
	eachLogStore(t, func(t *testing.T, db *LogDB, l *deliverylog.Log) {
		h := logServer(t, db)
		a, b := logged("acct-a", "ep_crm", 1, logT0), logged("acct-b", "ep_crm", 2, logT0)
		seed(t, l, a, b)
		if err := l.RecordAttempt(context.Background(), deliverylog.AttemptRecord{AccountID: "acct-b", DeliveryID: b.DeliveryID, RunID: "run-1",
			Attempt: 1, Started: logT0, StatusCode: 200, Outcome: "delivered", Response: []byte("ok"), Status: "delivered"}); err != nil {
			t.Fatal(err)
		}
		missing := decode[apiError](t, do(t, h, "GET", "/v1/accounts/acct-a/deliveries/ep_crm:evt_never", ""))
		for _, path := range []string{"/v1/accounts/acct-a/deliveries/" + b.DeliveryID, "/v1/accounts/acct-a/deliveries/" + b.DeliveryID + "/attempts"} {
			w := do(t, h, "GET", path, "")
			if e := decode[apiError](t, w); w.Code != 404 || e.Field != "delivery_id" || e.Error != missing.Error {
				t.Errorf("%s: %d %+v, want the 404 of a delivery that does not exist", path, w.Code, e)
			}
			if w := do(t, h, "GET", strings.Replace(path, "acct-a", "acct-b", 1), ""); w.Code != 200 {
				t.Errorf("B's own %s: %d %s", path, w.Code, w.Body)
			}
		}
		for _, query := range []string{"", "?endpoint_id=ep_crm", "?status=delivered", "?since=" + logT0.Format(time.RFC3339)} {
			w := do(t, h, "GET", "/v1/accounts/acct-a/deliveries"+query, "")
			page := decode[LogPage](t, w)
			if w.Code != 200 || len(page.Deliveries) > 1 || (len(page.Deliveries) == 1 && page.Deliveries[0].DeliveryID != a.DeliveryID) {
				t.Errorf("A's list%s: %d %s", query, w.Code, w.Body)
			}
		}
	})
}

// Bad query values and paths are refused naming the field; nothing is read.
func TestLogRefusesBadInput(t *testing.T) {
	var calls int
	h := logServer(t, &fakeLog{list: func(context.Context, string, LogFilter) (LogPage, error) {
		calls++
		return LogPage{}, nil
	}})
	for _, c := range []struct {
		path  string
		code  int
		field string
	}{
		{"/v1/accounts/acct-a/deliveries?limit=0", 422, "limit"},
		{"/v1/accounts/acct-a/deliveries?limit=251", 422, "limit"},
		{"/v1/accounts/acct-a/deliveries?limit=ten", 422, "limit"},
		{"/v1/accounts/acct-a/deliveries?status=lost", 422, "status"},
		{"/v1/accounts/acct-a/deliveries?since=yesterday", 422, "since"},
		{"/v1/accounts/acct-a/deliveries?until=2026-04-18", 422, "until"},
		{"/v1/accounts/acct-a/deliveries?until=2026-04-18T20:00:00+02:00", 422, "until"}, // + unencoded: a space
		{"/v1/accounts/acct-a/deliveries?since=2026-04-19T00:00:00Z&until=2026-04-18T00:00:00Z", 422, "since"},
		{"/v1/accounts/acct-a/deliveries?cursor=not-a-cursor", 422, "cursor"},
		{"/v1/accounts/acct-a/deliveries?statuss=failed", 422, "statuss"},
		{"/v1/accounts/acct-a/deliveries?status=failed&status=parked", 422, "status"},
		{"/v1/accounts/acct-a/deliveries?endpoint_id=", 422, "endpoint_id"},
		{"/v1/accounts/acct-a/deliveries?limit=", 422, "limit"},
		{"/v1/accounts/acct%20a/deliveries", 422, "account_id"},
		{"/v1/accounts/acct%20a/deliveries/ep_crm:evt_1", 422, "account_id"},
		{"/v1/accounts/acct-a/deliveries/no-colon", 400, "delivery_id"},
		{"/v1/accounts/acct-a/deliveries/no-colon/attempts", 400, "delivery_id"},
	} {
		w := do(t, h, "GET", c.path, "")
		if e := decode[apiError](t, w); w.Code != c.code || e.Field != c.field {
			t.Errorf("%s: %d %+v, want %d on %s", c.path, w.Code, e, c.code, c.field)
		}
	}
	if calls != 0 {
		t.Fatalf("the log was read %d times for refused requests", calls)
	}
}

// Without a delivery log the routes answer 404 saying so; a log that does
// not answer in time is a 503 with Retry-After.
func TestLogMissingOrSlow(t *testing.T) {
	h := logServer(t, nil)
	for _, path := range []string{"/v1/accounts/acct-a/deliveries", "/v1/accounts/acct-a/deliveries/ep_crm:evt_1", "/v1/accounts/acct-a/deliveries/ep_crm:evt_1/attempts"} {
		w := do(t, h, "GET", path, "")
		if e := decode[apiError](t, w); w.Code != 404 || e.Field != "" || !strings.Contains(e.Error, "--log-db") {
			t.Errorf("%s without a log: %d %+v", path, w.Code, e)
		}
	}
	slow := &fakeLog{list: func(ctx context.Context, _ string, _ LogFilter) (LogPage, error) {
		<-ctx.Done()
		return LogPage{}, fmt.Errorf("delivery log: list: %w", ctx.Err())
	}}
	h = newTestServer(t, &fakeDeliveries{}, func(c *Config) { c.DeliveryLog, c.RequestTimeout = slow, 50*time.Millisecond }).Handler()
	if w := do(t, h, "GET", "/v1/accounts/acct-a/deliveries", ""); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("a slow log: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

// fakeLog answers List with list; Get and Attempts find nothing.
type fakeLog struct {
	list func(ctx context.Context, account string, f LogFilter) (LogPage, error)
}

func (f *fakeLog) List(ctx context.Context, account string, filter LogFilter) (LogPage, error) {
	return f.list(ctx, account, filter)
}

func (f *fakeLog) Get(context.Context, string, string) (LoggedDelivery, error) {
	return LoggedDelivery{}, ErrDeliveryNotFound
}

func (f *fakeLog) Attempts(context.Context, string, string) ([]LoggedAttempt, error) {
	return nil, ErrDeliveryNotFound
}
