package registry

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// The contract suite: every test runs against both stores, an SQLite file
// and a fresh PostgreSQL database (skipped, saying so, where no PostgreSQL
// answers, except in CI).

// store opens fresh databases of one kind.
type store struct {
	name  string
	fresh func(t *testing.T) string // a new, empty database's DSN
}

var stores = []store{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "endpoints.db") }},
	{"postgres", func(t *testing.T) string { return testenv.PostgresT(t) }},
}

// eachStore runs test against each store.
func eachStore(t *testing.T, test func(t *testing.T, dsn string)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { test(t, s.fresh(t)) })
	}
}

// clock is a settable fake clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newCodec(t testing.TB, lines ...string) *codec.Codec {
	t.Helper()
	c, err := codec.Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeGuard resolves names without DNS: hooks.example.com to a public
// address, internal.example.com to a private one, anything else not at all.
func fakeGuard(allow ...netip.Prefix) *netguard.Guard {
	g := netguard.New(allow...)
	g.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "hooks.example.com", "other.example.com":
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
		case "internal.example.com":
			return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
		}
		return nil, fmt.Errorf("lookup %s: no such host (fake resolver)", host)
	}
	return g
}

func open(t *testing.T, dsn string, o Options) *Registry {
	t.Helper()
	if o.Codec == nil {
		o.Codec = newCodec(t, testenv.CodecKeyLine("k1"))
	}
	if o.Guard == nil {
		o.Guard = fakeGuard()
	}
	r, err := Open(context.Background(), dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func ptr[T any](v T) *T { return &v }

func fields(url string, events ...string) Fields {
	return Fields{URL: ptr(url), Events: ptr(events)}
}

func create(t *testing.T, r *Registry, account string, f Fields) (Entry, string) {
	t.Helper()
	e, secret, err := r.Create(context.Background(), account, f)
	if err != nil {
		t.Fatalf("create for %s: %v", account, err)
	}
	return e, secret
}

func ids(eps []endpoint.Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.ID)
	}
	return out
}

func TestCreateGetUpdateDelete(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		r := open(t, dsn, Options{})
		e, secret := create(t, r, "acct_1", Fields{URL: ptr("https://hooks.example.com/mail?token=fake"), Events: ptr([]string{event.Delivered}),
			Description: ptr("CRM"), Timeout: ptr("5s"), RetrySchedule: ptr([]string{"1s", "1m"})})
		if !strings.HasPrefix(e.ID, "ep_") || len(e.ID) != 29 || !strings.HasPrefix(secret, "whsec_") {
			t.Fatalf("id %q secret prefix %q", e.ID, secret[:6])
		}
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_")); err != nil || len(raw) != 32 {
			t.Fatalf("secret is not whsec_ + base64 of 32 bytes: %d bytes, %v", len(raw), err)
		}
		got, err := r.Get(ctx, "acct_1", e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.URL.String() != "https://hooks.example.com/mail?token=fake" || got.Description != "CRM" || got.Timeout != 5*time.Second ||
			!slices.Equal(got.RetrySchedule, []time.Duration{time.Second, time.Minute}) || !got.Enabled || got.AccountID != "acct_1" || got.CreatedAt.IsZero() {
			t.Fatalf("Get = %+v", got)
		}

		// Defaults: timeout, schedule, enabled.
		d, _ := create(t, r, "acct_1", fields("https://other.example.com/", "*"))
		if d.Timeout != endpoint.DefaultTimeout || !slices.Equal(d.RetrySchedule, endpoint.DefaultRetrySchedule) || !d.Enabled ||
			!reflect.DeepEqual(d.Circuit, endpoint.DefaultCircuit()) {
			t.Fatalf("defaults: %+v", d)
		}
		if c, err := r.Update(ctx, "acct_1", d.ID, Fields{Circuit: &endpoint.RawCircuit{OpenAfter: ptr(3), ParkLimit: ptr("48h")}}); err != nil ||
			c.Circuit.OpenAfter != 3 || c.Circuit.ParkLimit != 48*time.Hour || c.Circuit.DrainPerSecond != endpoint.DefaultCircuit().DrainPerSecond {
			t.Fatalf("circuit patch: %+v %v", c.Circuit, err)
		}
		if got, _ := r.Resolve(ctx, d.ID); got.Circuit.OpenAfter != 3 {
			t.Fatalf("circuit not stored: %+v", got.Circuit)
		}

		// A patch changes only what it names.
		up, err := r.Update(ctx, "acct_1", e.ID, Fields{Enabled: ptr(false), RetrySchedule: ptr([]string{})})
		if err != nil {
			t.Fatal(err)
		}
		if up.Enabled || len(up.RetrySchedule) != 0 || up.Description != "CRM" || up.URL.Host != "hooks.example.com" {
			t.Fatalf("Update = %+v", up)
		}
		if got, _ := r.Get(ctx, "acct_1", e.ID); got.Enabled || len(got.RetrySchedule) != 0 {
			t.Fatalf("after Update, Get = %+v", got)
		}

		if err := r.Delete(ctx, "acct_1", e.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Get(ctx, "acct_1", e.ID); !errors.Is(err, endpoint.ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
		if err := r.Delete(ctx, "acct_1", e.ID); !errors.Is(err, endpoint.ErrNotFound) {
			t.Fatalf("Delete twice: %v", err)
		}
		if _, err := r.Update(ctx, "acct_1", e.ID, Fields{Enabled: ptr(true)}); !errors.Is(err, endpoint.ErrNotFound) {
			t.Fatalf("Update after Delete: %v", err)
		}
		// The tombstone: Resolve tells deleted from never seen.
		if _, err := r.Resolve(ctx, e.ID); !errors.Is(err, endpoint.ErrDeleted) {
			t.Fatalf("Resolve deleted: %v", err)
		}
		if _, err := r.Resolve(ctx, "ep_neverseen"); !errors.Is(err, endpoint.ErrNotFound) {
			t.Fatalf("Resolve unknown: %v", err)
		}
	})
}

// Every call is scoped to its account: another account's endpoint is not
// found, and routing is exact on the account.
func TestAccountsAreIsolated(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		r := open(t, dsn, Options{})
		a, _ := create(t, r, "acct_a", fields("https://hooks.example.com/a", "*"))
		b, _ := create(t, r, "acct_b", fields("https://hooks.example.com/b", event.Delivered))
		// Disabled: never routed.
		create(t, r, "acct_a", Fields{URL: ptr("https://hooks.example.com/off"), Events: ptr([]string{"*"}), Enabled: ptr(false)})
		opened, _ := create(t, r, "acct_a", fields("https://hooks.example.com/opened", event.Opened))

		if _, err := r.Get(ctx, "acct_b", a.ID); !errors.Is(err, endpoint.ErrNotFound) {
			t.Errorf("Get of another account's endpoint: %v", err)
		}
		if _, err := r.Update(ctx, "acct_b", a.ID, Fields{Enabled: ptr(false)}); !errors.Is(err, endpoint.ErrNotFound) {
			t.Errorf("Update of another account's endpoint: %v", err)
		}
		if _, err := r.RotateSecret(ctx, "acct_b", a.ID, time.Hour); !errors.Is(err, endpoint.ErrNotFound) {
			t.Errorf("RotateSecret of another account's endpoint: %v", err)
		}
		if err := r.Delete(ctx, "acct_b", a.ID); !errors.Is(err, endpoint.ErrNotFound) {
			t.Errorf("Delete of another account's endpoint: %v", err)
		}
		if got, _ := r.Get(ctx, "acct_a", a.ID); !got.Enabled {
			t.Error("another account's Update reached the endpoint")
		}
		page, err := r.List(ctx, "acct_b", 0, "")
		if err != nil || len(page.Entries) != 1 || page.Entries[0].ID != b.ID {
			t.Errorf("List acct_b = %+v, %v", page, err)
		}

		for _, c := range []struct {
			account, event string
			want           []string
		}{
			{"acct_a", event.Delivered, []string{a.ID}},
			{"acct_a", event.Opened, sorted(a.ID, opened.ID)},
			{"acct_b", event.Delivered, []string{b.ID}},
			{"acct_b", event.Opened, nil},
			{"", event.Delivered, nil},
			{"acct_c", event.Delivered, nil},
		} {
			got, err := r.Route(ctx, c.account, c.event)
			if err != nil || !slices.Equal(ids(got), c.want) {
				t.Errorf("Route(%q, %s) = %v, %v; want %v", c.account, c.event, ids(got), err, c.want)
			}
			for _, ep := range got {
				if ep.AccountID != c.account {
					t.Errorf("Route(%q) returned an endpoint of %q", c.account, ep.AccountID)
				}
				if s, err := ep.Secrets(); err != nil || len(s) != 1 {
					t.Errorf("routed endpoint's secrets: %d, %v", len(s), err)
				}
			}
		}
	})
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func TestListPages(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		r := open(t, dsn, Options{})
		var want []string
		for range 7 {
			e, _ := create(t, r, "acct_pages", fields("https://hooks.example.com/", "*"))
			want = append(want, e.ID)
		}
		create(t, r, "acct_other", fields("https://hooks.example.com/", "*"))
		gone, _ := create(t, r, "acct_pages", fields("https://hooks.example.com/", "*"))
		if err := r.Delete(ctx, "acct_pages", gone.ID); err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		var got []string
		cursor, pages := "", 0
		for {
			page, err := r.List(ctx, "acct_pages", 3, cursor)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, e := range page.Entries {
				got = append(got, e.ID)
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if !slices.Equal(got, want) || pages != 3 {
			t.Fatalf("listed %v in %d pages, want %v in 3", got, pages, want)
		}
		for _, c := range []struct {
			limit  int
			cursor string
			field  string
		}{
			{-1, "", "limit"}, {MaxListLimit + 1, "", "limit"}, {0, "not-a-cursor", "cursor"},
			{0, base64.RawURLEncoding.EncodeToString([]byte("other")), "cursor"},
		} {
			_, err := r.List(ctx, "acct_pages", c.limit, c.cursor)
			var fe *event.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("List(%d, %q): %v, want a field error on %s", c.limit, c.cursor, err, c.field)
			}
		}
	})
}

// Every field is refused with its name, and nothing is written.
func TestValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		r := open(t, dsn, Options{})
		existing, _ := create(t, r, "acct_v", fields("https://hooks.example.com/", "*"))
		ok := func() Fields { return fields("https://hooks.example.com/", "*") }
		with := func(edit func(*Fields)) Fields { f := ok(); edit(&f); return f }
		cases := []struct {
			name    string
			account string
			f       Fields
			field   string
		}{
			{"no url", "acct_v", Fields{Events: ptr([]string{"*"})}, "url"},
			{"no events", "acct_v", Fields{URL: ptr("https://hooks.example.com/")}, "events"},
			{"ftp url", "acct_v", with(func(f *Fields) { f.URL = ptr("ftp://hooks.example.com/") }), "url"},
			{"url with credentials", "acct_v", with(func(f *Fields) { f.URL = ptr("https://u:p@hooks.example.com/") }), "url"},
			{"url with fragment", "acct_v", with(func(f *Fields) { f.URL = ptr("https://hooks.example.com/#x") }), "url"},
			{"loopback url", "acct_v", with(func(f *Fields) { f.URL = ptr("http://127.0.0.1:9000/") }), "url"},
			{"metadata url", "acct_v", with(func(f *Fields) { f.URL = ptr("http://169.254.169.254/latest") }), "url"},
			{"private name", "acct_v", with(func(f *Fields) { f.URL = ptr("https://internal.example.com/") }), "url"},
			{"unresolvable name", "acct_v", with(func(f *Fields) { f.URL = ptr("https://nowhere.example.com/") }), "url"},
			{"empty events", "acct_v", with(func(f *Fields) { f.Events = ptr([]string{}) }), "events"},
			{"unknown event", "acct_v", with(func(f *Fields) { f.Events = ptr([]string{"api_mail_log_exploded"}) }), "events"},
			{"long description", "acct_v", with(func(f *Fields) { f.Description = ptr(strings.Repeat("x", 501)) }), "description"},
			{"newline in description", "acct_v", with(func(f *Fields) { f.Description = ptr("a\nb") }), "description"},
			{"bad timeout", "acct_v", with(func(f *Fields) { f.Timeout = ptr("soon") }), "timeout"},
			{"timeout too long", "acct_v", with(func(f *Fields) { f.Timeout = ptr("6m") }), "timeout"},
			{"bad delay", "acct_v", with(func(f *Fields) { f.RetrySchedule = ptr([]string{"1s", "later"}) }), "retry_schedule[1]"},
			{"too many delays", "acct_v", with(func(f *Fields) { f.RetrySchedule = ptr(slices.Repeat([]string{"1s"}, 51)) }), "retry_schedule"},
			{"bad circuit", "acct_v", with(func(f *Fields) { f.Circuit = &endpoint.RawCircuit{OpenAfter: ptr(0)} }), "circuit.open_after"},
			{"bad account", "acct v", ok(), "account_id"},
			{"empty account", "", ok(), "account_id"},
		}
		for _, c := range cases {
			_, _, err := r.Create(ctx, c.account, c.f)
			var fe *event.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || fe.Problem == "" {
				t.Errorf("Create, %s: %v, want a field error on %s", c.name, err, c.field)
			}
			if c.f.URL == nil || c.f.Events == nil || c.account != "acct_v" {
				continue
			}
			// The same mistake in a patch: refused, and the endpoint unchanged.
			patch := c.f
			if c.field == "url" || c.field == "events" {
				patch = Fields{URL: c.f.URL, Events: c.f.Events}
			}
			_, err = r.Update(ctx, "acct_v", existing.ID, patch)
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("Update, %s: %v, want a field error on %s", c.name, err, c.field)
			}
		}
		page, _ := r.List(ctx, "acct_v", 0, "")
		if len(page.Entries) != 1 {
			t.Fatalf("refused creates wrote endpoints: %d listed", len(page.Entries))
		}
		if got, _ := r.Get(ctx, "acct_v", existing.ID); got.URL.String() != "https://hooks.example.com/" || !slices.Equal(got.Events, []string{"*"}) {
			t.Fatalf("refused updates changed the endpoint: %+v", got)
		}
		if _, err := r.RotateSecret(ctx, "acct_v", existing.ID, -time.Second); err == nil {
			t.Error("a negative overlap was taken")
		}
	})
}

// The guard at registration admits what --allow-cidr admits, and --https-only refuses http.
func TestRegistrationRules(t *testing.T) {
	dsn := stores[0].fresh(t)
	ctx := context.Background()
	r := open(t, dsn, Options{Guard: fakeGuard(netip.MustParsePrefix("127.0.0.0/8"))})
	if _, _, err := r.Create(ctx, "acct", fields("http://127.0.0.1:9000/hook", "*")); err != nil {
		t.Fatalf("an admitted loopback URL: %v", err)
	}
	if _, _, err := r.Create(ctx, "acct", fields("http://10.0.0.1/", "*")); err == nil {
		t.Fatal("a private URL outside the admitted range was taken")
	}
	r.Close()
	strict := open(t, dsn, Options{HTTPSOnly: true})
	var fe *event.FieldError
	if _, _, err := strict.Create(ctx, "acct", fields("http://hooks.example.com/", "*")); !errors.As(err, &fe) || fe.Field != "url" {
		t.Fatalf("http with HTTPSOnly: %v", err)
	}
}

// Rotation: the old secret keeps signing until its expiry; overlap 0 drops it at once.
func TestRotateSecret(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := newClock()
		r := open(t, dsn, Options{Now: clk.Now})
		e, first := create(t, r, "acct_r", fields("https://hooks.example.com/", "*"))
		keyIDs := func() []string {
			t.Helper()
			ep, err := r.Resolve(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ep.Secrets()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, k := range s {
				out = append(out, k.KeyID())
			}
			return out
		}
		firstID := keyIDOf(t, first)
		if got := keyIDs(); !slices.Equal(got, []string{firstID}) {
			t.Fatalf("before rotation: %v", got)
		}
		rot, err := r.RotateSecret(ctx, "acct_r", e.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if rot.Secret == first || rot.PreviousExpiresAt == nil || !rot.PreviousExpiresAt.Equal(clk.Now().Add(time.Hour)) {
			t.Fatalf("rotated: expires %v", rot.PreviousExpiresAt)
		}
		secondID := keyIDOf(t, rot.Secret)
		if got := keyIDs(); !slices.Equal(got, []string{secondID, firstID}) {
			t.Fatalf("during the overlap: %v, want new then old", got)
		}
		clk.Advance(time.Hour)
		if got := keyIDs(); !slices.Equal(got, []string{secondID}) {
			t.Fatalf("after the overlap: %v, want only the new", got)
		}
		rot2, err := r.RotateSecret(ctx, "acct_r", e.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rot3, err := r.RotateSecret(ctx, "acct_r", e.ID, 0)
		if err != nil || rot3.PreviousExpiresAt != nil {
			t.Fatalf("overlap 0: %+v %v", rot3, err)
		}
		if got := keyIDs(); !slices.Equal(got, []string{keyIDOf(t, rot3.Secret)}) {
			t.Fatalf("overlap 0 kept old secrets: %v (had %s)", got, keyIDOf(t, rot2.Secret))
		}
		// Reveal answers the current secret to its account only, and changes nothing.
		if got, err := r.RevealSecret(ctx, "acct_r", e.ID); err != nil || got != rot3.Secret {
			t.Fatalf("reveal: %v, the current secret %t", err, got == rot3.Secret)
		}
		if _, err := r.RevealSecret(ctx, "acct_b", e.ID); !errors.Is(err, endpoint.ErrNotFound) {
			t.Fatalf("reveal from another account: %v", err)
		}
		if got := keyIDs(); !slices.Equal(got, []string{keyIDOf(t, rot3.Secret)}) {
			t.Fatalf("after reveal: %v", got)
		}
	})
}

func keyIDOf(t *testing.T, secret string) string {
	t.Helper()
	ep := endpoint.Endpoint{}
	cfg, err := endpoint.Parse([]byte("endpoints:\n  - id: x\n    url: https://hooks.example.com/\n    events: [\"*\"]\n    secret: "+secret+"\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	ep = cfg.Endpoints[0]
	s, err := ep.Secrets()
	if err != nil {
		t.Fatal(err)
	}
	return s[0].KeyID()
}

// A dump of the database holds no usable secret: no whsec_, and no
// secret's bytes in any encoding, in any column of any row.
func TestSecretsAtRest(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		r := open(t, dsn, Options{})
		var secrets []string
		e, s := create(t, r, "acct_s", fields("https://hooks.example.com/", "*"))
		secrets = append(secrets, s)
		rot, err := r.RotateSecret(ctx, "acct_s", e.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, rot.Secret)
		_, s2 := create(t, r, "acct_s2", fields("https://hooks.example.com/", "*"))
		secrets = append(secrets, s2)

		dump := dumpRows(t, r.db)
		if bytes.Contains(bytes.ToLower(dump), []byte("whsec_")) {
			t.Fatal("the rows hold whsec_")
		}
		for _, s := range secrets {
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
			for name, form := range map[string][]byte{
				"raw": key, "base64": []byte(base64.StdEncoding.EncodeToString(key)),
				"base64url": []byte(base64.RawURLEncoding.EncodeToString(key)), "hex": []byte(hex.EncodeToString(key)),
				"base64 of the text": []byte(base64.StdEncoding.EncodeToString([]byte(s))),
			} {
				if bytes.Contains(dump, form) || bytes.Contains(bytes.ToLower(dump), bytes.ToLower(form[:16])) {
					t.Fatalf("the rows hold a secret (%s)", name)
				}
			}
		}
	})
}

// dumpRows is every row of every hookrelay table, as bytes: what a dump holds.
func dumpRows(t *testing.T, db *sql.DB) []byte {
	t.Helper()
	var dump bytes.Buffer
	for _, table := range []string{"endpoints", "schema_migrations"} {
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				switch v := v.(type) {
				case []byte:
					dump.Write(v)
				default:
					fmt.Fprint(&dump, v)
				}
				dump.WriteByte('|')
			}
			dump.WriteByte('\n')
		}
		rows.Close()
	}
	if dump.Len() == 0 {
		t.Fatal("empty dump")
	}
	return dump.Bytes()
}

// Appending a key to the key file keeps rows sealed before readable; new
// writes seal with the new key; a key file without the old key says so.
func TestKeyRotation(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		k1 := testenv.CodecKeyLine("k1")
		before := open(t, dsn, Options{Codec: newCodec(t, k1)})
		e, _ := create(t, before, "acct_k", fields("https://hooks.example.com/", "*"))
		before.Close()

		after := open(t, dsn, Options{Codec: newCodec(t, k1, testenv.CodecKeyLine("k2"))})
		if _, err := after.Resolve(ctx, e.ID); err != nil {
			t.Fatalf("a row sealed with the old key: %v", err)
		}
		e2, _ := create(t, after, "acct_k", fields("https://hooks.example.com/", "*"))
		if _, err := after.Resolve(ctx, e2.ID); err != nil {
			t.Fatal(err)
		}
		var sealed []byte
		if err := after.db.QueryRow(after.dialect.rebind("SELECT secrets FROM endpoints WHERE id = ?"), e2.ID).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(sealed[:8], []byte("k2")) {
			t.Fatal("a new row is not sealed with the newest key")
		}
		after.Close()

		lost := open(t, dsn, Options{Codec: newCodec(t, testenv.CodecKeyLine("k3"))})
		if _, err := lost.Resolve(ctx, e.ID); err == nil || !strings.Contains(err.Error(), "key file") {
			t.Fatalf("without the sealing key: %v", err)
		}
	})
}

// Several processes opening a fresh database at once all migrate it
// safely: each Open here has its own connections, as processes would.
func TestConcurrentOpens(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		c := newCodec(t, testenv.CodecKeyLine("k1"))
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := Open(context.Background(), dsn, Options{Codec: c, Guard: fakeGuard()})
				if err != nil {
					errs <- err
					return
				}
				defer r.Close()
				_, _, err = r.Create(context.Background(), "acct", fields("https://hooks.example.com/", "*"))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		r := open(t, dsn, Options{Codec: c})
		if page, err := r.List(context.Background(), "acct", 0, ""); err != nil || len(page.Entries) != 8 {
			t.Fatalf("after concurrent opens: %d endpoints, %v", len(page.Entries), err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"mysql://db/endpoints", "postgres://... or sqlite:PATH"},
		{"sqlite:", "needs a file path"},
		{"postgres://hookrelay:hunter2-fake@127.0.0.1:1/none?connect_timeout=2", "xxxxx"},
	} {
		_, err := Open(context.Background(), c.dsn, Options{Codec: newCodec(t, testenv.CodecKeyLine("k"))})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%s): %v, want it to say %q and hide any password", Redact(c.dsn), err, c.want)
		}
	}
	if _, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "x.db"), Options{}); err == nil {
		t.Error("Open without payload keys")
	}
}

// trace_context is off unless asked for, set on create or update, and
// stored: Resolve (what attempts read) sees it.
func TestTraceContext(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		r := open(t, dsn, Options{})
		off, _ := create(t, r, "acct_1", fields("https://hooks.example.com/a", "*"))
		on, _ := create(t, r, "acct_1", Fields{URL: ptr("https://hooks.example.com/b"), Events: ptr([]string{"*"}), TraceContext: ptr(true)})
		if off.TraceContext || !on.TraceContext || off.View().TraceContext || !on.View().TraceContext {
			t.Fatalf("created: off %t, on %t", off.TraceContext, on.TraceContext)
		}
		if got, err := r.Resolve(ctx, on.ID); err != nil || !got.TraceContext {
			t.Fatalf("Resolve: %t %v", got.TraceContext, err)
		}
		if up, err := r.Update(ctx, "acct_1", on.ID, Fields{TraceContext: ptr(false)}); err != nil || up.TraceContext {
			t.Fatalf("Update to false: %t %v", up.TraceContext, err)
		}
		if up, err := r.Update(ctx, "acct_1", off.ID, Fields{Description: ptr("kept")}); err != nil || up.TraceContext {
			t.Fatalf("a patch without trace_context changed it: %t %v", up.TraceContext, err)
		}
		if got, err := r.Resolve(ctx, on.ID); err != nil || got.TraceContext {
			t.Fatalf("Resolve after update: %t %v", got.TraceContext, err)
		}
	})
}

// An endpoint registered before migration 2 (trace_context) keeps working
// after it, without the header.
func TestMigrationAddsTraceContextOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := migrations.ReadFile("migrations/sqlite/1_endpoints.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{string(v1),
		`CREATE TABLE schema_migrations (version uint64, dirty bool)`,
		`INSERT INTO schema_migrations VALUES (1, false)`,
		`INSERT INTO endpoints (id, account_id, url, events, description, timeout_ms, retry_schedule, enabled, circuit, secrets, version, created_at, updated_at)
		 VALUES ('ep_old', 'acct_1', 'https://hooks.example.com/', '["*"]', '', 5000, '[]', true, '{}', NULL, 1, 0, 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	r := open(t, "sqlite:"+path, Options{})
	got, err := r.Get(context.Background(), "acct_1", "ep_old")
	if err != nil || got.TraceContext || got.URL.Host != "hooks.example.com" {
		t.Fatalf("after migration: %+v %v", got, err)
	}
}

// Registration takes 443, 80 and 1024-65535, and other ports only as the
// port rule admits them (--allow-port): 422 on url otherwise.
func TestRegistrationPorts(t *testing.T) {
	dsn := stores[0].fresh(t)
	ctx := context.Background()
	r := open(t, dsn, Options{Guard: fakeGuard().WithPortRule()})
	for _, u := range []string{"https://hooks.example.com/", "http://hooks.example.com/", "https://hooks.example.com:8443/", "https://hooks.example.com:65535/"} {
		if _, _, err := r.Create(ctx, "acct", fields(u, "*")); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	var fe *event.FieldError
	for _, u := range []string{"https://hooks.example.com:22/", "http://hooks.example.com:25/", "https://hooks.example.com:1023/"} {
		if _, _, err := r.Create(ctx, "acct", fields(u, "*")); !errors.As(err, &fe) || fe.Field != "url" || !strings.Contains(fe.Problem, "port") {
			t.Errorf("%s: %v, want a field error on url naming the port", u, err)
		}
	}
	r.Close()
	wide := open(t, dsn, Options{Guard: fakeGuard().WithPortRule(netguard.PortRange{Lo: 22, Hi: 22})})
	if _, _, err := wide.Create(ctx, "acct", fields("https://hooks.example.com:22/", "*")); err != nil {
		t.Fatalf("port 22 admitted: %v", err)
	}
}
