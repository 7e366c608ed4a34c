// Package activities holds the attempt activity: resolve the endpoint and its
// secrets, sign, POST, and classify what came back; and the endpoint health
// workflow's activities (health.go): releasing parked deliveries in a drain
// or a probe, and delivering notices of endpoints disabled.
package activities

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/activity"
	"golang.org/x/net/http/httpproxy"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/signing"
	"github.com/hookrelay/hookrelay/internal/throttle"
	"github.com/hookrelay/hookrelay/internal/tracing"
	"github.com/hookrelay/hookrelay/internal/version"
	"github.com/hookrelay/hookrelay/workflows"
)

// Response bodies: read at most maxBodyRead, keep the first keptBody bytes.
const (
	maxBodyRead = 64 << 10
	keptBody    = 1 << 10
)

// Health is endpoint health as this worker sees it (*health.Watcher); nil
// never parks a delivery and reports nothing.
type Health interface {
	// Circuit is the endpoint's circuit as this worker last read it.
	Circuit(endpointID string) workflows.CircuitState
	// Observe takes an attempt's outcome: a success is noted in memory, a
	// failure reported to the endpoint's health workflow.
	Observe(ctx context.Context, ep endpoint.Endpoint, deliveryID string, rec workflows.Attempt)
}

// Activities carries the attempt activity's dependencies.
type Activities struct {
	Health Health
	// Endpoints resolves an endpoint by id at attempt time: the endpoints
	// file (*endpoint.File reloads on change) or the registry.
	Endpoints endpoint.Source
	HTTP      *http.Client
	Now       func() time.Time
	UserAgent string
	// TracerProvider records each attempt's POST as a client span (nil:
	// none). Its attributes are method, host, port, status and ids only.
	TracerProvider trace.TracerProvider
	// Log records each attempt in the delivery log as it ends
	// (*logrecorder.Recorder); nil: no log.
	Log Recorder
	// InFlight counts each endpoint's attempts running in this worker, held
	// to its max_in_flight (*throttle.InFlight); nil: no bound.
	InFlight InFlight
	// MaxInFlight caps every endpoint's max_in_flight in this worker (half
	// its attempt slots), so no endpoint holds all of them; 0: no cap.
	MaxInFlight int
	// Rates reserves rate-limited endpoints' requests; nil: rate_limit is
	// not enforced.
	Rates Rates
}

// Recorder writes an attempt to the delivery log within a bounded time,
// whatever the database does.
type Recorder interface {
	Record(ctx context.Context, runID string, in workflows.AttemptInput, rec workflows.Attempt, end time.Time)
}

// New returns Activities posting through httpClient (see NewHTTPClient),
// with the wall clock and hookrelay's User-Agent.
func New(endpoints endpoint.Source, httpClient *http.Client) *Activities {
	return &Activities{Endpoints: endpoints, HTTP: httpClient, Now: time.Now, UserAgent: version.UserAgent(),
		InFlight: &throttle.InFlight{}, Rates: &throttle.Rates{}}
}

// HTTPOptions configure the attempt's HTTP client.
type HTTPOptions struct {
	// Allow admits these otherwise refused ranges for endpoint addresses
	// (--allow-cidr); every address the client connects to, or asks the
	// proxy to, is checked. None: every non-public range is refused.
	Allow []netip.Prefix
	// AllowPorts admits endpoint ports beyond 443, 80 and 1024-65535
	// (--allow-port).
	AllowPorts []PortRange
	// UseEnvProxy sends attempts through the proxy named by HTTPS_PROXY,
	// HTTP_PROXY and NO_PROXY, as a CONNECT tunnel to the endpoint address
	// the guard checked (see proxy.go).
	UseEnvProxy bool
	// ProxyAllow admits the proxy's own address in these otherwise refused
	// ranges, apart from the endpoints (--proxy-allow-cidr).
	ProxyAllow []netip.Prefix
	// Lookup resolves host names for the checks; nil uses
	// net.DefaultResolver. Tests inject their own so no real DNS is involved.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// RootCAs verify endpoints' certificates; nil uses the system roots.
	RootCAs *x509.CertPool
}

// PortRange is an inclusive range of endpoint ports.
type PortRange struct{ Lo, Hi uint16 }

// NewHTTPClient never follows redirects, requires TLS 1.2 or later, connects
// only to addresses the guard admits, ignores proxy environment variables
// unless asked, and keeps idle connections per host for reuse. The per-attempt
// timeout (connect, TLS, headers and body) is the request context's deadline;
// the dial and handshake timeouts here only bound each step under it.
func NewHTTPClient(o HTTPOptions) *http.Client {
	ports := make([]netguard.PortRange, len(o.AllowPorts))
	for i, r := range o.AllowPorts {
		ports[i] = netguard.PortRange(r)
	}
	guard := netguard.New(o.Allow...).WithPortRule(ports...)
	guard.Lookup = o.Lookup
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	transport := func(dial func(ctx context.Context, network, address string) (net.Conn, error)) *http.Transport {
		return &http.Transport{
			// Proxy stays nil: with --use-env-proxy the dialer itself tunnels.
			DialContext:            dial,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
			TLSHandshakeTimeout:    10 * time.Second,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           256,
			MaxIdleConnsPerHost:    16,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: maxBodyRead,
		}
	}
	var rt http.RoundTripper = transport(guard.DialContext(dialer))
	if o.UseEnvProxy {
		proxyGuard := netguard.New(o.ProxyAllow...)
		proxyGuard.Lookup = o.Lookup
		// Read now rather than through http.ProxyFromEnvironment, which
		// caches the environment for the life of the process.
		t := &tunnel{guard: guard, proxyGuard: proxyGuard, dialer: dialer, proxyFor: httpproxy.FromEnvironment().ProxyFunc()}
		rt = byScheme{https: transport(t.dialContext("https")), http: transport(t.dialContext("http"))}
	}
	return &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Attempt is the attempt activity (ordinary or local): one signed POST,
// its outcome audited and counted. It returns an error only when it cannot
// run at all; every HTTP result, failures included, is a recorded attempt.
func (a *Activities) Attempt(ctx context.Context, in workflows.AttemptInput) (workflows.Attempt, error) {
	// Heartbeats reach the server only for ordinary activities that run
	// longer than the interval; for a local activity the SDK ignores them.
	defer heartbeatWhileRunning(ctx, workflows.AttemptHeartbeatEvery)()
	rec, ep, err := a.attempt(ctx, in)
	if err != nil {
		// The workflow records a worker error; so does the log.
		a.record(ctx, in, workflows.Attempt{Number: in.Attempt, StartedAt: rec.StartedAt, Outcome: workflows.OutcomeWorkerError, Error: err.Error(),
			LatencyMS: a.Now().Sub(rec.StartedAt).Milliseconds()})
		return rec, err
	}
	if rec.Outcome == workflows.OutcomeThrottled {
		return rec, nil // nothing sent, nothing to audit, log or count
	}
	if a.Health != nil && ep != nil && in.Release && rec.Outcome.EndpointFailure() && a.Health.Circuit(ep.ID) == workflows.CircuitOpen {
		// A failed probe: the delivery parks again in its place, its retry
		// schedule untouched (workflows.Attempt.ParkAgain).
		rec.ParkAgain, rec.ParkLimitSeconds = true, int64(ep.Circuit.ParkLimit/time.Second)
	}
	a.audit(ctx, in, rec)
	a.record(ctx, in, rec)
	if a.Health != nil && ep != nil && !in.Release {
		// A release's outcome reaches the health workflow through the
		// release itself: no report of its own.
		a.Health.Observe(ctx, *ep, in.DeliveryID, rec)
	}
	return rec, nil
}

// record writes the attempt to the delivery log, if there is one.
func (a *Activities) record(ctx context.Context, in workflows.AttemptInput, rec workflows.Attempt) {
	if a.Log != nil {
		a.Log.Record(ctx, activity.GetInfo(ctx).WorkflowExecution.RunID, in, rec, a.Now())
	}
}

// attempt resolves the endpoint, signs, POSTs and classifies: the attempt
// without the activity's audit line, metrics and heartbeats. It returns the
// endpoint it POSTed to, or nil when it sent nothing.
func (a *Activities) attempt(ctx context.Context, in workflows.AttemptInput) (workflows.Attempt, *endpoint.Endpoint, error) {
	started := a.Now()
	rec := workflows.Attempt{Number: in.Attempt, StartedAt: started}
	if in.UnsealedInput || in.Unsealed() {
		// Forged past the codec: signing it would vouch for content no key
		// holder sent (workflows.Provenance).
		rec.Outcome, rec.Error = workflows.OutcomeInvalidInput, invalidInputReason(in)
		return rec, nil, nil
	}

	ep, err := a.Endpoints.Resolve(ctx, in.EndpointID)
	switch {
	case errors.Is(err, endpoint.ErrDeleted):
		rec.Outcome, rec.Error = workflows.OutcomeEndpointDeleted, fmt.Sprintf("endpoint %q was deleted", in.EndpointID)
		return rec, nil, nil
	case errors.Is(err, endpoint.ErrNotFound):
		rec.Outcome, rec.Error = workflows.OutcomeEndpointMissing, err.Error()
		return rec, nil, nil
	case err != nil:
		// The registry did not answer: the attempt could not run at all.
		return rec, nil, fmt.Errorf("resolve endpoint %q: %w", in.EndpointID, err)
	case ep.AccountID != in.AccountID:
		rec.Outcome, rec.Error = workflows.OutcomeAccountMismatch, fmt.Sprintf("endpoint %q belongs to another account than the event; nothing sent", in.EndpointID)
		return rec, nil, nil
	case !ep.Enabled:
		rec.Outcome, rec.Error = workflows.OutcomeEndpointMissing, fmt.Sprintf("endpoint %q is disabled", in.EndpointID)
		return rec, nil, nil
	}
	release, held, err := a.gate(ctx, in, ep, rec)
	if err != nil || held != nil {
		return deref(held, rec), nil, err
	}
	defer release()
	secrets, err := ep.Secrets()
	if err != nil {
		rec.Outcome, rec.Error = workflows.OutcomeEndpointMissing, err.Error()
		return rec, nil, nil
	}
	for _, s := range secrets {
		rec.KeyIDs = append(rec.KeyIDs, s.KeyID())
	}

	body := in.RequestBody()
	reqCtx, cancel := context.WithTimeout(ctx, ep.Timeout)
	defer cancel()
	reqCtx, span := a.startPOST(reqCtx, in, ep)
	defer func() { endPOST(span, rec) }()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, ep.URL.String(), bytes.NewReader(body))
	if err != nil {
		return rec, nil, fmt.Errorf("endpoint %q: build request: %w", in.EndpointID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", a.UserAgent)
	signing.Headers(req.Header, in.DeliveryID, started, body, secrets...)
	if ep.TraceContext {
		// Only where the endpoint's config asks: traceparent tells the
		// customer this trace's ids. Never tracestate: it carries what the
		// API's caller put there, not ours to hand a customer.
		sc := trace.SpanContextFromContext(reqCtx).WithTraceState(trace.TraceState{})
		tracing.Propagator.Inject(trace.ContextWithSpanContext(reqCtx, sc), propagation.HeaderCarrier(req.Header))
	}

	resp, err := a.HTTP.Do(req)
	if err == nil {
		rec.StatusCode = resp.StatusCode
		rec.RetryAfterSeconds = int64(retryAfter(resp, a.Now()) / time.Second)
		rec.ResponseBody, err = readBody(resp.Body)
		resp.Body.Close()
		if err != nil {
			// The status line arrived but the body did not finish: the
			// receiver's answer is incomplete, so the attempt failed.
			resp = nil
		}
	}
	rec.Outcome, rec.Error = classify(resp, err)
	rec.LatencyMS = a.Now().Sub(started).Milliseconds()
	return rec, &ep, nil
}

// gate holds the attempt back, sending nothing, when the endpoint's circuit
// parks it or its limits throttle it (the record says which); else it
// returns the release of its place in flight.
func (a *Activities) gate(ctx context.Context, in workflows.AttemptInput, ep endpoint.Endpoint, rec workflows.Attempt) (release func(), held *workflows.Attempt, err error) {
	if parked := a.park(in, ep, rec); parked != nil {
		return func() {}, parked, nil
	}
	return a.admit(ctx, in, ep, rec)
}

// park is the parked record when the attempt may park and the endpoint's
// circuit is not healthy: nothing is sent; nil otherwise.
func (a *Activities) park(in workflows.AttemptInput, ep endpoint.Endpoint, rec workflows.Attempt) *workflows.Attempt {
	if !in.MayPark || in.Release || in.Override || a.Health == nil {
		return nil
	}
	state := a.Health.Circuit(ep.ID)
	if !state.Parks() {
		return nil
	}
	rec.Outcome, rec.Error = workflows.OutcomeParked, fmt.Sprintf("the endpoint's circuit is %s; nothing sent", state)
	rec.ParkLimitSeconds = int64(ep.Circuit.ParkLimit / time.Second)
	return &rec
}

// startPOST starts the attempt's client span: the method, the endpoint's
// host and port, and ids. Never the URL's path or query (a customer's
// token may be there), a header or the body.
func (a *Activities) startPOST(ctx context.Context, in workflows.AttemptInput, ep endpoint.Endpoint) (context.Context, trace.Span) {
	if a.TracerProvider == nil {
		return ctx, trace.SpanFromContext(context.Background()) // tracing off: a no-op span, nothing allocated
	}
	port := ep.URL.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[ep.URL.Scheme]
	}
	n, _ := strconv.Atoi(port)
	return tracing.Tracer(a.TracerProvider, "activities").Start(ctx, http.MethodPost, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", http.MethodPost),
			attribute.String("server.address", ep.URL.Hostname()),
			attribute.Int("server.port", n),
			attribute.String("hookrelay.delivery.id", in.DeliveryID),
			attribute.String("hookrelay.endpoint.id", ep.ID),
			attribute.Int("hookrelay.attempt", in.Attempt),
		))
}

// endPOST records the attempt's outcome on its span: the status code and
// outcome, never the error's text (which names the URL).
func endPOST(span trace.Span, rec workflows.Attempt) {
	if !span.IsRecording() {
		return
	}
	if rec.StatusCode != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", rec.StatusCode))
	}
	span.SetAttributes(attribute.String("hookrelay.attempt.outcome", string(rec.Outcome)))
	if rec.Outcome != workflows.OutcomeDelivered {
		span.SetAttributes(attribute.String("error.type", string(rec.Outcome)))
		span.SetStatus(codes.Error, string(rec.Outcome))
	}
	span.End()
}

// invalidInputReason says which input arrived unsealed.
func invalidInputReason(in workflows.AttemptInput) string {
	which := "the delivery's input"
	if !in.UnsealedInput {
		which = "the attempt's input"
	}
	return which + " did not arrive encrypted with a payload key this worker holds (started without the codec?); nothing sent"
}

// heartbeatWhileRunning heartbeats every interval until the returned stop is
// called; an activity that finishes within the first interval sends none (a
// heartbeat is a server round trip and a billable action). A heartbeat is
// how a cancel (or the workflow having closed) reaches the activity: the SDK
// then cancels ctx, which aborts the request. The SDK sends them at most
// every 80% of the heartbeat timeout, or the worker's
// MaxHeartbeatThrottleInterval if shorter.
func heartbeatWhileRunning(ctx context.Context, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// readBody reads at most maxBodyRead bytes and keeps the first keptBody as valid UTF-8.
func readBody(r io.Reader) (string, error) {
	var kept bytes.Buffer
	_, err := io.Copy(io.Discard, io.TeeReader(io.LimitReader(r, maxBodyRead), &limitedWriter{w: &kept, n: keptBody}))
	// The cut may split a rune; history payloads must be valid UTF-8.
	return strings.ToValidUTF8(kept.String(), "\uFFFD"), err
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// audit writes the attempt's audit line (ids, outcome, status, latency and
// key ids; never the payload, the URL or a header value) and counts it in
// the metrics: attempts by endpoint and outcome, and latency.
func (a *Activities) audit(ctx context.Context, in workflows.AttemptInput, rec workflows.Attempt) {
	attrs := []any{
		"audit", true,
		"delivery_id", in.DeliveryID,
		"endpoint_id", in.EndpointID,
		"attempt", in.Attempt,
		"outcome", string(rec.Outcome),
		"status_code", rec.StatusCode,
		"latency_ms", rec.LatencyMS,
		"key_ids", strings.Join(rec.KeyIDs, " "),
	}
	if rec.Outcome == workflows.OutcomeInvalidInput {
		attrs = append(attrs, "reason", rec.Error) // a fixed text: no input content
	}
	activity.GetLogger(ctx).Info("attempt finished", attrs...)
	m := activity.GetMetricsHandler(ctx).WithTags(map[string]string{"endpoint": in.EndpointID})
	m.WithTags(map[string]string{"outcome": string(rec.Outcome)}).Counter(metrics.Attempts).Inc(1)
	m.Timer(metrics.AttemptLatency).Record(time.Duration(rec.LatencyMS) * time.Millisecond)
}
