package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/tracing"
)

// The collector receives what hookrelay's OTLP/HTTP exporter sends, as
// the environment configures it.
func TestCollectorReceivesExports(t *testing.T) {
	c := NewCollectorT(t)
	env := map[string]string{tracing.EnvEndpoint: c.URL, tracing.EnvServiceName: "collector-test"}
	for k, v := range env {
		t.Setenv(k, v) // the exporter reads them too
	}
	cfg, err := tracing.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || !cfg.Enabled {
		t.Fatalf("%+v %v", cfg, err)
	}
	tr, err := tracing.Start(context.Background(), cfg, "default-name")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tracing.Tracer(tr.Provider(), "test").Start(context.Background(), "exported")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := c.Spans()
	if len(got) != 1 || got[0].Name != "exported" || got[0].Service != "collector-test" || got[0].TraceID != span.SpanContext().TraceID().String() {
		t.Fatalf("collected %+v", got)
	}
}
