package activities

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// The attempt's POST is a client span of the attempt's trace holding the
// method, host, port, status and ids: no path, query, header or payload.
// Only an endpoint whose config asks for trace_context gets traceparent, and
// none gets the caller's tracestate (it is the API caller's, not ours to pass on).
func TestAttemptSpanAndTraceparent(t *testing.T) {
	var mu sync.Mutex
	var headers []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		headers = append(headers, r.Header.Clone())
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	url := srv.URL + "/hooks/secret-path?token=fake-query-token"

	for _, traced := range []bool{false, true} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		extra := ""
		if traced {
			extra = "    trace_context: true\n"
		}
		cfg, err := endpoint.Parse([]byte(endpointYAML(url, extra)), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a := New(cfg, loopbackClient())
		a.TracerProvider = tp
		state, err := trace.ParseTraceState("caller=fake-state")
		if err != nil {
			t.Fatal(err)
		}
		remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
			TraceFlags: trace.FlagsSampled, TraceState: state, Remote: true})
		parent, root := tp.Tracer("t").Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "RunActivity:Attempt")
		got, _, err := a.attempt(parent, workflows.AttemptInput{DeliveryID: "acme:evt_1", EndpointID: "acme", Attempt: 1,
			EventName: "api_mail_log_delivered", Payload: payload})
		root.End()
		if err != nil || got.StatusCode != 503 {
			t.Fatalf("attempt: %+v %v", got, err)
		}
		var post sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == "POST" {
				post = s
			}
		}
		if post == nil || post.SpanKind() != trace.SpanKindClient || post.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Fatalf("traced %t: no client span POST under the activity's span: %v", traced, rec.Ended())
		}
		attrs := map[string]string{}
		for _, kv := range post.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
			if v := kv.Value.Emit(); strings.Contains(v, "secret-path") || strings.Contains(v, "token") || strings.Contains(v, "Fake subject") || strings.Contains(v, "recipient") {
				t.Errorf("attribute %s = %q holds the path, query or payload", kv.Key, v)
			}
		}
		if attrs["server.address"] != "127.0.0.1" || attrs["server.port"] != srv.URL[strings.LastIndex(srv.URL, ":")+1:] ||
			attrs["http.response.status_code"] != "503" || attrs["hookrelay.attempt.outcome"] != "http_error" || attrs["hookrelay.delivery.id"] != "acme:evt_1" {
			t.Errorf("attributes %v", attrs)
		}
		if post.Status().Code != codes.Error || post.Status().Description != "http_error" {
			t.Errorf("status %+v", post.Status())
		}
		mu.Lock()
		h := headers[len(headers)-1]
		mu.Unlock()
		tp2 := h.Get("traceparent")
		if ts := h.Get("tracestate"); ts != "" {
			t.Errorf("traced %t: the endpoint got the caller's tracestate %q", traced, ts)
		}
		switch {
		case !traced && tp2 != "":
			t.Errorf("an endpoint without trace_context got traceparent %q", tp2)
		case traced && tp2 != "00-"+post.SpanContext().TraceID().String()+"-"+post.SpanContext().SpanID().String()+"-01":
			t.Errorf("traceparent %q, want the POST span's %s", tp2, post.SpanContext().SpanID())
		}
	}
}
