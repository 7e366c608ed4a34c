package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/httpapi"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
)

// The delivery log's read side end to end: `starter deliveries` and
// `starter serve`'s /v1/accounts/{account_id}/deliveries routes, as
// binaries, on a log in SQLite and PostgreSQL seeded as workers write it
// (UpsertDelivery, RecordAttempt), sealed with the suite's payload keys.

// seedLog opens the log in dsn with the suite's keys and records, for
// acct-a, 12 deliveries one a minute back from logT0 (ep_crm and ep_billing
// alternating; every third failed, the rest delivered) and one of acct-b;
// the newest of acct-a has attempts answered 503, 503 and 200.
func seedLog(t *testing.T, dsn string) (a []deliverylog.Delivery, b deliverylog.Delivery) {
	t.Helper()
	ctx := context.Background()
	keys, err := os.ReadFile(codecKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.Parse(keys)
	if err != nil {
		t.Fatal(err)
	}
	l, err := deliverylog.Open(ctx, dsn, deliverylog.Options{Codec: c})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mk := func(account, ep string, n int) deliverylog.Delivery {
		id := fmt.Sprintf("evt_%s_%02d", account, n)
		status := "delivered"
		if n%3 == 2 {
			status = "failed"
		}
		return deliverylog.Delivery{AccountID: account, DeliveryID: ep + ":" + id, EndpointID: ep, EventID: id, EventName: "api_mail_log_delivered",
			MailLogID: fmt.Sprint(7770000 + n), Status: status, CreatedAt: logT0.Add(-time.Duration(n) * time.Minute)}
	}
	for n := range 12 {
		a = append(a, mk("acct-a", []string{"ep_crm", "ep_billing"}[n%2], n))
	}
	b = mk("acct-b", "ep_crm", 0)
	for _, d := range append(slices.Clone(a), b) {
		if err := l.UpsertDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for i, code := range []int{503, 503, 200} {
		outcome := map[int]string{503: "http_error", 200: "delivered"}[code]
		if err := l.RecordAttempt(ctx, deliverylog.AttemptRecord{AccountID: "acct-a", DeliveryID: a[0].DeliveryID, RunID: "run-1", Attempt: i + 1,
			Started: logT0.Add(time.Duration(i) * time.Second), Duration: 40 * time.Millisecond, StatusCode: code, Outcome: outcome,
			Response: []byte(fmt.Sprintf("fake answer %d", i+1))}); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

var logT0 = time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)

// jsonLines decodes one object per line.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v T
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%v in %s", err, out)
		}
		vs = append(vs, v)
	}
	return vs
}

// `starter deliveries list|show|attempts` read the log directly: filters
// select exactly, pages follow the cursor, another account's delivery
// exits 1 as one that does not exist, and mistakes exit 2 naming the flag.
func TestStarterDeliveriesCommands(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			dsn := registryDSN(t, store)
			a, b := seedLog(t, dsn)
			run := func(args ...string) (string, string, int) {
				return starter(t, "", append([]string{"deliveries"}, append(args, "--log-db", dsn)...)...)
			}
			type line struct {
				DeliveryID string `json:"delivery_id"`
				Status     string `json:"status"`
				NextCursor string `json:"next_cursor"`
			}
			ids := func(ls []line) (out []string, next string) {
				for _, l := range ls {
					if l.NextCursor != "" {
						next = l.NextCursor
						continue
					}
					out = append(out, l.DeliveryID)
				}
				return out, next
			}
			want := func(keep func(deliverylog.Delivery) bool) (out []string) {
				for _, d := range a {
					if keep(d) {
						out = append(out, d.DeliveryID)
					}
				}
				return out
			}
			for _, c := range []struct {
				args []string
				want []string
			}{
				{nil, want(func(deliverylog.Delivery) bool { return true })},
				{[]string{"--status", "failed"}, want(func(d deliverylog.Delivery) bool { return d.Status == "failed" })},
				{[]string{"--endpoint", "ep_billing", "--since", logT0.Add(-6 * time.Minute).Format(time.RFC3339)},
					want(func(d deliverylog.Delivery) bool {
						return d.EndpointID == "ep_billing" && !d.CreatedAt.Before(logT0.Add(-6*time.Minute))
					})},
				{[]string{"--until", logT0.Add(-9 * time.Minute).Format(time.RFC3339)}, want(func(d deliverylog.Delivery) bool { return d.CreatedAt.Before(logT0.Add(-9 * time.Minute)) })},
				{[]string{"--event-name", "api_mail_log_opened"}, nil},
			} {
				out, errOut, code := run(append([]string{"list", "--account", "acct-a", "--output", "json"}, c.args...)...)
				got, next := ids(jsonLines[line](t, out))
				if code != 0 || next != "" || !slices.Equal(got, c.want) {
					t.Errorf("list %v: exit %d, got %v next %q, want %v\n%s", c.args, code, got, next, c.want, errOut)
				}
			}
			// Pages of 5: 5, 5, 2, following the cursor the text output prints too.
			var all []string
			cursor := ""
			for page := 0; page < 3; page++ {
				args := []string{"list", "--account", "acct-a", "--limit", "5", "--output", "json"}
				if cursor != "" {
					args = append(args, "--cursor", cursor)
				}
				out, _, code := run(args...)
				got, next := ids(jsonLines[line](t, out))
				if code != 0 || (next == "") != (page == 2) {
					t.Fatalf("page %d: exit %d next %q", page, code, next)
				}
				all, cursor = append(all, got...), next
			}
			if !slices.Equal(all, want(func(deliverylog.Delivery) bool { return true })) {
				t.Fatalf("paged: %v", all)
			}
			if out, _, code := run("list", "--account", "acct-a", "--limit", "5"); code != 0 || !strings.Contains(out, "more: --cursor ") || !strings.Contains(out, a[0].DeliveryID) {
				t.Fatalf("text list: exit %d\n%s", code, out)
			}

			out, errOut, code := run("attempts", "--account", "acct-a", a[0].DeliveryID, "--output", "json")
			var codes []int
			for _, at := range jsonLines[httpapi.LoggedAttempt](t, out) {
				codes = append(codes, *at.StatusCode)
			}
			if code != 0 || !slices.Equal(codes, []int{503, 503, 200}) || !strings.Contains(out, `"response_excerpt":"fake answer 3"`) {
				t.Fatalf("attempts: exit %d %v\n%s%s", code, codes, out, errOut)
			}
			if out, _, code := run("attempts", "--account", "acct-a", a[0].DeliveryID); code != 0 || strings.Count(out, "http_error") != 2 || !strings.Contains(out, `"fake answer 3"`) {
				t.Fatalf("text attempts: exit %d\n%s", code, out)
			}
			out, _, code = run("show", "--account", "acct-a", a[0].DeliveryID, "--output", "json")
			if v := jsonLines[httpapi.LoggedDelivery](t, out); code != 0 || len(v) != 1 || v[0].Attempts != 3 || *v[0].LastStatusCode != 200 {
				t.Fatalf("show: exit %d\n%s", code, out)
			}
			for _, c := range []struct {
				args []string
				code int
				says string
			}{
				{[]string{"show", "--account", "acct-a", b.DeliveryID}, 1, "no such delivery"},
				{[]string{"attempts", "--account", "acct-a", b.DeliveryID}, 1, "no such delivery"},
				{[]string{"list", "--account", "acct-a", "--limit", "0"}, 2, "--limit"},
				{[]string{"list", "--account", "acct-a", "--status", "lost"}, 2, "--status"},
				{[]string{"list", "--account", "acct-a", "--since", "yesterday"}, 2, "--since"},
				{[]string{"list", "--account", "acct-a", "--since", "1h", "--until", "2h"}, 2, "--since"},
				{[]string{"list", "--account", "acct-a", "--cursor", "nope"}, 2, "--cursor"},
				{[]string{"list"}, 2, "--account"},
				{[]string{"show", "--account", "acct-a", "no-colon"}, 2, "delivery id"},
				{[]string{"show", "--account", "acct-a"}, 2, "DELIVERY_ID"},
				{[]string{"frobnicate", "--account", "acct-a"}, 2, "unknown command"},
			} {
				if _, errOut, code := run(c.args...); code != c.code || !strings.Contains(errOut, c.says) {
					t.Errorf("%v: exit %d, want %d saying %q: %s", c.args, code, c.code, c.says, errOut)
				}
			}
			if out, errOut, code := starter(t, "", "deliveries", "show", "--account", "acct-b", b.DeliveryID); code != 2 || out != "" || !strings.Contains(errOut, "--log-db") {
				t.Fatalf("without a log database: exit %d %s%s", code, out, errOut)
			}
		})
	}
}

// The log's database comes from --log-db, else HOOKRELAY_LOG_DB, else
// --endpoints-db: for `starter deliveries` and `starter serve` alike.
func TestDeliveryLogDatabaseDefaults(t *testing.T) {
	dsn := registryDSN(t, "sqlite")
	a, _ := seedLog(t, dsn)
	cmd := hookrelay(t).Command("starter", "deliveries", "show", "--account", "acct-a", a[1].DeliveryID)
	cmd.Env = append(cmd.Env, "HOOKRELAY_LOG_DB="+dsn)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), a[1].DeliveryID) {
		t.Fatalf("HOOKRELAY_LOG_DB: %v\n%s", err, out.String())
	}
	if out, errOut, code := starter(t, "", "deliveries", "show", "--account", "acct-a", a[1].DeliveryID, "--endpoints-db", dsn); code != 0 || !strings.Contains(out, "ep_billing") {
		t.Fatalf("--endpoints-db as the log's: exit %d %s%s", code, out, errOut)
	}

	file := endpointsFile(t, "crm", "http://127.0.0.1:9/", "")
	path := "/v1/accounts/acct-a/deliveries/" + a[0].DeliveryID + "/attempts"
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"the registry's database", []string{"--endpoints-db", dsn}, http.StatusOK},
		{"--log-db beside a file", []string{"--endpoints", file, "--log-db", dsn}, http.StatusOK},
		{"no log", []string{"--endpoints", file}, http.StatusNotFound},
	} {
		srv := startServeWith(t, hookrelay(t), c.args...)
		r, err := srv.do(http.MethodGet, path, nil, nil)
		if err != nil || r.code != c.code {
			t.Errorf("%s: %v %d %s", c.name, err, r.code, r.body)
		}
		if c.code == http.StatusOK && !strings.Contains(string(r.body), `"status_code":503`) {
			t.Errorf("%s: %s", c.name, r.body)
		}
		srv.Stop(10 * time.Second)
	}
}
