package endpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const validSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

const sampleFile = `
endpoints:
  - id: acme
    url: https://hooks.acme.example/mail
    events: [api_mail_log_delivered, api_mail_log_permanent_failure]
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    previous_secrets: []
    timeout: 10s
    retry_schedule: [1s, 1m]
    enabled: true
    trace_context: true
  - id: globex
    url: http://127.0.0.1:9999/hooks
    events: ["*"]
    secret_env: HOOKRELAY_TEST_GLOBEX_SECRET
  - id: off
    url: https://off.example.com/
    events: ["*"]
    secret_file: off.secret
    enabled: false
`

func TestParseSample(t *testing.T) {
	cfg, err := Parse([]byte(sampleFile), "/etc/hookrelay")
	if err != nil {
		t.Fatal(err)
	}
	acme, ok := cfg.Lookup("acme")
	if !ok || acme.URL.Host != "hooks.acme.example" || acme.Timeout != 10*time.Second ||
		!reflect.DeepEqual(acme.RetrySchedule, []time.Duration{time.Second, time.Minute}) || !acme.Enabled || !acme.TraceContext {
		t.Fatalf("acme = %+v", acme)
	}
	globex, _ := cfg.Lookup("globex")
	if globex.Timeout != DefaultTimeout || !reflect.DeepEqual(globex.RetrySchedule, DefaultRetrySchedule) || !globex.Enabled || globex.TraceContext {
		t.Fatalf("globex defaults = %+v", globex)
	}
	off, _ := cfg.Lookup("off")
	if off.Enabled || off.secret.file != "/etc/hookrelay/off.secret" {
		t.Fatalf("off = %+v", off)
	}

	var got []string
	for _, e := range cfg.Subscribed("", "api_mail_log_delivered") {
		got = append(got, e.ID)
	}
	if !reflect.DeepEqual(got, []string{"acme", "globex"}) {
		t.Fatalf("Subscribed(delivered) = %v", got)
	}
	got = nil
	for _, e := range cfg.Subscribed("", "api_mail_log_opened") {
		got = append(got, e.ID)
	}
	if !reflect.DeepEqual(got, []string{"globex"}) {
		t.Fatalf("Subscribed(opened) = %v", got)
	}
}

func TestEmptyRetryScheduleMeansOneAttempt(t *testing.T) {
	cfg, err := Parse([]byte("endpoints:\n  - {id: a, url: 'https://a.example.com', events: ['*'], secret: "+validSecret+", retry_schedule: []}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Endpoints[0].RetrySchedule; s == nil || len(s) != 0 {
		t.Fatalf("retry_schedule [] = %#v, want empty non-nil", s)
	}
}

func TestParseRefusesBadFiles(t *testing.T) {
	entry := func(extra string) string {
		return "endpoints:\n  - id: acme\n    url: https://a.example.com/\n    events: ['*']\n" + extra
	}
	withSecret := func(extra string) string { return entry("    secret: " + validSecret + "\n" + extra) }
	tests := []struct {
		name string
		doc  string
		want []string // substrings the message must hold
	}{
		{"not YAML", "endpoints: [", []string{"not valid YAML"}},
		{"not a mapping", "- a\n- b\n", []string{"endpoints list"}},
		{"unknown top-level key", "endpoint: []\n", []string{`unknown key "endpoint"`}},
		{"endpoints not a list", "endpoints: {}\n", []string{"endpoints: must be a list"}},
		{"unknown key", withSecret("    secrte: x\n"), []string{`endpoint "acme"`, `unknown key "secrte"`, "line 6"}},
		{"missing id", "endpoints:\n  - url: https://a.example.com/\n    events: ['*']\n    secret: " + validSecret + "\n", []string{"endpoints[0]", "id: is required"}},
		{"bad id", strings.Replace(withSecret(""), "id: acme", "id: Acme_1", 1), []string{`endpoint "Acme_1"`, "id:"}},
		{"bad URL scheme", strings.Replace(withSecret(""), "https://a.example.com/", "ftp://a.example.com/", 1), []string{`endpoint "acme"`, "url:", "http or https"}},
		{"URL without host", strings.Replace(withSecret(""), "https://a.example.com/", "https:///path", 1), []string{"url:", "no host"}},
		{"URL with credentials", strings.Replace(withSecret(""), "https://a.example.com/", "https://user:pw@a.example.com/", 1), []string{"url:", "credentials"}},
		{"unknown event", strings.Replace(withSecret(""), "['*']", "[api_mail_log_clicked]", 1), []string{`endpoint "acme"`, "events:", "api_mail_log_clicked"}},
		{"no events", strings.Replace(withSecret(""), "['*']", "[]", 1), []string{"events: is required"}},
		{"no secret", entry(""), []string{`endpoint "acme"`, "exactly one of secret"}},
		{"two secrets", withSecret("    secret_env: X\n"), []string{"exactly one of secret"}},
		{"bad secret", entry("    secret: hunter2\n"), []string{`endpoint "acme"`, "secret:", "whsec_"}},
		{"short secret", entry("    secret: whsec_AAAA\n"), []string{"secret:", "3 bytes"}},
		{"bad previous secret", withSecret("    previous_secrets: [nope]\n"), []string{"previous_secrets[0]"}},
		{"bad secret_env name", entry("    secret_env: 'a b'\n"), []string{"secret_env:"}},
		{"bad timeout", withSecret("    timeout: soon\n"), []string{`endpoint "acme"`, "timeout:", `"soon"`}},
		{"zero timeout", withSecret("    timeout: 0s\n"), []string{"timeout:", "positive"}},
		{"huge timeout", withSecret("    timeout: 1h\n"), []string{"timeout:", "maximum"}},
		{"bad retry delay", withSecret("    retry_schedule: [5s, 5x]\n"), []string{`endpoint "acme"`, "retry_schedule[1]"}},
		{"negative retry delay", withSecret("    retry_schedule: [-5s]\n"), []string{"retry_schedule[0]", "positive"}},
		{"enabled not a bool", withSecret("    enabled: maybe\n"), []string{`endpoint "acme"`, "maybe"}},
		{"trace_context not a bool", withSecret("    trace_context: sometimes\n"), []string{`endpoint "acme"`, "sometimes", "bool"}},
		{"duplicate id", withSecret("") + "  - id: acme\n    url: https://b.example.com/\n    events: ['*']\n    secret: " + validSecret + "\n", []string{`endpoint "acme" (endpoints[1])`, "duplicate of endpoints[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), ".")
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestSecretsResolvedAtCallTime(t *testing.T) {
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "acme.secret")
	doc := "endpoints:\n" +
		"  - {id: file, url: 'https://a.example.com', events: ['*'], secret_file: acme.secret, previous_secrets: [" + validSecret + "]}\n" +
		"  - {id: env, url: 'https://a.example.com', events: ['*'], secret_env: HOOKRELAY_TEST_SECRET}\n"
	cfg, err := Parse([]byte(doc), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckSecrets(); err == nil || !strings.Contains(err.Error(), `endpoint "file"`) || !strings.Contains(err.Error(), "HOOKRELAY_TEST_SECRET is not set") {
		t.Fatalf("CheckSecrets with nothing set = %v", err)
	}

	first := "whsec_" + strings.Repeat("A", 32)
	second := "whsec_" + strings.Repeat("B", 32)
	if err := os.WriteFile(secretPath, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOKRELAY_TEST_SECRET", second)
	if err := cfg.CheckSecrets(); err != nil {
		t.Fatal(err)
	}
	e, _ := cfg.Lookup("file")
	before, _ := e.Secrets()
	if len(before) != 2 {
		t.Fatalf("want current + previous secret, got %d", len(before))
	}
	if err := os.WriteFile(secretPath, []byte(second), 0o600); err != nil {
		t.Fatal(err)
	}
	after, _ := e.Secrets()
	if before[0].KeyID() == after[0].KeyID() {
		t.Fatal("rotated secret_file was not picked up")
	}
	envEp, _ := cfg.Lookup("env")
	fromEnv, _ := envEp.Secrets()
	if fromEnv[0].KeyID() != after[0].KeyID() {
		t.Fatal("secret_env did not resolve to the environment's secret")
	}
}

func TestFileReloadsAndKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "endpoints.yaml")
	write := func(url string) {
		t.Helper()
		doc := "endpoints:\n  - {id: acme, url: '" + url + "', events: ['*'], secret: " + validSecret + "}\n"
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("https://old.example.com/")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var reported []error
	f.OnError = func(err error) { reported = append(reported, err) }

	write("https://new.example.com/hooks")
	if e, _ := f.Resolve(context.Background(), "acme"); e.URL.Host != "new.example.com" {
		t.Fatalf("after edit, url = %v", e.URL)
	}
	write("ftp://broken.example.com/")
	if e, _ := f.Resolve(context.Background(), "acme"); e.URL.Host != "new.example.com" {
		t.Fatalf("after a bad edit, url = %v, want the last good one", e.URL)
	}
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), "keeping the last good config") {
		t.Fatalf("reported = %v", reported)
	}
	if _, err := OpenFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("OpenFile of a missing file succeeded")
	}
}

// A URL's query and fragment may hold a customer's token: no error quotes
// them, at load or in the reload error the worker logs.
func TestURLErrorsHoldNoQuery(t *testing.T) {
	doc := func(url string) string {
		return "endpoints:\n  - {id: acme, url: '" + url + "', events: ['*'], secret: " + validSecret + "}\n"
	}
	for _, url := range []string{
		"ftp://hooks.acme.example/mail?token=fake-token-7741",
		"https:///mail?token=fake-token-7741",
		"https://hooks.acme.example/mail?token=fake-token-7741#frag",
		"https://hooks.acme.example/mail#fake-token-7741",
		"https://hooks.acme.example:99999999/mail?token=fake-token-7741",
		"https://hooks.acme.example/%zz?token=fake-token-7741",
		"https://user:fake-token-7741@hooks.acme.example/mail",
	} {
		_, err := Parse([]byte(doc(url)), ".")
		if err == nil || !strings.Contains(err.Error(), "url:") {
			t.Errorf("%s: %v, want a url error", url, err)
			continue
		}
		if strings.Contains(err.Error(), "fake-token-7741") {
			t.Errorf("error quotes the query: %v", err)
		}
	}

	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	os.WriteFile(path, []byte(doc("https://hooks.acme.example/mail")), 0o600)
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var reported error
	f.OnError = func(err error) { reported = err }
	os.WriteFile(path, []byte(doc("gopher://hooks.acme.example/mail?token=fake-token-7741")), 0o600)
	f.Resolve(context.Background(), "acme")
	if reported == nil || strings.Contains(reported.Error(), "fake-token-7741") || !strings.Contains(reported.Error(), "hooks.acme.example/mail?…") {
		t.Fatalf("reload error %v: want the URL shown without its query", reported)
	}
}

func TestHTTPSOnly(t *testing.T) {
	doc := func(url string) []byte {
		return []byte("endpoints:\n  - {id: acme, url: '" + url + "', events: ['*'], secret: " + validSecret + "}\n")
	}
	if _, err := Parse(doc("http://hooks.acme.example/mail?token=fake-token"), "."); err != nil {
		t.Fatalf("without HTTPSOnly, http is allowed: %v", err)
	}
	_, err := Parse(doc("http://hooks.acme.example/mail?token=fake-token"), ".", HTTPSOnly())
	if err == nil || !strings.Contains(err.Error(), `endpoint "acme"`) || !strings.Contains(err.Error(), "url:") ||
		!strings.Contains(err.Error(), "--https-only") {
		t.Fatalf("HTTPSOnly on http: %v, want an error naming the endpoint, url and --https-only", err)
	}
	if strings.Contains(err.Error(), "fake-token") {
		t.Fatalf("error %q quotes the URL", err)
	}
	if _, err := Parse(doc("https://hooks.acme.example/mail"), ".", HTTPSOnly()); err != nil {
		t.Fatalf("HTTPSOnly on https: %v", err)
	}

	// A reload keeps the option: an edit to plain http is refused and the last good config stays.
	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	os.WriteFile(path, doc("https://hooks.acme.example/mail"), 0o600)
	f, err := OpenFile(path, HTTPSOnly())
	if err != nil {
		t.Fatal(err)
	}
	var reported error
	f.OnError = func(err error) { reported = err }
	os.WriteFile(path, doc("http://hooks.acme.example/other-path"), 0o600)
	if e, _ := f.Resolve(context.Background(), "acme"); e.URL.Scheme != "https" || reported == nil || !strings.Contains(reported.Error(), "--https-only") {
		t.Fatalf("after an http edit: url %v, reported %v", e.URL, reported)
	}
}

// FuzzParse: any document is refused with an error or yields endpoints that
// meet every rule Parse promises.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleFile))
	f.Add([]byte("endpoints:\n  - {id: a, url: 'https://a.example.com', events: ['*'], secret: " + validSecret + ", retry_schedule: []}\n"))
	f.Add([]byte("endpoints: [{id: b, url: 'http://[::1]:8080/x', events: [api_mail_log_opened], secret_env: X, timeout: 5m}]\n"))
	f.Add([]byte("endpoints:\n  - id: acme\n    secrte: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "/etc/hookrelay")
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range cfg.Endpoints {
			switch {
			case !idPattern.MatchString(e.ID) || len(e.ID) > maxIDLength || seen[e.ID]:
				t.Fatalf("accepted id %q", e.ID)
			case e.URL == nil || (e.URL.Scheme != "http" && e.URL.Scheme != "https") || e.URL.Hostname() == "" || e.URL.User != nil:
				t.Fatalf("accepted url %v", e.URL)
			case len(e.Events) == 0:
				t.Fatal("accepted no events")
			case e.Timeout <= 0 || e.Timeout > MaxTimeout:
				t.Fatalf("accepted timeout %s", e.Timeout)
			case len(e.RetrySchedule) > MaxRetryAttempts:
				t.Fatalf("accepted %d delays", len(e.RetrySchedule))
			}
			for _, d := range e.RetrySchedule {
				if d <= 0 || d > MaxRetryDelay {
					t.Fatalf("accepted delay %s", d)
				}
			}
			seen[e.ID] = true
		}
		if _, err := Parse(data, "/etc/hookrelay", HTTPSOnly()); err == nil {
			for _, e := range cfg.Endpoints {
				if e.URL.Scheme != "https" {
					t.Fatalf("HTTPSOnly accepted %v", e.URL)
				}
			}
		}
	})
}

// Routing is exact on the account: an event of account X reaches only X's
// enabled endpoints, one without an account only endpoints without one.
func TestRouteIsExactOnTheAccount(t *testing.T) {
	cfg, err := Parse([]byte(`
endpoints:
  - {id: shared, url: 'https://a.example.com', events: ['*'], secret: `+validSecret+`}
  - {id: acme-1, account_id: acme, url: 'https://b.example.com', events: ['*'], secret: `+validSecret+`}
  - {id: acme-2, account_id: acme, description: "CRM (fake)", url: 'https://c.example.com', events: [api_mail_log_opened], secret: `+validSecret+`}
  - {id: acme-off, account_id: acme, url: 'https://d.example.com', events: ['*'], secret: `+validSecret+`, enabled: false}
  - {id: globex-1, account_id: "globex:eu", url: 'https://e.example.com', events: ['*'], secret: `+validSecret+`}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	ids := func(account, name string) []string {
		eps, err := cfg.Route(context.Background(), account, name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range eps {
			out = append(out, e.ID)
		}
		return out
	}
	for _, c := range []struct {
		account, name string
		want          []string
	}{
		{"", "api_mail_log_opened", []string{"shared"}},
		{"acme", "api_mail_log_opened", []string{"acme-1", "acme-2"}},
		{"acme", "api_mail_log_delivered", []string{"acme-1"}},
		{"globex:eu", "api_mail_log_delivered", []string{"globex-1"}},
		{"globex", "api_mail_log_delivered", nil},
		{"ACME", "api_mail_log_delivered", nil},
	} {
		if got := ids(c.account, c.name); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Route(%q, %s) = %v, want %v", c.account, c.name, got, c.want)
		}
	}
	if e, err := cfg.Resolve(context.Background(), "acme-2"); err != nil || e.AccountID != "acme" || e.Description != "CRM (fake)" {
		t.Fatalf("Resolve(acme-2) = %+v, %v", e, err)
	}
	if _, err := cfg.Resolve(context.Background(), "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve(nobody) = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{`account_id: ""`, `account_id: "a b"`, `description: "line one\nline two"`} {
		_, err := Parse([]byte("endpoints:\n  - {id: x, url: 'https://a.example.com', events: ['*'], secret: "+validSecret+", "+bad+"}\n"), ".")
		field := strings.SplitN(bad, ":", 2)[0]
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: %v, want an error naming %s", bad, err, field)
		}
	}
}

func TestCircuitSettings(t *testing.T) {
	cfg, err := Parse([]byte(`
endpoints:
  - {id: dflt, url: 'https://a.example.com', events: ['*'], secret: `+validSecret+`}
  - id: tuned
    url: https://b.example.com
    events: ['*']
    secret: `+validSecret+`
    circuit: {open_after: 5, probe_every: [5s, 10s], drain_per_second: 100, disable_after: 48h, park_limit: 72h}
  - id: partial
    url: https://c.example.com
    events: ['*']
    secret: `+validSecret+`
    circuit: {open_after: 3}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	dflt, _ := cfg.Lookup("dflt")
	if !reflect.DeepEqual(dflt.Circuit, DefaultCircuit()) || dflt.Circuit.OpenAfter != 10 || dflt.Circuit.ParkLimit != 168*time.Hour {
		t.Fatalf("default circuit %+v", dflt.Circuit)
	}
	tuned, _ := cfg.Lookup("tuned")
	want := Circuit{OpenAfter: 5, ProbeEvery: []time.Duration{5 * time.Second, 10 * time.Second}, DrainPerSecond: 100, DisableAfter: 48 * time.Hour, ParkLimit: 72 * time.Hour}
	if !reflect.DeepEqual(tuned.Circuit, want) {
		t.Fatalf("tuned circuit %+v, want %+v", tuned.Circuit, want)
	}
	partial, _ := cfg.Lookup("partial")
	if partial.Circuit.OpenAfter != 3 || partial.Circuit.DrainPerSecond != 10 || len(partial.Circuit.ProbeEvery) != 6 {
		t.Fatalf("partial circuit %+v: unset fields take their defaults", partial.Circuit)
	}
	for _, c := range []struct{ circuit, field string }{
		{"{open_after: 0}", "circuit.open_after"},
		{"{probe_every: []}", "circuit.probe_every"},
		{"{probe_every: [1s, soon]}", "circuit.probe_every[1]"},
		{"{drain_per_second: -1}", "circuit.drain_per_second"},
		{"{disable_after: 0s}", "circuit.disable_after"},
		{"{park_limit: forever}", "circuit.park_limit"},
		{"{open_afterr: 3}", `unknown key "open_afterr"`},
		{"5", "circuit: line"},
	} {
		_, err := Parse([]byte("endpoints:\n  - {id: x, url: 'https://a.example.com', events: ['*'], secret: "+validSecret+", circuit: "+c.circuit+"}\n"), ".")
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("circuit %s: %v, want an error naming %s", c.circuit, err, c.field)
		}
	}
}
