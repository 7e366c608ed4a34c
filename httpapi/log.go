package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookrelay/hookrelay/internal/tracing"
)

// requestLog collects what handlers add to a request's one log line.
type requestLog struct {
	mu    sync.Mutex
	attrs []slog.Attr
}

type requestLogKey struct{}

// annotate adds attributes to the request's log line. Only ids, counts and
// field names belong here: never a body, a payload value or a header value.
func annotate(r *http.Request, attrs ...slog.Attr) {
	if l, ok := r.Context().Value(requestLogKey{}).(*requestLog); ok {
		l.mu.Lock()
		l.attrs = append(l.attrs, attrs...)
		l.mu.Unlock()
	}
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests writes one line per request: route pattern (not the raw path),
// status, duration and the handler's annotations. Probes log at debug.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		l := &requestLog{}
		probe := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
		// One request value for the mux and this log line: the mux sets its Pattern.
		r = r.WithContext(context.WithValue(r.Context(), requestLogKey{}, l))
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)

		level := slog.LevelInfo
		switch {
		case probe:
			level = slog.LevelDebug
		case rec.status >= 500:
			level = slog.LevelWarn
		}
		route := r.Pattern // set by the mux on this request
		if route == "" || route == "/" {
			route = "unmatched"
		}
		l.mu.Lock()
		attrs := append([]slog.Attr{
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", rec.status),
			slog.Int64("duration_ms", time.Since(start).Milliseconds()),
		}, l.attrs...)
		l.mu.Unlock()
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

// traced runs h in a server span when tracing is on. authed calls it once
// the caller is authenticated, so a stranger neither creates spans nor, with
// a sampled traceparent, forces sampling.
func (s *Server) traced(h http.HandlerFunc) http.HandlerFunc {
	if s.tracer == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, span := s.span(r)
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r.WithContext(ctx))
		endSpan(span, r, rec.status)
	}
}

// span starts a request's server span, continuing the caller's trace
// (traceparent). Its name and attributes come from the method and, once
// routed, the route pattern: never the raw path (ids), the query or a
// header value.
func (s *Server) span(r *http.Request) (context.Context, trace.Span) {
	ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method)))
}

// endSpan names the span by its route and records the status.
func endSpan(span trace.Span, r *http.Request, status int) {
	if !span.IsRecording() {
		return
	}
	if route := r.Pattern; route != "" && route != "/" {
		span.SetName(r.Method + " " + route)
		span.SetAttributes(attribute.String("http.route", route))
	}
	if status == 0 {
		status = http.StatusOK
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	span.End()
}
