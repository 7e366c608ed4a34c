package httpapi

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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/openapicheck"
	"github.com/hookrelay/hookrelay/workflows"
)

// These unit tests use a fake Deliveries to reach answers a real Temporal
// gives only under failure; tests/ingest_test.go runs the same API on a real
// dev server with the starter binary.

const testToken = "test-token-0123456789abcdef"

// deliveryFailures are the delivery ids the fakes fail, each with the error
// deliveries gives for it.
var deliveryFailures = map[string]error{
	"crm:done":      fmt.Errorf("%w (delivered)", deliveries.ErrFinished),
	"crm:missing":   deliveries.ErrNotFound,
	"crm:no-worker": deliveries.ErrNoWorker,
	"crm:down":      deliveries.ErrUnavailable,
	"crm:plaintext": deliveries.ErrPlaintextInput,
	"crm:limited":   &deliveries.OperatorLimitError{DeliveryID: "crm:limited", RetryAfter: 41*time.Minute + 3*time.Second},
}

// deliveryFailure is the error a fake returns for delivery id, wrapped as
// deliveries wraps it; nil for an id not in deliveryFailures.
func deliveryFailure(id string) error {
	err, ok := deliveryFailures[id]
	if !ok {
		return nil
	}
	return fmt.Errorf("delivery %s: %w", id, err)
}

// fakeDeliveries publishes to endpoints "crm" and "billing" unless publish is set.
type fakeDeliveries struct {
	mu        sync.Mutex
	published []string // event ids
	publish   func(ctx context.Context, ev event.Event) ([]deliveries.Started, error)
	status    func(ctx context.Context, id string) (workflows.DeliveryState, error)
	cancel    func(ctx context.Context, id, reason string) (workflows.DeliveryState, error)
	resend    func(ctx context.Context, id string) (deliveries.Started, error)
	ready     func(ctx context.Context) error
	// accounts are the deliveries' accounts; any other delivery has none.
	accounts map[string]string
	// calls lists "method id" of every call that steers a delivery.
	calls []string
}

func (f *fakeDeliveries) called(method, id string) {
	f.mu.Lock()
	f.calls = append(f.calls, method+" "+id)
	f.mu.Unlock()
}

func (f *fakeDeliveries) Account(ctx context.Context, id string) (string, error) {
	if err := deliveryFailure(id); errors.Is(err, deliveries.ErrNotFound) {
		return "", err
	}
	return f.accounts[id], nil
}

func (f *fakeDeliveries) RetryNow(ctx context.Context, id string) (workflows.DeliveryState, error) {
	f.called("retry-now", id)
	if err := deliveryFailure(id); err != nil {
		return workflows.DeliveryState{}, err
	}
	return workflows.DeliveryState{DeliveryID: id, Status: workflows.StatusRetrying, Attempts: []workflows.Attempt{}}, nil
}

func (f *fakeDeliveries) Cancel(ctx context.Context, id, reason string) (workflows.DeliveryState, error) {
	f.called("cancel", id)
	if f.cancel != nil {
		return f.cancel(ctx, id, reason)
	}
	return workflows.DeliveryState{DeliveryID: id, Status: workflows.StatusCanceled, Attempts: []workflows.Attempt{},
		Actions: []workflows.Action{{Name: workflows.CancelSignal, Reason: reason}}}, nil
}

func (f *fakeDeliveries) Resend(ctx context.Context, id string) (deliveries.Started, error) {
	f.called("resend", id)
	if f.resend != nil {
		return f.resend(ctx, id)
	}
	if err := deliveryFailure(id); err != nil {
		return deliveries.Started{}, err
	}
	ep, ev, _ := workflows.ParseWorkflowID(id)
	return deliveries.Started{DeliveryID: id, RunID: "run-2", EndpointID: ep, EventID: ev}, nil
}

func (f *fakeDeliveries) Publish(ctx context.Context, ev event.Event) ([]deliveries.Started, error) {
	f.mu.Lock()
	f.published = append(f.published, ev.ID)
	f.mu.Unlock()
	if f.publish != nil {
		return f.publish(ctx, ev)
	}
	var out []deliveries.Started
	for _, ep := range []string{"crm", "billing"} {
		out = append(out, deliveries.Started{DeliveryID: workflows.DeliveryID(ep, ev.ID), RunID: "run-1", EndpointID: ep, EventID: ev.ID})
	}
	return out, nil
}

func (f *fakeDeliveries) Status(ctx context.Context, id string) (workflows.DeliveryState, error) {
	if f.status != nil {
		return f.status(ctx, id)
	}
	return workflows.DeliveryState{DeliveryID: id, Status: workflows.StatusDelivered, Attempts: []workflows.Attempt{}}, nil
}

func (f *fakeDeliveries) Ready(ctx context.Context) error {
	if f.ready != nil {
		return f.ready(ctx)
	}
	return nil
}

func (f *fakeDeliveries) publishedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.published...)
}

func newTestServer(t *testing.T, f *fakeDeliveries, edit func(*Config)) *Server {
	t.Helper()
	cfg := Config{Deliveries: f, Token: testToken}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Every exchange of every test is held to the OpenAPI document.
	s.handler = openapicheck.New(t, openAPIYAML, openapicheck.Options{NoAuth: cfg.NoAuth}).Handler(s.handler)
	return s
}

func sampleEvent(mailLogID int) string {
	return fmt.Sprintf(`{"event_name":"api_mail_log_delivered","payload":{"id":%d,"time":"2026-04-18T20:27:25.379Z","subject":"Fake subject","to":"patient@recipient.example.com"}}`, mailLogID)
}

// do sends one request to the handler, authenticated unless headers say otherwise.
func do(t *testing.T, h http.Handler, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+testToken)
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			r.Header.Del(headers[i])
		} else {
			r.Header.Set(headers[i], headers[i+1])
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, w.Body)
	}
	var v T
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	return v
}

func TestConfigValidate(t *testing.T) {
	f := &fakeDeliveries{}
	tests := []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"token", Config{Deliveries: f, Token: testToken}, ""},
		{"no auth", Config{Deliveries: f, NoAuth: true}, ""},
		{"nothing", Config{Deliveries: f}, "no API token"},
		{"both", Config{Deliveries: f, Token: testToken, NoAuth: true}, "both"},
		{"short token", Config{Deliveries: f, Token: "short"}, "at least 16"},
		{"two tokens", Config{Deliveries: f, Token: testToken, SecondToken: secondToken}, ""},
		{"short second token", Config{Deliveries: f, Token: testToken, SecondToken: "short"}, "second API token is 5"},
		{"same token twice", Config{Deliveries: f, Token: testToken, SecondToken: testToken}, "first one again"},
		{"second token without auth", Config{Deliveries: f, NoAuth: true, SecondToken: secondToken}, "second token"},
		{"token shaped as a key", Config{Deliveries: f, Token: "hrk_0123456789abcdef"}, "hrk_"},
		{"negative in flight", Config{Deliveries: f, Token: testToken, MaxInFlight: -1}, "max in flight"},
		{"negative timeout", Config{Deliveries: f, Token: testToken, RequestTimeout: -time.Second}, "request timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
}

// The request rules: each refusal's status and field, and no Publish call.
func TestRequestRules(t *testing.T) {
	f := &fakeDeliveries{}
	h := newTestServer(t, f, nil).Handler()
	valid := sampleEvent(1)
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		field                    string
	}{
		{"GET events", "GET", "/v1/events", "", nil, 405, ""},
		{"no token", "POST", "/v1/events", valid, []string{"Authorization", ""}, 401, "Authorization"},
		{"wrong token", "POST", "/v1/events", valid, []string{"Authorization", "Bearer " + testToken + "x"}, 401, "Authorization"},
		{"token as basic auth", "POST", "/v1/events", valid, []string{"Authorization", "Basic " + testToken}, 401, "Authorization"},
		{"no content type", "POST", "/v1/events", valid, []string{"Content-Type", ""}, 415, "Content-Type"},
		{"text/plain", "POST", "/v1/events", valid, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"latin1", "POST", "/v1/events", valid, []string{"Content-Type", "application/json; charset=iso-8859-1"}, 415, "Content-Type"},
		{"gzip", "POST", "/v1/events", valid, []string{"Content-Encoding", "gzip"}, 415, "Content-Encoding"},
		{"over 256 KiB", "POST", "/v1/events", strings.Replace(valid, "Fake subject", strings.Repeat("x", MaxRequestBytes), 1), nil, 413, "body"},
		{"empty", "POST", "/v1/events", "", nil, 400, "body"},
		{"truncated JSON", "POST", "/v1/events", valid[:40], nil, 400, "body"},
		{"two values", "POST", "/v1/events", valid + valid, nil, 400, "body"},
		{"array", "POST", "/v1/events", "[" + valid + "]", nil, 422, "body"},
		{"unknown event", "POST", "/v1/events", strings.Replace(valid, "delivered", "clicked", 1), nil, 422, "event_name"},
		{"unknown field", "POST", "/v1/events", strings.Replace(valid, `{"event_name"`, `{"colour":"red","event_name"`, 1), nil, 422, "colour"},
		{"batch of 0", "POST", "/v1/events", `{"events":[]}`, nil, 422, "events"},
		{"batch of 101", "POST", "/v1/events", `{"events":[` + strings.TrimSuffix(strings.Repeat(sampleEvent(1)+",", 101), ",") + `]}`, nil, 422, "events"},
		{"events not an array", "POST", "/v1/events", `{"events":{}}`, nil, 422, "events"},
		{"batch with an extra field", "POST", "/v1/events", `{"events":[` + valid + `],"event_name":"api_mail_log_opened"}`, nil, 422, "event_name"},
		{"batch with a bad event", "POST", "/v1/events", `{"events":[` + valid + `,{"event_name":"api_mail_log_opened","payload":{"time":"2026-04-18T20:27:25.379Z"}}]}`, nil, 422, "events[1].payload.id"},
		{"duplicate top-level key", "POST", "/v1/events", strings.Replace(valid, `{"event_name"`, `{"event_name":"api_mail_log_opened","event_name"`, 1), nil, 422, "event_name"},
		{"duplicate payload key", "POST", "/v1/events", strings.Replace(valid, `"id":1,`, `"id":1,"id":2,`, 1), nil, 422, "payload.id"},
		{"duplicate key in a batch", "POST", "/v1/events", `{"events":[` + valid + "," + strings.Replace(valid, `"to":`, `"to":"x","to":`, 1) + `]}`, nil, 422, "events[1].payload.to"},
		{"duplicate events key", "POST", "/v1/events", `{"events":[` + valid + `],"events":[]}`, nil, 422, "events"},
		{"invalid UTF-8", "POST", "/v1/events", strings.Replace(valid, "Fake subject", "Fake \xff\xfe subject", 1), nil, 400, "body"},
		{"invalid UTF-8 in a batch", "POST", "/v1/events", `{"events":[` + strings.Replace(valid, "Fake subject", "\xc3\x28", 1) + `]}`, nil, 400, "body"},
		{"malformed delivery id", "GET", "/v1/deliveries/no-colon", "", nil, 400, "delivery_id"},
		{"delete delivery", "DELETE", "/v1/deliveries/crm:evt_1", "", nil, 405, ""},
		{"status without token", "GET", "/v1/deliveries/crm:evt_1", "", []string{"Authorization", ""}, 401, "Authorization"},
		{"unknown path", "GET", "/v2/events", "", nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, h, tt.method, tt.path, tt.body, tt.headers...)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			e := decode[apiError](t, w)
			if e.Error == "" || e.Field != tt.field {
				t.Fatalf("error %+v, want field %q", e, tt.field)
			}
			switch tt.status {
			case 401:
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case 405:
				if w.Header().Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			}
		})
	}
	if ids := f.publishedIDs(); len(ids) != 0 {
		t.Fatalf("refused requests published %v", ids)
	}
}

func TestBatchListsEveryInvalidEvent(t *testing.T) {
	f := &fakeDeliveries{}
	h := newTestServer(t, f, nil).Handler()
	noTime := `{"event_name":"api_mail_log_opened","payload":{"id":7}}`
	body := `{"events":[` + sampleEvent(1) + "," + noTime + "," + sampleEvent(2) + `,{"event_name":"nope","payload":{}}]}`
	w := do(t, h, "POST", "/v1/events", body)
	if w.Code != 422 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	e := decode[apiError](t, w)
	want := []eventError{{Index: 1, Field: "payload.time"}, {Index: 3, Field: "event_name"}}
	if e.Field != "events[1].payload.time" || len(e.Events) != len(want) {
		t.Fatalf("error %+v", e)
	}
	for i, w := range want {
		if e.Events[i].Index != w.Index || e.Events[i].Field != w.Field || e.Events[i].Error == "" {
			t.Errorf("events[%d] = %+v, want index %d field %s", i, e.Events[i], w.Index, w.Field)
		}
	}
	if ids := f.publishedIDs(); len(ids) != 0 {
		t.Fatalf("a refused batch published %v", ids)
	}
}

func TestAcceptedShapes(t *testing.T) {
	f := &fakeDeliveries{}
	h := newTestServer(t, f, nil).Handler()

	w := do(t, h, "POST", "/v1/events", sampleEvent(1), "Content-Type", "application/json; charset=UTF-8")
	if w.Code != 202 {
		t.Fatalf("single: status %d: %s", w.Code, w.Body)
	}
	single := decode[accepted](t, w) // unknown fields (run_id) would fail here
	if len(single.Deliveries) != 2 || single.Deliveries[0].EndpointID != "crm" || single.Deliveries[1].DeliveryID != "billing:"+single.Deliveries[1].EventID {
		t.Fatalf("single: %+v", single)
	}

	w = do(t, h, "POST", "/v1/events", `{"events":[`+sampleEvent(2)+","+sampleEvent(3)+`]}`)
	if w.Code != 202 {
		t.Fatalf("batch: status %d: %s", w.Code, w.Body)
	}
	batch := decode[batchAccepted](t, w)
	ids := f.publishedIDs()
	if len(batch.Events) != 2 || len(ids) != 3 || batch.Events[0].EventID != ids[1] || batch.Events[1].EventID != ids[2] ||
		len(batch.Events[1].Deliveries) != 2 || batch.Events[1].Deliveries[0].EventID != ids[2] {
		t.Fatalf("batch %+v, published %v", batch, ids)
	}

	// No subscriber: accepted, nothing to deliver, an empty list rather than null.
	f.publish = func(context.Context, event.Event) ([]deliveries.Started, error) { return nil, nil }
	w = do(t, h, "POST", "/v1/events", sampleEvent(4))
	if w.Code != 202 || strings.TrimSpace(w.Body.String()) != `{"deliveries":[]}` {
		t.Fatalf("no subscriber: %d %s", w.Code, w.Body)
	}
}

// When Temporal fails, the answer is 503 with Retry-After (or 500 for a
// failure a retry will not cure), never a 202.
func TestTemporalFailures(t *testing.T) {
	tests := []struct {
		name       string
		publish    func(ctx context.Context, ev event.Event) ([]deliveries.Started, error)
		status     int
		retryAfter string
	}{
		{"unavailable", func(context.Context, event.Event) ([]deliveries.Started, error) {
			return nil, fmt.Errorf("start delivery crm:x: %w: connection refused", deliveries.ErrUnavailable)
		}, 503, "5"},
		{"slower than the request timeout", func(ctx context.Context, ev event.Event) ([]deliveries.Started, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}, 503, "5"},
		{"fails after the first delivery", func(ctx context.Context, ev event.Event) ([]deliveries.Started, error) {
			return []deliveries.Started{{DeliveryID: "crm:" + ev.ID}}, fmt.Errorf("%w: deadline", deliveries.ErrUnavailable)
		}, 503, "5"},
		{"another failure", func(context.Context, event.Event) ([]deliveries.Started, error) {
			return nil, errors.New("namespace not found")
		}, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDeliveries{publish: tt.publish}
			h := newTestServer(t, f, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond }).Handler()
			for _, body := range []string{sampleEvent(1), `{"events":[` + sampleEvent(1) + `]}`} {
				w := do(t, h, "POST", "/v1/events", body)
				if w.Code != tt.status || w.Header().Get("Retry-After") != tt.retryAfter {
					t.Fatalf("status %d Retry-After %q, want %d %q; body %s", w.Code, w.Header().Get("Retry-After"), tt.status, tt.retryAfter, w.Body)
				}
				if e := decode[apiError](t, w); e.Error == "" {
					t.Fatal("no error message")
				}
			}
		})
	}
}

// Once a start found Temporal down, requests are refused at once while a
// health check fails, rather than each waiting out the request timeout.
func TestOutageRefusesAtOnce(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	f := &fakeDeliveries{}
	f.publish = func(ctx context.Context, ev event.Event) ([]deliveries.Started, error) {
		if down.Load() {
			<-ctx.Done() // as the SDK does: retry until the deadline
			return nil, fmt.Errorf("%w: %w", deliveries.ErrUnavailable, ctx.Err())
		}
		return []deliveries.Started{{DeliveryID: "crm:" + ev.ID, EndpointID: "crm", EventID: ev.ID}}, nil
	}
	f.ready = func(context.Context) error {
		if down.Load() {
			return deliveries.ErrUnavailable
		}
		return nil
	}
	h := newTestServer(t, f, func(c *Config) { c.RequestTimeout = 2 * time.Second }).Handler()

	// The first request waits out its deadline (the client's, here).
	r := httptest.NewRequest("POST", "/v1/events", strings.NewReader(sampleEvent(1)))
	r.Header.Set("Authorization", "Bearer "+testToken)
	r.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
	defer cancel()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r.WithContext(ctx))
	if w.Code != 503 {
		t.Fatalf("first request during the outage: %d", w.Code)
	}
	published := len(f.publishedIDs())
	if w := do(t, h, "POST", "/v1/events", sampleEvent(2)); w.Code != 503 || w.Header().Get("Retry-After") != "5" {
		t.Fatalf("second request during the outage: %d, want an immediate 503", w.Code)
	}
	if n := len(f.publishedIDs()); n != published {
		t.Fatalf("Publish called during a known outage (%d calls, want %d)", n, published)
	}
	down.Store(false)
	if w := do(t, h, "POST", "/v1/events", sampleEvent(2)); w.Code != 202 {
		t.Fatalf("after the outage: %d %s", w.Code, w.Body)
	}
}

// Beyond MaxInFlight a request is refused at once instead of waiting.
func TestBusyRefusesRatherThanQueues(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	f := &fakeDeliveries{}
	f.publish = func(ctx context.Context, ev event.Event) ([]deliveries.Started, error) {
		entered <- struct{}{}
		<-release
		return []deliveries.Started{{DeliveryID: "crm:" + ev.ID, EndpointID: "crm", EventID: ev.ID}}, nil
	}
	h := newTestServer(t, f, func(c *Config) { c.MaxInFlight = 1 }).Handler()

	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- do(t, h, "POST", "/v1/events", sampleEvent(1)) }()
	<-entered
	w := do(t, h, "POST", "/v1/events", sampleEvent(2))
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("second request: %d Retry-After %q, want 503 and 1", w.Code, w.Header().Get("Retry-After"))
	}
	if w := do(t, h, "GET", "/v1/deliveries/crm:evt_1", ""); w.Code != 503 {
		t.Fatalf("status while full: %d, want 503", w.Code)
	}
	// Invalid input is still told apart from load.
	if w := do(t, h, "POST", "/v1/events", "{"); w.Code != 400 {
		t.Fatalf("bad JSON while full: %d, want 400", w.Code)
	}
	close(release)
	if w := <-first; w.Code != 202 {
		t.Fatalf("first request: %d %s", w.Code, w.Body)
	}
	go func() { <-entered }()
	if w := do(t, h, "POST", "/v1/events", sampleEvent(2)); w.Code != 202 {
		t.Fatalf("after the slot freed: %d %s", w.Code, w.Body)
	}
}

func TestDeliveryStatus(t *testing.T) {
	f := &fakeDeliveries{}
	h := newTestServer(t, f, nil).Handler()
	f.status = func(ctx context.Context, id string) (workflows.DeliveryState, error) {
		if err := deliveryFailure(id); err != nil {
			return workflows.DeliveryState{}, err
		}
		return workflows.DeliveryState{DeliveryID: id, EndpointID: "crm", Status: workflows.StatusRetrying, Attempts: []workflows.Attempt{{Number: 1, Outcome: workflows.OutcomeHTTPError, StatusCode: 500}}}, nil
	}
	w := do(t, h, "GET", "/v1/deliveries/crm:evt_1", "")
	st := decode[workflows.DeliveryState](t, w)
	if w.Code != 200 || st.DeliveryID != "crm:evt_1" || st.Status != workflows.StatusRetrying || len(st.Attempts) != 1 {
		t.Fatalf("%d %+v", w.Code, st)
	}
	for id, want := range map[string]int{"crm:missing": 404, "crm:no-worker": 503, "crm:down": 503} {
		if w := do(t, h, "GET", "/v1/deliveries/"+id, ""); w.Code != want {
			t.Errorf("%s: %d, want %d: %s", id, w.Code, want, w.Body)
		}
	}
}

func TestProbes(t *testing.T) {
	f := &fakeDeliveries{}
	h := newTestServer(t, f, nil).Handler()
	// Probes need no token.
	if w := do(t, h, "GET", "/healthz", "", "Authorization", ""); w.Code != 200 {
		t.Fatalf("healthz %d", w.Code)
	}
	if w := do(t, h, "GET", "/readyz", "", "Authorization", ""); w.Code != 200 {
		t.Fatalf("readyz %d", w.Code)
	}
	f.ready = func(context.Context) error { return deliveries.ErrUnavailable }
	if w := do(t, h, "GET", "/readyz", ""); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("readyz with Temporal down: %d", w.Code)
	}
	if w := do(t, h, "GET", "/healthz", ""); w.Code != 200 {
		t.Fatalf("healthz with Temporal down: %d, want 200 (the process is up)", w.Code)
	}
}

func TestNoAuthServesWithoutToken(t *testing.T) {
	h := newTestServer(t, &fakeDeliveries{}, func(c *Config) { c.Token, c.NoAuth = "", true }).Handler()
	if w := do(t, h, "POST", "/v1/events", sampleEvent(1), "Authorization", ""); w.Code != 202 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

// Logs carry ids, counts and field names, never a body, payload value or token.
func TestLogsHoldNoSecretsOrPayloads(t *testing.T) {
	var logs bytes.Buffer
	f := &fakeDeliveries{}
	h := newTestServer(t, f, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}).Handler()
	do(t, h, "POST", "/v1/events", sampleEvent(1))
	do(t, h, "POST", "/v1/events", strings.Replace(sampleEvent(1), `"id":1`, `"id":"patient@recipient.example.com"`, 1))
	do(t, h, "POST", "/v1/events", sampleEvent(1), "Authorization", "Bearer wrong-token-patient@recipient.example.com")
	out := logs.String()
	for _, secret := range []string{testToken, "patient@recipient.example.com", "Fake subject", "wrong-token"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
	if strings.Count(out, `"msg":"request"`) != 3 || !strings.Contains(out, `"field":"payload.id"`) || !strings.Contains(out, `"started":2`) {
		t.Errorf("want one line per request with its outcome:\n%s", out)
	}
}

// A key the client chose (unknown, or repeated) is named in the answer but
// logged as a fixed word: key names are the client's data.
func TestLogsNameNoClientChosenKey(t *testing.T) {
	var logs bytes.Buffer
	h := newTestServer(t, &fakeDeliveries{}, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}).Handler()
	const key = "patient-7741-chart"
	for _, body := range []string{
		strings.Replace(sampleEvent(1), `{"event_name"`, `{"`+key+`":1,"event_name"`, 1),
		strings.Replace(sampleEvent(1), `"to":`, `"`+key+`":1,"`+key+`":2,"to":`, 1),
		`{"events":[` + sampleEvent(1) + `],"` + key + `":1}`,
	} {
		w := do(t, h, "POST", "/v1/events", body)
		if w.Code != 422 || !strings.Contains(w.Body.String(), key) {
			t.Errorf("status %d, body %s: want a 422 naming the key", w.Code, w.Body)
		}
	}
	out := logs.String()
	if strings.Contains(out, key) || strings.Count(out, `"field":"unknown"`) != 3 {
		t.Errorf("logs name the client's key, or lack the fixed word:\n%s", out)
	}
}

// SIGTERM (ctx done): no new connections, but a request in flight finishes
// and gets its 202.
func TestServeFinishesInFlightRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	f := &fakeDeliveries{}
	f.publish = func(ctx context.Context, ev event.Event) ([]deliveries.Started, error) {
		close(entered)
		<-release
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return []deliveries.Started{{DeliveryID: "crm:" + ev.ID, EndpointID: "crm", EventID: ev.ID}}, nil
	}
	s := newTestServer(t, f, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	url := "http://" + ln.Addr().String()
	type result struct {
		code int
		body string
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/v1/events", strings.NewReader(sampleEvent(1)))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inFlight <- result{code: resp.StatusCode, body: string(b)}
	}()
	<-entered
	stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break // the listener is closed
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	close(release)
	r := <-inFlight
	if r.err != nil || r.code != 202 {
		t.Fatalf("in-flight request: %d %s %v", r.code, r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
