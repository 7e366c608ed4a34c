package httpapi

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/workflows"
)

// Each request is a server span named by its route pattern, continuing the
// caller's traceparent, with no raw path, query or header in it; the
// publish runs inside it; probes record none.
func TestRequestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var publishedIn trace.SpanContext
	f := &fakeDeliveries{
		publish: func(ctx context.Context, ev event.Event) ([]deliveries.Started, error) {
			publishedIn = trace.SpanContextFromContext(ctx)
			return []deliveries.Started{{DeliveryID: "crm:" + ev.ID, EndpointID: "crm", EventID: ev.ID}}, nil
		},
		status: func(_ context.Context, id string) (workflows.DeliveryState, error) {
			return workflows.DeliveryState{DeliveryID: id, Status: workflows.StatusDelivered, Attempts: []workflows.Attempt{}}, nil
		},
	}
	h := newTestServer(t, f, func(c *Config) { c.TracerProvider = tp }).Handler()
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	body := `{"event_name":"api_mail_log_delivered","event_id":"evt-span","payload":{"id":7,"time":"2026-04-18T20:27:25Z","subject":"Fake subject","to":"patient@recipient.example.com"}}`
	if w := do(t, h, "POST", "/v1/events?fake-query=1", body, "traceparent", caller); w.Code != 202 {
		t.Fatalf("POST /v1/events: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/v1/deliveries/crm:evt-span?verbose=1", ""); w.Code != 200 {
		t.Fatalf("GET delivery: %d %s", w.Code, w.Body)
	}
	do(t, h, "GET", "/healthz", "")

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans %v, want one per API request and none for the probe", len(spans), spans)
	}
	post, get := spans[0], spans[1]
	if post.Name() != "POST /v1/events" || get.Name() != "GET /v1/deliveries/{delivery_id}" || post.SpanKind() != trace.SpanKindServer {
		t.Fatalf("span names %q, %q", post.Name(), get.Name())
	}
	if post.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || post.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("the POST span does not continue the caller's trace: %s parent %s", post.SpanContext().TraceID(), post.Parent().SpanID())
	}
	if publishedIn.SpanID() != post.SpanContext().SpanID() {
		t.Fatal("Publish did not run inside the request's span")
	}
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); strings.Contains(v, "fake-query") || strings.Contains(v, "evt-span") || strings.Contains(v, "verbose") ||
				strings.Contains(v, "Fake subject") || strings.Contains(v, "recipient") || strings.Contains(v, testToken) {
				t.Errorf("%s: attribute %s = %q", s.Name(), kv.Key, v)
			}
		}
	}
}

// A caller without the token creates no span and cannot force sampling:
// its traceparent's sampled flag is read only after authentication.
func TestNoSpanBeforeAuthentication(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	f := &fakeDeliveries{
		status: func(_ context.Context, id string) (workflows.DeliveryState, error) {
			return workflows.DeliveryState{DeliveryID: id, Status: workflows.StatusDelivered, Attempts: []workflows.Attempt{}}, nil
		},
	}
	h := newTestServer(t, f, func(c *Config) { c.TracerProvider = tp }).Handler()
	const sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, auth := range []string{"", "Bearer wrong-token-of-a-stranger"} {
		if w := do(t, h, "GET", "/v1/deliveries/crm:evt-1", "", "Authorization", auth, "traceparent", sampled); w.Code != 401 {
			t.Fatalf("auth %q: %d", auth, w.Code)
		}
	}
	if w := do(t, h, "GET", "/no/such/path", "", "Authorization", "", "traceparent", sampled); w.Code != 404 {
		t.Fatalf("unmatched path: %d", w.Code)
	}
	if spans := rec.Ended(); len(spans) != 0 {
		t.Fatalf("unauthenticated requests made %d spans: %v", len(spans), spans)
	}
	if w := do(t, h, "GET", "/v1/deliveries/crm:evt-1", "", "traceparent", sampled); w.Code != 200 {
		t.Fatalf("authenticated: %d %s", w.Code, w.Body)
	}
	if spans := rec.Ended(); len(spans) != 1 || spans[0].Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("an authenticated request continues the caller's sampled trace: %v", spans)
	}
}
