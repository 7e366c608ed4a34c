package tests

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/httpapi"
	"github.com/hookrelay/hookrelay/internal/billable"
	"github.com/hookrelay/hookrelay/internal/deliveryworker"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// phiAndSecrets are what no span may hold: the test event's subject, from
// and to (sampleEvent), the endpoints' URL paths and queries, and the
// signing secret.
var phiAndSecrets = []string{"Fake subject", "sender.example.com", "recipient.example.com", "patient", "clinic@",
	"fake-path", "fake-query-token", "token=", testSecret, "whsec_"}

// One event through the HTTP API, hosted in this process with a worker and
// an in-memory span recorder, is one trace: the ingest request's span, the
// publish, each delivery's StartWorkflow and RunWorkflow, the attempt (a
// local activity) and its POST, linked parent to child. No span holds PHI,
// a URL path or query, or a secret. Only the endpoint whose config asks for
// trace_context gets traceparent, naming that trace and the POST's span;
// the header the interceptor adds to the start costs no billable action.
func TestOneTraceFromIngestToPOST(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	plain := newReceiver(t, always(http.StatusOK))
	traced := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t,
		testenv.Endpoint{ID: "trace-plain", URL: plain.URL + "/hooks/fake-path?token=fake-query-token"},
		testenv.Endpoint{ID: "trace-ctx", URL: traced.URL + "/hooks/fake-path?token=fake-query-token", Extra: "    trace_context: true\n"})
	api := tracedServer(t, tp, eps)

	resp, err := http.Post(api.URL+"/v1/events", "application/json", strings.NewReader(sampleEvent(event.Delivered, 7301)))
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct {
		Deliveries []struct {
			DeliveryID string `json:"delivery_id"`
			EndpointID string `json:"endpoint_id"`
		} `json:"deliveries"`
	}
	json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(accepted.Deliveries) != 2 {
		t.Fatalf("POST /v1/events: %d %+v", resp.StatusCode, accepted)
	}
	for _, d := range accepted.Deliveries {
		if st := result(t, d.DeliveryID); st.Status != workflows.StatusDelivered {
			t.Fatalf("%s: %s", d.DeliveryID, st.Status)
		}
	}
	// Both POST spans end before their attempts report, so before the
	// deliveries close; wait for the workflow spans too.
	var spans []sdktrace.ReadOnlySpan
	testenv.Eventually(t, 30*time.Second, "two POST and two RunWorkflow spans", func() bool {
		spans = rec.Ended()
		return len(named(spans, "POST")) == 2 && len(named(spans, "RunWorkflow:"+workflows.DeliveryWorkflowName)) == 2
	})

	ingest := named(spans, "POST /v1/events")
	if len(ingest) != 1 || ingest[0].SpanKind() != trace.SpanKindServer {
		t.Fatalf("ingest spans %v", ingest)
	}
	traceID := ingest[0].SpanContext().TraceID()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	posts := map[string]sdktrace.ReadOnlySpan{} // by endpoint id
	for _, post := range named(spans, "POST") {
		var endpointID string
		for _, kv := range post.Attributes() {
			if kv.Key == "hookrelay.endpoint.id" {
				endpointID = kv.Value.AsString()
			}
		}
		posts[endpointID] = post
		// Walk up from the POST to the ingest request, parent by parent.
		var chain []string
		for s := post; ; {
			if s.SpanContext().TraceID() != traceID {
				t.Fatalf("%s: span %s is in trace %s, not the ingest's %s", endpointID, s.Name(), s.SpanContext().TraceID(), traceID)
			}
			chain = append(chain, s.Name())
			parent, ok := byID[s.Parent().SpanID()]
			if !ok {
				break
			}
			s = parent
		}
		want := []string{"POST", "RunActivity:" + workflows.AttemptActivityName, "StartActivity:" + workflows.AttemptActivityName,
			"RunWorkflow:" + workflows.DeliveryWorkflowName, "StartWorkflow:" + workflows.DeliveryWorkflowName,
			"Publish " + event.Delivered, "POST /v1/events"}
		if strings.Join(chain, " < ") != strings.Join(want, " < ") {
			t.Errorf("%s: from the POST up: %s\nwant %s", endpointID, strings.Join(chain, " < "), strings.Join(want, " < "))
		}
	}
	if len(posts) != 2 || posts["trace-plain"] == nil || posts["trace-ctx"] == nil {
		t.Fatalf("POST spans by endpoint: %v", posts)
	}

	for _, s := range spans {
		texts := []string{s.Name(), s.Status().Description}
		for _, kv := range s.Attributes() {
			texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, ev := range s.Events() {
			texts = append(texts, ev.Name)
			for _, kv := range ev.Attributes {
				texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
			}
		}
		for _, text := range texts {
			for _, bad := range phiAndSecrets {
				if strings.Contains(text, bad) {
					t.Errorf("span %q holds %q: %q", s.Name(), bad, text)
				}
			}
		}
	}

	if h := plain.Requests()[0].Header; h.Get("traceparent") != "" || h.Get("tracestate") != "" {
		t.Errorf("the endpoint without trace_context got traceparent %q", h.Get("traceparent"))
	}
	post := posts["trace-ctx"].SpanContext()
	if got, want := traced.Requests()[0].Header.Get("traceparent"), "00-"+post.TraceID().String()+"-"+post.SpanID().String()+"-01"; got != want {
		t.Errorf("traceparent %q, want %q (the ingest's trace, the POST's span)", got, want)
	}
	if err := traced.Verified(); err != nil {
		t.Error(err) // the header is not signed over: signatures still verify
	}

	for _, d := range accepted.Deliveries {
		events := rawHistory(t, d.DeliveryID)
		if _, ok := events[0].GetWorkflowExecutionStartedEventAttributes().GetHeader().GetFields()["_tracer-data"]; !ok {
			t.Errorf("%s: the start carries no trace header; was it traced?", d.DeliveryID)
		}
		if got := billable.Count(events); got.Total() != 2 {
			t.Errorf("%s: %d billable actions %v with tracing, want 2", d.DeliveryID, got.Total(), got)
		}
	}
}

// tracedServer runs the HTTP API and a delivery worker in this process on
// t's task queue, both tracing with tp, as `starter serve --worker` does
// with tracing on; loopback is admitted for the receivers.
func tracedServer(t *testing.T, tp trace.TracerProvider, endpointsFile string) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn := hookrelay(t).Options()
	conn.TracerProvider = tp
	tc, err := temporalclient.Connect(ctx, conn, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	if err := temporalclient.EnsureSearchAttributes(ctx, tc.Client, conn.Namespace, workflows.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	file, err := endpoint.OpenFile(endpointsFile)
	if err != nil {
		t.Fatal(err)
	}
	var opts deliveryworker.Options
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	opts.AddFlags(fs) // the flags' defaults
	if err := fs.Parse([]string{"--allow-cidr", "127.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	opts.ShutdownTimeout = 10 * time.Second
	w, err := deliveryworker.New(deliveryworker.Deps{Client: tc.Client, Namespace: conn.Namespace, TaskQueue: conn.TaskQueue,
		Endpoints: file, Logger: logger, Sealed: temporalclient.Sealed(tc.DataConverter), TracerProvider: tp}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	srv, err := httpapi.New(httpapi.Config{NoAuth: true, TracerProvider: tp, Logger: logger,
		Deliveries: &deliveries.Client{Temporal: tc.Client, Endpoints: file, TaskQueue: conn.TaskQueue, DataConverter: tc.DataConverter,
			EagerStart: true, TracerProvider: tp}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(checkedHandler(t, srv.Handler(), true))
	t.Cleanup(api.Close)
	return api
}

func named(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// The worker and starter send export over OTLP/HTTP to a collector (a real
// receiver on loopback) as the standard variables say: starter send's
// publish and the worker's attempt POST are one trace, the endpoint that
// asks for trace_context gets it, no collected span holds PHI, a path, a
// query or a secret, and the traced delivery still costs 2 billable actions.
func TestProcessesExportTracesOverOTLP(t *testing.T) {
	collector := testenv.NewCollectorT(t)
	otelEnv := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL, "OTEL_BSP_SCHEDULE_DELAY=100"}
	rc := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t, testenv.Endpoint{ID: "otlp-ctx", URL: rc.URL + "/hooks/fake-path?token=fake-query-token", Extra: "    trace_context: true\n"})
	spec := hookrelay(t).Worker("worker", "--endpoints", eps, "--allow-cidr", "127.0.0.0/8")
	spec.Env = append(spec.Env, otelEnv...)
	w := testenv.StartT(t, spec)
	if !strings.Contains(w.Log(), `"tracing":true`) {
		t.Fatalf("the worker does not say tracing is on:\n%s", w.Log())
	}

	cmd := hookrelay(t).Command("starter", "send", "--endpoints", eps, "--output", "json")
	cmd.Env = append(cmd.Env, otelEnv...)
	cmd.Stdin = strings.NewReader(sampleEvent(event.Delivered, 7302))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("starter send: %v\n%s", err, out)
	}
	var started startedLine
	if err := json.Unmarshal(out, &started); err != nil || started.WorkflowID == "" {
		t.Fatalf("starter send printed %q: %v", out, err)
	}
	if st := result(t, started.WorkflowID); st.Status != workflows.StatusDelivered {
		t.Fatalf("%s: %s", started.WorkflowID, st.Status)
	}

	// starter send flushed on exit; the worker exports within its batch delay.
	var publish, post testenv.Span
	testenv.Eventually(t, 30*time.Second, "the starter's Publish and the worker's POST at the collector", func() bool {
		for _, s := range collector.Spans() {
			switch {
			case s.Service == "hookrelay-starter" && s.Name == "Publish "+event.Delivered:
				publish = s
			case s.Service == "hookrelay-worker" && s.Name == "POST":
				post = s
			}
		}
		return publish.TraceID != "" && post.TraceID != ""
	})
	if post.TraceID != publish.TraceID || post.Attributes["server.address"] != "127.0.0.1" || post.Attributes["http.response.status_code"] != "200" {
		t.Errorf("POST %+v\nnot in the publish's trace %s, or without its host and status", post, publish.TraceID)
	}
	if got, want := rc.Requests()[0].Header.Get("traceparent"), "00-"+post.TraceID+"-"+post.SpanID+"-01"; got != want {
		t.Errorf("traceparent %q, want %q", got, want)
	}
	for _, s := range collector.Spans() {
		texts := []string{s.Name, s.Status}
		for k, v := range s.Attributes {
			texts = append(texts, k+"="+v)
		}
		for _, text := range texts {
			for _, bad := range phiAndSecrets {
				if strings.Contains(text, bad) {
					t.Errorf("%s span %q holds %q: %q", s.Service, s.Name, bad, text)
				}
			}
		}
	}
	if got := billable.Count(rawHistory(t, started.WorkflowID)); got.Total() != 2 {
		t.Errorf("%d billable actions %v with tracing, want 2", got.Total(), got)
	}
}

// Without an OTLP endpoint tracing is off: other OTEL_* variables alone
// (set here for other software, as a shared environment may) turn nothing
// on, check nothing, and the worker delivers as always.
func TestTracingOffWithoutOTLPEndpoint(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	eps := writeEndpoints(t, testenv.Endpoint{ID: "otlp-off", URL: rc.URL, Extra: "    trace_context: true\n"})
	spec := hookrelay(t).Worker("worker", "--endpoints", eps, "--allow-cidr", "127.0.0.0/8")
	spec.Env = append(spec.Env, "OTEL_SERVICE_NAME=elsewhere", "OTEL_TRACES_SAMPLER=not-ours-to-check")
	w := testenv.StartT(t, spec)
	if !strings.Contains(w.Log(), `"tracing":false`) {
		t.Fatalf("the worker does not say tracing is off:\n%s", w.Log())
	}
	started := send(t, eps, sampleEvent(event.Delivered, 7303))
	if st := result(t, started[0].WorkflowID); st.Status != workflows.StatusDelivered {
		t.Fatalf("%s: %s", started[0].WorkflowID, st.Status)
	}
	if h := rc.Requests()[0].Header.Get("traceparent"); h != "" {
		t.Errorf("tracing off, yet the trace_context endpoint got traceparent %q", h)
	}
	if _, ok := rawHistory(t, started[0].WorkflowID)[0].GetWorkflowExecutionStartedEventAttributes().GetHeader().GetFields()["_tracer-data"]; ok {
		t.Error("tracing off, yet the start carries a trace header")
	}
}

// A bad OTEL_* value is a usage mistake: exit 2 naming the variable,
// before the endpoints file is read or Temporal dialled (neither exists here).
func TestBadOTELVariableExits2(t *testing.T) {
	for _, c := range []struct {
		env     string
		args    []string
		program string
	}{
		{"OTEL_EXPORTER_OTLP_ENDPOINT=collector:4317", []string{"--endpoints", "/nonexistent/endpoints.yaml"}, "worker"},
		{"OTEL_TRACES_SAMPLER=sometimes", []string{"serve", "--endpoints", "/nonexistent/endpoints.yaml", "--insecure-no-auth"}, "starter"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL=http/json", []string{"send", "--endpoints", "/nonexistent/endpoints.yaml"}, "starter"},
	} {
		h := hookrelay(t)
		h.Address = "127.0.0.1:1" // nothing listens: a dial would fail with exit 1
		cmd := h.Command(c.program, c.args...)
		cmd.Env = append(cmd.Env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1", c.env)
		cmd.Stdin = strings.NewReader(sampleEvent(event.Delivered, 7304))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		code, err := testenv.ExitCode(cmd.Run())
		name, _, _ := strings.Cut(c.env, "=")
		if err != nil || code != 2 || !strings.Contains(stderr.String(), name+": ") {
			t.Errorf("%s %v with %s: exit %d (%v), %q; want 2 naming %s", c.program, c.args, c.env, code, err, stderr.String(), name)
		}
	}
}
