package tracing

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
)

// Interceptor is the Temporal SDK's OpenTelemetry interceptor recording
// with tp, for a client's options: the SDK also uses it for the workers
// built on that client. It carries the span context in the
// "_tracer-data" header of workflow starts, activities and signals (a
// header is no billable action), and records workflow spans only when not
// replaying, so it changes no command a workflow issues. Its spans name
// an error's kind, never its message.
func Interceptor(tp trace.TracerProvider) (interceptor.Interceptor, error) {
	i, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer:            tp.Tracer("go.temporal.io/sdk"),
		TextMapPropagator: Propagator,
		DisableBaggage:    true,
		SpanStarter: func(ctx context.Context, t trace.Tracer, name string, opts ...trace.SpanStartOption) trace.Span {
			_, span := t.Start(ctx, name, opts...)
			return &errorKindSpan{Span: span}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("tracing: Temporal interceptor: %w", err)
	}
	return i, nil
}

// errorKindSpan keeps error messages out of a span: the SDK's interceptor
// records a failed workflow's or activity's error, whose message may quote
// a URL or decoded data; the span gets its kind instead.
type errorKindSpan struct {
	trace.Span
	kind string
}

func (s *errorKindSpan) RecordError(err error, _ ...trace.EventOption) {
	if err == nil {
		return
	}
	s.kind = ErrorKind(err)
	s.Span.AddEvent("exception", trace.WithAttributes(attribute.String("exception.type", s.kind)))
}

func (s *errorKindSpan) SetStatus(code codes.Code, _ string) {
	if code != codes.Error {
		s.Span.SetStatus(code, "")
		return
	}
	s.Span.SetStatus(codes.Error, s.kind)
}

// ErrorKind names what kind of error err is, without its message: a
// Temporal failure's type (an application error's type, a timeout's kind),
// else the Go type.
func ErrorKind(err error) string {
	var (
		app      *temporal.ApplicationError
		timeout  *temporal.TimeoutError
		canceled *temporal.CanceledError
		panicked *temporal.PanicError
	)
	switch {
	case errors.As(err, &timeout):
		return "TimeoutError " + timeout.TimeoutType().String()
	case errors.As(err, &canceled):
		return "CanceledError"
	case errors.As(err, &panicked):
		return "PanicError"
	case errors.As(err, &app):
		return "ApplicationError " + app.Type()
	case errors.Is(err, context.DeadlineExceeded):
		return "context deadline exceeded"
	case errors.Is(err, context.Canceled):
		return "context canceled"
	default:
		return fmt.Sprintf("%T", err)
	}
}
