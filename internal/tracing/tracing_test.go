package tracing

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.temporal.io/sdk/temporal"

	"github.com/hookrelay/hookrelay/internal/cmdline"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Tracing is off unless an OTLP endpoint is set; a bad value is an error
// naming its variable and quoting no header value.
func TestFromEnv(t *testing.T) {
	const ep = "http://127.0.0.1:4318"
	for _, c := range []struct {
		name     string
		env      map[string]string
		enabled  bool
		protocol string
		errVar   string // the variable the error must name
	}{
		{name: "unset", env: nil},
		{name: "only other variables", env: map[string]string{EnvSampler: "bogus", EnvServiceName: "x"}},
		{name: "endpoint", env: map[string]string{EnvEndpoint: ep}, enabled: true, protocol: ProtocolHTTP},
		{name: "traces endpoint", env: map[string]string{EnvTracesEndpoint: ep}, enabled: true, protocol: ProtocolHTTP},
		{name: "grpc", env: map[string]string{EnvEndpoint: "http://127.0.0.1:4317", EnvProtocol: "grpc"}, enabled: true, protocol: ProtocolGRPC},
		{name: "traces protocol wins", env: map[string]string{EnvEndpoint: ep, EnvProtocol: "grpc", EnvTracesProtocol: "http/protobuf"}, enabled: true, protocol: ProtocolHTTP},
		{name: "disabled", env: map[string]string{EnvEndpoint: ep, EnvSDKDisabled: "TRUE"}},
		{name: "exporter none", env: map[string]string{EnvEndpoint: ep, EnvTracesExporter: "none"}},
		{name: "sampler ratio", env: map[string]string{EnvEndpoint: ep, EnvSampler: "parentbased_traceidratio", EnvSamplerArg: "0.25"}, enabled: true, protocol: ProtocolHTTP},
		{name: "headers", env: map[string]string{EnvEndpoint: ep, EnvHeaders: "api-key=abc%20def,x=y"}, enabled: true, protocol: ProtocolHTTP},

		{name: "bad disabled", env: map[string]string{EnvSDKDisabled: "yes"}, errVar: EnvSDKDisabled},
		{name: "bad exporter", env: map[string]string{EnvEndpoint: ep, EnvTracesExporter: "zipkin"}, errVar: EnvTracesExporter},
		{name: "endpoint without scheme", env: map[string]string{EnvEndpoint: "collector:4317"}, errVar: EnvEndpoint},
		{name: "bad traces endpoint", env: map[string]string{EnvEndpoint: ep, EnvTracesEndpoint: "ftp://x"}, errVar: EnvTracesEndpoint},
		{name: "bad protocol", env: map[string]string{EnvEndpoint: ep, EnvProtocol: "http/json"}, errVar: EnvProtocol},
		{name: "bad traces protocol", env: map[string]string{EnvEndpoint: ep, EnvTracesProtocol: "thrift"}, errVar: EnvTracesProtocol},
		{name: "bad sampler", env: map[string]string{EnvEndpoint: ep, EnvSampler: "jaeger_remote"}, errVar: EnvSampler},
		{name: "bad sampler arg", env: map[string]string{EnvEndpoint: ep, EnvSampler: "traceidratio", EnvSamplerArg: "1.5"}, errVar: EnvSamplerArg},
		{name: "bad timeout", env: map[string]string{EnvEndpoint: ep, EnvTracesTimeout: "10s"}, errVar: EnvTracesTimeout},
		{name: "bad compression", env: map[string]string{EnvEndpoint: ep, EnvCompression: "zstd"}, errVar: EnvCompression},
		{name: "bad headers", env: map[string]string{EnvEndpoint: ep, EnvHeaders: "Authorization Bearer s3cr3t-value"}, errVar: EnvHeaders},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := FromEnv(env(c.env))
			if c.errVar != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.errVar+": ") {
					t.Fatalf("err %v, want one naming %s", err, c.errVar)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("the error quotes a header value: %v", err)
				}
				return
			}
			if err != nil || cfg.Enabled != c.enabled || (c.enabled && cfg.Protocol != c.protocol) {
				t.Fatalf("%+v, %v; want enabled %t protocol %q", cfg, err, c.enabled, c.protocol)
			}
			if c.enabled && cfg.Sampler == nil {
				t.Fatal("no sampler")
			}
		})
	}
}

// Off costs nothing: a no-op provider, no exporter, nothing to flush.
func TestOffIsNoop(t *testing.T) {
	tr, err := Start(context.Background(), Config{}, "hookrelay-test")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.Provider() != nil {
		t.Fatalf("off tracing is enabled (%t) or has a provider (%v)", tr.Enabled(), tr.Provider())
	}
	_, span := Tracer(tr.Provider(), "test").Start(context.Background(), "x")
	if span.SpanContext().IsValid() || span.IsRecording() {
		t.Fatal("a span recorded with tracing off")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// On, Start builds an exporter without connecting, and Shutdown returns
// even though no collector listens (the spans are dropped).
func TestStartWithoutCollector(t *testing.T) {
	t.Setenv(EnvEndpoint, "http://127.0.0.1:1")
	t.Setenv(EnvTimeout, "200")
	for _, proto := range []string{ProtocolHTTP, ProtocolGRPC} {
		cfg, err := FromEnv(func(k string) (string, bool) {
			return map[string]string{EnvEndpoint: "http://127.0.0.1:1", EnvProtocol: proto}[k], true
		})
		if err != nil || !cfg.Enabled {
			t.Fatalf("%s: %+v %v", proto, cfg, err)
		}
		tr, err := Start(context.Background(), cfg, "hookrelay-test")
		if err != nil || !tr.Enabled() {
			t.Fatalf("%s: %v", proto, err)
		}
		_, span := Tracer(tr.Provider(), "test").Start(context.Background(), "x")
		if !span.SpanContext().IsValid() {
			t.Fatalf("%s: no span context", proto)
		}
		span.End()
		ctx, cancel := context.WithTimeout(context.Background(), 5e9)
		tr.Shutdown(ctx) // an export error is expected: nothing listens
		cancel()
	}
}

// The Temporal interceptor's spans carry an error's kind, never its message.
func TestErrorKindSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, s := tp.Tracer("t").Start(context.Background(), "RunActivity:Attempt")
	span := &errorKindSpan{Span: s}
	secret := errors.New("POST https://example.com/hook?token=s3cr3t: patient@example.com")
	span.RecordError(temporal.NewApplicationError(secret.Error(), "attemptFailed"))
	span.SetStatus(codes.Error, secret.Error())
	span.End()
	got := rec.Ended()[0]
	if got.Status().Code != codes.Error || got.Status().Description != "ApplicationError attemptFailed" {
		t.Fatalf("status %+v", got.Status())
	}
	for _, ev := range got.Events() {
		for _, a := range ev.Attributes {
			if strings.Contains(a.Value.Emit(), "s3cr3t") || strings.Contains(a.Value.Emit(), "patient") {
				t.Fatalf("event %s holds the message: %v", ev.Name, a)
			}
		}
	}
	if len(got.Events()) != 1 {
		t.Fatalf("events %v, want the one exception", got.Events())
	}
}

// A resource attribute list that does not parse is a usage mistake naming
// the variable, like the others.
func TestSetupRefusesBadResourceAttributes(t *testing.T) {
	t.Setenv(EnvEndpoint, "http://127.0.0.1:1")
	t.Setenv(EnvResourceAttrs, "no-equals-sign")
	_, err := Setup(context.Background(), "hookrelay-test")
	if !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), EnvResourceAttrs) {
		t.Fatalf("%v, want a usage mistake naming %s", err, EnvResourceAttrs)
	}
}
