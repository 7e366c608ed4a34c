package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/signing"
	"github.com/hookrelay/hookrelay/webhookverify"
	"github.com/hookrelay/hookrelay/workflows"
)

const (
	currentSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	previousSecret = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
)

var payload = json.RawMessage(`{"id":42,"subject":"Fake subject","time":"2026-01-02T03:04:05Z","to":"someone@recipient.example.com"}`)

// loopbackClient admits the test servers on 127.0.0.1, as --allow-cidr 127.0.0.0/8 does.
func loopbackClient() *http.Client {
	return NewHTTPClient(HTTPOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
}

// runAttempt runs the activity once against url through the activity test environment.
func runAttempt(t *testing.T, endpointsYAML string) workflows.Attempt {
	t.Helper()
	return runAttemptWith(t, loopbackClient(), endpointsYAML)
}

func runAttemptWith(t *testing.T, client *http.Client, endpointsYAML string) workflows.Attempt {
	t.Helper()
	cfg, err := endpoint.Parse([]byte(endpointsYAML), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(New(cfg, client).Attempt)
	val, err := env.ExecuteActivity((&Activities{}).Attempt, workflows.AttemptInput{
		DeliveryID: "acme:evt_1", EndpointID: "acme", Attempt: 3, EventName: "api_mail_log_delivered", Payload: payload,
	})
	if err != nil {
		t.Fatalf("activity error: %v", err)
	}
	var a workflows.Attempt
	if err := val.Get(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

func endpointYAML(url string, extra string) string {
	return fmt.Sprintf("endpoints:\n  - id: acme\n    url: %q\n    events: ['*']\n    secret: %s\n    previous_secrets: [%s]\n    timeout: 2s\n%s", url, currentSecret, previousSecret, extra)
}

func TestAttemptSignsAndPosts(t *testing.T) {
	type seen struct {
		header http.Header
		body   []byte
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	a := runAttempt(t, endpointYAML(srv.URL+"/hook", ""))
	if a.Outcome != workflows.OutcomeDelivered || a.StatusCode != 204 || a.Number != 3 || a.Error != "" {
		t.Fatalf("attempt = %+v", a)
	}
	if len(a.KeyIDs) != 2 {
		t.Fatalf("key ids = %v, want current and previous", a.KeyIDs)
	}
	req := <-got
	want := `{"event_name":"api_mail_log_delivered","payload":` + string(payload) + `}`
	if string(req.body) != want {
		t.Fatalf("body = %s, want %s", req.body, want)
	}
	if req.header.Get("Content-Type") != "application/json" || !strings.HasPrefix(req.header.Get("User-Agent"), "hookrelay/") {
		t.Fatalf("headers = %v", req.header)
	}
	if req.header.Get(signing.HeaderID) != "acme:evt_1" {
		t.Fatalf("webhook-id = %q", req.header.Get(signing.HeaderID))
	}
	for _, s := range []string{currentSecret, previousSecret} {
		v, err := webhookverify.New(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(req.header, req.body); err != nil {
			sec, _ := signing.ParseSecret(s)
			t.Errorf("receiver holding %s cannot verify: %v", sec.KeyID(), err)
		}
	}
	if n := len(strings.Fields(req.header.Get(signing.HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
}

func TestAttemptOutcomes(t *testing.T) {
	var followed atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		io.WriteString(w, strings.Repeat("e", 100<<10))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok?token=hunter2", http.StatusFound)
	})
	mux.HandleFunc("/moved-target", func(w http.ResponseWriter, r *http.Request) { followed.Store(true) })
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(503)
	})
	mux.HandleFunc("/slow-down", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
		w.WriteHeader(429)
	})
	stop := make(chan struct{})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices the client leaving only once the body is read
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(stop)

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + closed.Addr().String() + "/"
	closed.Close()

	tests := []struct {
		name       string
		yaml       string
		outcome    workflows.Outcome
		code       int
		retryAfter int64 // seconds; -1 means "between 85 and 91"
		errHas     string
	}{
		{"2xx", endpointYAML(srv.URL+"/ok", ""), workflows.OutcomeDelivered, 200, 0, ""},
		{"500 keeps 1 KiB of body", endpointYAML(srv.URL+"/error", ""), workflows.OutcomeHTTPError, 500, 0, "500"},
		{"redirect not followed", endpointYAML(srv.URL+"/redirect", ""), workflows.OutcomeRedirect, 302, 0, "not followed"},
		{"410 gone", endpointYAML(srv.URL+"/gone", ""), workflows.OutcomeGone, 410, 0, "410"},
		{"503 Retry-After seconds", endpointYAML(srv.URL+"/busy", ""), workflows.OutcomeHTTPError, 503, 120, ""},
		{"429 Retry-After date", endpointYAML(srv.URL+"/slow-down", ""), workflows.OutcomeHTTPError, 429, -1, ""},
		{"timeout", endpointYAML(srv.URL+"/hang?token=hunter2", "") + "", workflows.OutcomeTimeout, 0, 0, "deadline"},
		{"connection refused", endpointYAML(closedURL+"?token=hunter2", ""), workflows.OutcomeConnectionError, 0, 0, "refused"},
		{"disabled endpoint", endpointYAML(srv.URL+"/ok", "    enabled: false\n"), workflows.OutcomeEndpointMissing, 0, 0, "disabled"},
		{"missing endpoint", strings.Replace(endpointYAML(srv.URL+"/ok", ""), "id: acme", "id: other", 1), workflows.OutcomeEndpointMissing, 0, 0, "not in the endpoints file"},
		{"unset secret env", strings.Replace(strings.Replace(endpointYAML(srv.URL+"/ok", ""), "secret: "+currentSecret, "secret_env: HOOKRELAY_TEST_UNSET", 1), "previous_secrets: ["+previousSecret+"]", "previous_secrets: []", 1), workflows.OutcomeEndpointMissing, 0, 0, "not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := tt.yaml
			if tt.name == "timeout" {
				yaml = strings.Replace(yaml, "timeout: 2s", "timeout: 300ms", 1)
			}
			a := runAttempt(t, yaml)
			if a.Outcome != tt.outcome || a.StatusCode != tt.code {
				t.Fatalf("attempt = %+v, want outcome %s code %d", a, tt.outcome, tt.code)
			}
			switch {
			case tt.retryAfter == -1 && (a.RetryAfterSeconds < 85 || a.RetryAfterSeconds > 91):
				t.Errorf("retry after = %ds, want about 90", a.RetryAfterSeconds)
			case tt.retryAfter >= 0 && a.RetryAfterSeconds != tt.retryAfter:
				t.Errorf("retry after = %ds, want %d", a.RetryAfterSeconds, tt.retryAfter)
			}
			if !strings.Contains(a.Error, tt.errHas) {
				t.Errorf("error %q lacks %q", a.Error, tt.errHas)
			}
			if strings.Contains(a.Error, "hunter2") {
				t.Errorf("error %q leaks the URL's query", a.Error)
			}
		})
	}
	if followed.Load() {
		t.Fatal("a redirect was followed")
	}
}

func TestAttemptKeepsOnlyFirstKiBOfBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		io.WriteString(w, "é"+strings.Repeat("x", 100<<10))
	}))
	defer srv.Close()
	a := runAttempt(t, endpointYAML(srv.URL, ""))
	if len(a.ResponseBody) != 1024 || !strings.HasPrefix(a.ResponseBody, "éxx") {
		t.Fatalf("kept %d bytes: %.20q", len(a.ResponseBody), a.ResponseBody)
	}
}

// staticSource resolves one endpoint, or fails with err.
type staticSource struct {
	ep  endpoint.Endpoint
	err error
}

func (s staticSource) Resolve(context.Context, string) (endpoint.Endpoint, error) { return s.ep, s.err }
func (s staticSource) Route(context.Context, string, string) ([]endpoint.Endpoint, error) {
	return nil, nil
}

// A delivery never crosses accounts: an endpoint that belongs to another
// account than the event gets nothing, and the delivery stops; a deleted
// one stops it too; a registry that does not answer fails the attempt
// itself (retried), and sends nothing.
func TestAttemptRefusesAnotherAccountsEndpoint(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posts.Add(1) }))
	defer srv.Close()
	cfg, err := endpoint.Parse([]byte(endpointYAML(srv.URL, "    account_id: acct-b\n")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := cfg.Lookup("acme")
	for _, c := range []struct {
		name    string
		src     staticSource
		account string
		outcome workflows.Outcome
		failed  bool
	}{
		{"event of another account", staticSource{ep: ep}, "acct-a", workflows.OutcomeAccountMismatch, false},
		{"event without an account", staticSource{ep: ep}, "", workflows.OutcomeAccountMismatch, false},
		{"deleted endpoint", staticSource{err: fmt.Errorf("gone: %w", endpoint.ErrDeleted)}, "acct-b", workflows.OutcomeEndpointDeleted, false},
		{"registry down", staticSource{err: errors.New("connection refused")}, "acct-b", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(New(c.src, loopbackClient()).Attempt)
			val, err := env.ExecuteActivity((&Activities{}).Attempt, workflows.AttemptInput{
				DeliveryID: "acme:evt_1", EndpointID: "acme", AccountID: c.account, Attempt: 1, Body: []byte(`{"event_name":"api_mail_log_opened","payload":{}}`),
			})
			if c.failed {
				if err == nil {
					t.Fatal("the attempt succeeded with the registry down, want an activity error")
				}
				return
			}
			var a workflows.Attempt
			if err != nil || val.Get(&a) != nil || a.Outcome != c.outcome || a.Outcome.Retryable() {
				t.Fatalf("attempt %+v, %v: want %s, not retried", a, err, c.outcome)
			}
		})
	}
	if n := posts.Load(); n != 0 {
		t.Fatalf("the receiver got %d POSTs, want none", n)
	}
	// The same endpoint with the event of its own account is delivered.
	if a := runAttempt(t, endpointYAML(srv.URL, "")); a.Outcome != workflows.OutcomeDelivered || posts.Load() != 1 {
		t.Fatalf("own account: %+v, %d POSTs", a, posts.Load())
	}
}

// An input that did not arrive sealed by the worker's keys (the delivery's,
// as the workflow reports it, or the attempt's own) is signed for no one:
// nothing is POSTed, the attempt ends invalid_input, not retried, and the
// audit line says why.
func TestAttemptRefusesUnsealedInput(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posts.Add(1) }))
	defer srv.Close()
	cfg, err := endpoint.Parse([]byte(endpointYAML(srv.URL, "")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := New(cfg, loopbackClient())

	var logs bytes.Buffer
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a.Attempt)
	val, err := env.ExecuteActivity((&Activities{}).Attempt, workflows.AttemptInput{
		DeliveryID: "acme:forged-1", EndpointID: "acme", Attempt: 1, Body: []byte(`{"event_name":"api_mail_log_opened","payload":{}}`), UnsealedInput: true,
	})
	var rec workflows.Attempt
	if err != nil || val.Get(&rec) != nil || rec.Outcome != workflows.OutcomeInvalidInput || rec.Outcome.Retryable() || len(rec.KeyIDs) != 0 {
		t.Fatalf("attempt %+v, %v: want invalid_input, unsigned, not retried", rec, err)
	}
	if !strings.Contains(logs.String(), `"outcome":"invalid_input"`) || !strings.Contains(logs.String(), `"reason":"the delivery's input did not arrive encrypted`) {
		t.Errorf("audit line lacks the outcome or the reason:\n%s", logs.String())
	}

	// The attempt's own payload unsealed: an attempt scheduled by something polling as a worker.
	in := workflows.AttemptInput{DeliveryID: "acme:forged-2", EndpointID: "acme", Attempt: 1, Body: []byte(`{}`)}
	in.MarkUnsealed()
	rec, ep, err := a.attempt(context.Background(), in)
	if err != nil || ep != nil || rec.Outcome != workflows.OutcomeInvalidInput || !strings.Contains(rec.Error, "the attempt's input") {
		t.Fatalf("attempt %+v, endpoint %v, %v: want invalid_input naming the attempt's input", rec, ep, err)
	}
	if n := posts.Load(); n != 0 {
		t.Fatalf("the receiver got %d POSTs, want none", n)
	}
}
