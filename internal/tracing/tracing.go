// Package tracing sets up OpenTelemetry traces for hookrelay's commands from
// the standard OTEL_* environment variables: an OTLP exporter (gRPC or
// HTTP/protobuf) when an OTLP endpoint is set, nothing at all otherwise. It
// also builds the Temporal SDK's tracing interceptor, whose spans never
// carry an error's message (which may quote data), only its kind.
//
// Span names and attributes hold ids, event names, routes, hosts and
// status codes: never an event's payload, a URL's path or query, a header
// value or a secret (docs/security.md).
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/redact"
	"github.com/hookrelay/hookrelay/internal/version"
)

// The standard variables read here; the exporter reads the other
// OTEL_EXPORTER_OTLP_* ones (certificates, insecure) itself, and the SDK
// the OTEL_BSP_* batch settings.
const (
	EnvSDKDisabled     = "OTEL_SDK_DISABLED"
	EnvTracesExporter  = "OTEL_TRACES_EXPORTER"
	EnvEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvHeaders         = "OTEL_EXPORTER_OTLP_HEADERS"
	EnvTracesHeaders   = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	EnvTimeout         = "OTEL_EXPORTER_OTLP_TIMEOUT"
	EnvTracesTimeout   = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
	EnvCompression     = "OTEL_EXPORTER_OTLP_COMPRESSION"
	EnvTracesCompress  = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"
	EnvSampler         = "OTEL_TRACES_SAMPLER"
	EnvSamplerArg      = "OTEL_TRACES_SAMPLER_ARG"
	EnvServiceName     = "OTEL_SERVICE_NAME"
	EnvResourceAttrs   = "OTEL_RESOURCE_ATTRIBUTES"
	ProtocolGRPC       = "grpc"
	ProtocolHTTP       = "http/protobuf"
	defaultProtocol    = ProtocolHTTP // the specification's default
	instrumentationURL = "github.com/hookrelay/hookrelay"
)

// Propagator is how a trace crosses processes: W3C Trace Context
// (traceparent, tracestate) only, no baggage.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Config is tracing as the environment sets it. The zero Config is off.
type Config struct {
	// Enabled: an OTLP endpoint is set, and neither OTEL_SDK_DISABLED=true
	// nor OTEL_TRACES_EXPORTER=none turns tracing off.
	Enabled bool
	// Protocol is ProtocolGRPC or ProtocolHTTP.
	Protocol string
	Sampler  sdktrace.Sampler
}

// FromEnv reads the OTEL_* variables through lookup (os.LookupEnv). A value
// that does not parse is an error naming its variable; header values are
// never quoted, since they usually hold credentials. Tracing off (no
// endpoint) checks no other variable: other software in the same
// environment may set them.
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	switch v := strings.ToLower(get(EnvSDKDisabled)); v {
	case "", "false":
	case "true":
		return Config{}, nil
	default:
		return Config{}, fmt.Errorf("%s: %q is not true or false", EnvSDKDisabled, get(EnvSDKDisabled))
	}
	switch v := get(EnvTracesExporter); v {
	case "", "otlp":
	case "none":
		return Config{}, nil
	default:
		return Config{}, fmt.Errorf("%s: %q is not supported; use otlp (the default) or none", EnvTracesExporter, v)
	}
	endpointVar := EnvTracesEndpoint
	endpoint := get(EnvTracesEndpoint)
	if endpoint == "" {
		endpointVar, endpoint = EnvEndpoint, get(EnvEndpoint)
	}
	if endpoint == "" {
		return Config{}, nil // off: nothing to export to
	}
	if err := checkEndpoint(endpoint); err != nil {
		return Config{}, fmt.Errorf("%s: %w", endpointVar, err)
	}
	c := Config{Enabled: true, Protocol: defaultProtocol}
	protoVar, proto := EnvTracesProtocol, get(EnvTracesProtocol)
	if proto == "" {
		protoVar, proto = EnvProtocol, get(EnvProtocol)
	}
	switch proto {
	case "":
	case ProtocolGRPC, ProtocolHTTP:
		c.Protocol = proto
	default:
		return Config{}, fmt.Errorf("%s: %q is not supported; use %s or %s", protoVar, proto, ProtocolGRPC, ProtocolHTTP)
	}
	for _, name := range []string{EnvHeaders, EnvTracesHeaders} {
		if err := checkHeaders(get(name)); err != nil {
			return Config{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, name := range []string{EnvTimeout, EnvTracesTimeout} {
		if v := get(name); v != "" {
			if n, err := strconv.Atoi(v); err != nil || n < 0 {
				return Config{}, fmt.Errorf("%s: %q is not a whole number of milliseconds", name, v)
			}
		}
	}
	for _, name := range []string{EnvCompression, EnvTracesCompress} {
		if v := get(name); v != "" && v != "gzip" && v != "none" {
			return Config{}, fmt.Errorf("%s: %q is not gzip or none", name, v)
		}
	}
	var err error
	if c.Sampler, err = sampler(get(EnvSampler), get(EnvSamplerArg)); err != nil {
		return Config{}, err
	}
	return c, nil
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL with a host", redact.URL(s))
	}
	return nil
}

// checkHeaders checks key=value,key=value without quoting any value.
func checkHeaders(s string) error {
	if s == "" {
		return nil
	}
	for i, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("entry %d is not key=value (values are not shown: they may be credentials)", i+1)
		}
		if _, err := url.PathUnescape(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("entry %d (%s): the value is not URL-encoded", i+1, strings.TrimSpace(k))
		}
	}
	return nil
}

func sampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, fmt.Errorf("%s: %q is not a ratio from 0 to 1", EnvSamplerArg, arg)
		}
		return f, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, fmt.Errorf("%s: %q is not supported; use always_on, always_off, traceidratio or their parentbased_ forms", EnvSampler, name)
	}
}

// Setup is the commands' prologue step: tracing as the environment sets
// it, after the flags are checked and before anything is dialled. A bad
// variable is a usage mistake (exit 2).
func Setup(ctx context.Context, service string) (*Tracing, error) {
	c, err := FromEnv(os.LookupEnv)
	if err != nil {
		return nil, cmdline.Usage(err)
	}
	t, err := Start(ctx, c, service)
	if err != nil {
		// Start dials nothing: what fails is the environment's settings.
		return nil, cmdline.Usage(err)
	}
	return t, nil
}

// Tracing is a process's tracer provider: the SDK's with an OTLP exporter,
// or a no-op one when tracing is off.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
}

// Start builds the provider c asks for; service is the default
// service.name (OTEL_SERVICE_NAME wins). It connects to nothing yet: the
// exporter dials on its first export, and failed exports are dropped, never
// in the way of deliveries.
func Start(ctx context.Context, c Config, service string) (*Tracing, error) {
	if !c.Enabled {
		return &Tracing{provider: noop.NewTracerProvider()}, nil
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version.String())),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
	)
	if err != nil {
		return nil, fmt.Errorf("%s or %s: %w", EnvServiceName, EnvResourceAttrs, err)
	}
	var exp sdktrace.SpanExporter
	switch c.Protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx) // endpoint, headers, TLS and timeout from OTEL_EXPORTER_OTLP_*
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", c.Protocol, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(c.Sampler))
	return &Tracing{provider: tp, sdk: tp}, nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool {
	_, off := t.provider.(noop.TracerProvider)
	return !off
}

// Provider is the tracer provider: nil when tracing is off, so callers
// that add instrumentation only when it is on can tell.
func (t *Tracing) Provider() trace.TracerProvider {
	if !t.Enabled() {
		return nil
	}
	return t.provider
}

// Shutdown flushes the spans not yet exported and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush spans: %w", err)
	}
	return nil
}

// flushTimeout bounds the flush on exit: an unreachable collector must not
// hold a stopping process.
const flushTimeout = 5 * time.Second

// Flush is Shutdown on a process's way out, bounded, a failure logged.
func (t *Tracing) Flush(logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		logger.Warn("spans not flushed", "error", err.Error())
	}
}

// Tracer is the tracer hookrelay's own code (the API, publishing, the
// attempt's POST) records with: from tp, or a no-op one when tp is nil.
func Tracer(tp trace.TracerProvider, pkg string) trace.Tracer {
	if tp == nil {
		return noop.NewTracerProvider().Tracer(pkg)
	}
	return tp.Tracer(instrumentationURL+"/"+pkg, trace.WithInstrumentationVersion(version.String()))
}
