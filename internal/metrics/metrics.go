// Package metrics exposes Prometheus metrics: the Temporal SDK's, through
// its tally handler, and hookrelay's own, which workflows and activities
// record through the same handler (so workflow metrics skip replays):
//
//	hookrelay_attempts_total{endpoint, outcome}   attempts by outcome and endpoint
//	hookrelay_attempt_latency_seconds{endpoint}   attempt latency histogram
//	hookrelay_deliveries_total{endpoint, status}  deliveries by final status
//	hookrelay_endpoint_state{endpoint, state}     1 for the circuit state each endpoint is in, 0 for the others
//	hookrelay_codec_encryptions_total{key_id}     payloads this process sealed, per payload key
//	hookrelay_codec_key_overused{key_id}          1 once this process sealed codec.WarnEncryptions payloads with the key: rotate it
//
// The endpoint label has at most --metrics-endpoint-labels values besides
// "other" (see endpointLabels).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Names of hookrelay's own metrics, before the Prometheus suffixes
// (_total for counters, _seconds for timers) the naming scope adds.
const (
	Attempts       = "hookrelay_attempts"
	AttemptLatency = "hookrelay_attempt_latency"
	Deliveries     = "hookrelay_deliveries"
	EndpointState  = "hookrelay_endpoint_state"
	// CodecEncryptions counts payloads sealed per key (GCM's random-nonce
	// limit is per key); CodecKeyOverused is 1 past the warning threshold.
	CodecEncryptions = "hookrelay_codec_encryptions"
	CodecKeyOverused = "hookrelay_codec_key_overused"
)

// latencyBuckets suit webhook POSTs: from a fast loopback answer to the 5m timeout cap.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60, 300}

// sanitize is the SDK's Prometheus sanitizing, but label values keep '-'
// and '.', so endpoint ids such as "acme-eu" stay readable.
var sanitize = tally.SanitizeOptions{
	NameCharacters:       sdktally.PrometheusSanitizeOptions.NameCharacters,
	KeyCharacters:        sdktally.PrometheusSanitizeOptions.KeyCharacters,
	ValueCharacters:      tally.ValidCharacters{Ranges: tally.AlphanumericRange, Characters: []rune{'_', '-', '.'}},
	ReplacementCharacter: tally.DefaultReplacementCharacter,
}

// Registry holds the metrics of one process.
type Registry struct {
	handler  client.MetricsHandler
	reporter tallyprom.Reporter
	closer   io.Closer
}

// New returns a registry reporting every second to its own Prometheus
// registry, with at most endpointLabelMax values of the endpoint label besides
// Other (0: DefaultEndpointLabels).
func New(endpointLabelMax int) *Registry {
	if endpointLabelMax <= 0 {
		endpointLabelMax = DefaultEndpointLabels
	}
	reg := prom.NewRegistry()
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		Gatherer:                reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: latencyBuckets,
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sanitize,
	}, time.Second)
	return &Registry{
		handler: boundedHandler{MetricsHandler: sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)),
			labels: &endpointLabels{max: endpointLabelMax, own: map[string]bool{}}},
		reporter: reporter,
		closer:   closer,
	}
}

// Handler is the SDK metrics handler to put in client.Options.
func (r *Registry) Handler() client.MetricsHandler { return r.handler }

// Close flushes and stops reporting.
func (r *Registry) Close() error { return r.closer.Close() }

// Serve serves GET /metrics and GET /healthz on addr until ctx is done.
// It returns once listening, with the address it listens on.
func (r *Registry) Serve(ctx context.Context, addr string, logger *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.reporter.HTTPHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "error", err.Error())
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()
	return ln.Addr().String(), nil
}

// CheckListen vets --metrics-listen against the ranges --allow-cidr admits,
// the customers' networks a worker reaches: metrics name every endpoint
// and their outcomes, so customers must not reach them. An address inside
// an admitted range is refused (loopback aside: only this host reaches it); every interface ("0.0.0.0:9090", ":9090")
// while ranges are admitted is allowed with a warning, since those
// interfaces may include one on a customers' network.
func CheckListen(addr string, admitted []netip.Prefix) (warning string, err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-listen: %q is not host:port", addr)
	}
	if len(admitted) == 0 {
		return "", nil
	}
	ip, err := netip.ParseAddr(host)
	if host == "" || err == nil && ip.IsUnspecified() {
		return "metrics listen on every interface, including any on a network --allow-cidr admits; bind --metrics-listen to 127.0.0.1 or an address only operators reach", nil
	}
	if err != nil {
		return "", nil // a host name: resolved by Listen, checked by whoever names it
	}
	if ip.IsLoopback() {
		return "", nil // reached from this host only, even where --allow-cidr admits loopback (local testing)
	}
	for _, p := range admitted {
		if p.Contains(ip.Unmap()) {
			return "", fmt.Errorf("--metrics-listen: %s is in %s, which --allow-cidr admits as a customers' network; bind metrics to 127.0.0.1 or an address only operators reach", ip, p)
		}
	}
	return "", nil
}
