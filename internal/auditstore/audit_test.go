package auditstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// Every test runs against both stores: an SQLite file and a fresh
// PostgreSQL database (skipped, saying so, where no PostgreSQL answers,
// except in CI, where it fails).
func eachStore(t *testing.T, test func(t *testing.T, s *Store)) {
	for _, st := range []struct {
		name  string
		fresh func(t testing.TB) string
	}{
		{"sqlite", func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "audit.db") }},
		{"postgres", func(t testing.TB) string { return testenv.PostgresT(t) }},
	} {
		t.Run(st.name, func(t *testing.T) {
			s, err := Open(context.Background(), st.fresh(t), Options{Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			test(t, s)
		})
	}
}

var t0 = time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)

func record(t *testing.T, s *Store, r Record) int64 {
	t.Helper()
	id, err := s.Record(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func list(t *testing.T, s *Store, q Query) []Record {
	t.Helper()
	var out []Record
	for {
		page, err := s.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Records...)
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}

func actions(rs []Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.AccountID+" "+r.Action+" "+r.Target)
	}
	return out
}

// Records come back as written, oldest first, filtered by account and
// time, across pages; Settle names a created object or removes a record
// of a refused change.
func TestRecordsListByAccountAndTime(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		record(t, s, Record{AccountID: "acct_a", Credential: "admin", Action: audit.EndpointUpdate, Target: "ep_1", Changes: []string{"url", "circuit.open_after"}})
		record(t, s, Record{At: t0.Add(-time.Hour), AccountID: "acct_b", Credential: "admin", Action: audit.DeliveryResend, Target: "ep_2:evt_1"})
		created := record(t, s, Record{At: t0.Add(time.Minute), AccountID: "acct_a", Credential: "key_1", Action: audit.EndpointCreate, Changes: []string{"url", "events"}})
		refused := record(t, s, Record{At: t0.Add(2 * time.Minute), AccountID: "acct_a", Credential: "admin", Action: audit.EndpointDelete, Target: "ep_9"})
		record(t, s, Record{At: t0.Add(3 * time.Minute), AccountID: audit.AllAccounts, Credential: "static token", Action: audit.PayloadDecode, Target: "3"})
		if err := s.Settle(ctx, created, true, "ep_3"); err != nil {
			t.Fatal(err)
		}
		if err := s.Settle(ctx, refused, false, ""); err != nil {
			t.Fatal(err)
		}

		all := list(t, s, Query{Limit: 1})
		want := []string{"acct_b delivery.resend ep_2:evt_1", "acct_a endpoint.update ep_1", "acct_a endpoint.create ep_3", "* payload.decode 3"}
		if got := actions(all); !slices.Equal(got, want) {
			t.Fatalf("every record, one per page:\n got %q\nwant %q", got, want)
		}
		if r := all[1]; !r.At.Equal(t0) || r.Credential != "admin" || !slices.Equal(r.Changes, []string{"url", "circuit.open_after"}) {
			t.Errorf("record as read back: %+v", r)
		}
		if got := actions(list(t, s, Query{AccountID: "acct_a"})); !slices.Equal(got, want[1:3]) {
			t.Errorf("account acct_a: %q", got)
		}
		if got := actions(list(t, s, Query{AccountID: "acct_a", Since: t0.Add(time.Second)})); !slices.Equal(got, want[2:3]) {
			t.Errorf("acct_a since t0+1s: %q", got)
		}
		if got := list(t, s, Query{AccountID: "acct_c"}); len(got) != 0 {
			t.Errorf("an account with no records: %v", got)
		}
		var fe *FieldError
		if _, err := s.List(ctx, Query{Cursor: "not-a-cursor"}); !errors.As(err, &fe) || fe.Field != "cursor" {
			t.Errorf("a bad cursor: %v", err)
		}
		if _, err := s.List(ctx, Query{Limit: audit.MaxLimit + 1}); !errors.As(err, &fe) || fe.Field != "limit" {
			t.Errorf("a limit past the maximum: %v", err)
		}
	})
}

// A record holds ids and field names: an unknown action, a missing
// credential or a change that is not a field name (a value) is refused.
func TestRecordRefusesValues(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		for name, r := range map[string]Record{
			"unknown action":   {AccountID: "acct_a", Credential: "admin", Action: "endpoint.frobnicate"},
			"no credential":    {AccountID: "acct_a", Action: audit.EndpointCreate},
			"no account":       {Credential: "admin", Action: audit.EndpointCreate},
			"a secret value":   {AccountID: "acct_a", Credential: "admin", Action: audit.EndpointRotateSecret, Changes: []string{"whsec_c2VjcmV0LWZha2U="}},
			"a URL as a field": {AccountID: "acct_a", Credential: "admin", Action: audit.EndpointUpdate, Changes: []string{"https://example.com/hook"}},
		} {
			if _, err := s.Record(context.Background(), r); err == nil {
				t.Errorf("%s: recorded", name)
			}
		}
		if got := list(t, s, Query{}); len(got) != 0 {
			t.Errorf("refused records were written: %v", got)
		}
	})
}

// Prune removes the records before the cutoff and keeps the rest, in
// batches larger than one statement.
func TestPrune(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		old := pruneBatch + 7
		var b strings.Builder
		for i := range old {
			fmt.Fprintf(&b, "(%d, 'acct_a', 'admin', 'endpoint.update', 'ep_%d', '[]'),", t0.Add(-48*time.Hour).UnixMilli()+int64(i), i)
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO audit_records (at, account_id, credential, action, target, changes) VALUES `+strings.TrimSuffix(b.String(), ",")); err != nil {
			t.Fatal(err)
		}
		record(t, s, Record{AccountID: "acct_a", Credential: "admin", Action: audit.EndpointDelete, Target: "ep_kept"})
		n, err := s.Prune(ctx, t0.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(old) {
			t.Errorf("pruned %d, want %d", n, old)
		}
		if got := actions(list(t, s, Query{})); !slices.Equal(got, []string{"acct_a endpoint.delete ep_kept"}) {
			t.Errorf("left after prune: %q", got)
		}
	})
}
