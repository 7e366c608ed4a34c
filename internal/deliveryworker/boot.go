package deliveryworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/endpointsource"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/tracing"
	"github.com/hookrelay/hookrelay/internal/version"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// Boot is how a process that runs deliveries starts, after its flags are
// checked: the worker command, and `starter serve` with or without its
// hosted worker. Start opens, in order, tracing (the last check: a bad
// OTEL_* variable is a usage mistake too), the JSON log, the endpoint
// source, the metrics server, pprof and the Temporal client.
type Boot struct {
	// Service names the process in traces: hookrelay-worker, hookrelay-api.
	Service string
	// Conn is where Temporal is; Start sets its tracer provider and, with
	// MetricsListen, its metrics handler.
	Conn *temporalclient.Options
	// Endpoints says where endpoints are read from, under Rules.
	Endpoints cmdline.Endpoints
	Rules     endpointsource.Rules
	// Log says where the delivery log is: --log-db, else the
	// --endpoints-db database, else none.
	Log LogOptions
	// CheckSecrets requires every secret of an endpoints file to resolve:
	// only a process that signs needs them.
	CheckSecrets bool
	PProf        cmdline.PProf
	// MetricsListen serves Prometheus metrics on this address ("": none);
	// MetricsWarning (from metrics.CheckListen) is logged at start.
	MetricsListen, MetricsWarning string
	// MetricsEndpointLabels bounds the endpoint label's values (0: the default).
	MetricsEndpointLabels int
	// Warn logs the host's own start-up warnings once the log exists.
	Warn func(*slog.Logger)
	// Lazy dials Temporal on first use rather than at start.
	Lazy bool
	// LogRetention is the delivery log's retention, run daily by the
	// process when it has a log and RunRetention is set (startRetention).
	LogRetention deliverylog.RetentionOptions
	// RunRetention: this process takes its turn at the delivery log's daily
	// retention (the worker does; starter serve, which takes no retention
	// flags, does not).
	RunRetention bool
	// AuditDB is the audit trail's database, pruned by this process's
	// retention runs: --audit-db, else --endpoints-db's ("" with neither).
	AuditDB string
}

// Process is what Boot.Start opened; Close releases it in reverse order,
// flushing traces last.
type Process struct {
	Logger    *slog.Logger
	Tracing   *tracing.Tracing
	Endpoints endpointsource.Endpoints
	Client    temporalclient.Conn
	// Log is the delivery log; nil when the process has none.
	Log     *deliverylog.Log
	closers []func()
}

// Close releases what Start opened, last first.
func (p *Process) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

func (p *Process) onClose(f func()) { p.closers = append(p.closers, f) }

// Start opens the process's parts; on an error it closes what it opened.
func (b Boot) Start(ctx context.Context) (_ *Process, err error) {
	tr, err := tracing.Setup(ctx, b.Service)
	if err != nil {
		return nil, err
	}
	p := &Process{Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil)), Tracing: tr}
	p.onClose(func() { tr.Flush(p.Logger) })
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	b.Conn.TracerProvider = tr.Provider()
	if b.MetricsWarning != "" {
		p.Logger.Warn(b.MetricsWarning, "metrics_listen", b.MetricsListen)
	}
	if b.Warn != nil {
		b.Warn(p.Logger)
	}
	// Attempts resolve through the registry's cache, at most --endpoints-cache-ttl stale.
	if p.Endpoints, err = endpointsource.Open(ctx, b.Endpoints, b.Conn, b.Rules, b.CheckSecrets, p.Logger); err != nil {
		return nil, err
	}
	p.onClose(p.Endpoints.Close)
	if err := b.openLog(ctx, p); err != nil {
		return nil, err
	}
	if err := b.serveMetrics(ctx, p); err != nil {
		return nil, err
	}
	if err := b.PProf.Serve(ctx, p.Logger); err != nil {
		return nil, err
	}
	if b.Lazy {
		p.Client, err = temporalclient.ConnectLazy(*b.Conn, p.Logger)
	} else {
		p.Client, err = temporalclient.Connect(ctx, *b.Conn, p.Logger)
	}
	if err != nil {
		return nil, err
	}
	p.onClose(p.Client.Close)
	return p, nil
}

// serveMetrics serves GET /metrics and GET /healthz on b.MetricsListen, if
// set, and has the Temporal client report there.
func (b Boot) serveMetrics(ctx context.Context, p *Process) error {
	if b.MetricsListen == "" {
		return nil
	}
	reg := metrics.New(b.MetricsEndpointLabels)
	p.onClose(func() { reg.Close() })
	addr, err := reg.Serve(ctx, b.MetricsListen, p.Logger)
	if err != nil {
		return err
	}
	b.Conn.MetricsHandler = reg.Handler()
	p.Logger.Info("metrics serving", "addr", addr)
	return nil
}

// NewWorker registers the search attributes a bare dev server lacks (a
// worker needs Temporal at start) and builds, but does not start, a worker
// on conn's task queue over the process's client, endpoints and delivery
// log.
func (p *Process) NewWorker(ctx context.Context, conn *temporalclient.Options, o Options) (*Worker, error) {
	if err := temporalclient.EnsureSearchAttributes(ctx, p.Client.Client, conn.Namespace, workflows.SearchAttributes); err != nil {
		return nil, err
	}
	return New(Deps{Client: p.Client.Client, Namespace: conn.Namespace, TaskQueue: conn.TaskQueue,
		Endpoints: p.Endpoints.Source, Logger: p.Logger, Metrics: conn.MetricsHandler, Sealed: temporalclient.Sealed(p.Client.DataConverter),
		TracerProvider: p.Tracing.Provider(), Log: p.Log, DataConverter: p.Client.DataConverter}, o)
}

// Run is the worker command after its flags: it boots the process, starts
// a worker and runs it until ctx is done, then stops it, letting in-flight
// attempts finish within o.ShutdownTimeout. A fatal worker error ends the
// run with it, rather than leaving a process that looks healthy but no
// longer polls.
func Run(ctx context.Context, b Boot, o Options) error {
	p, err := b.Start(ctx)
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	fatal := errors.New("worker stopped polling")
	o.OnFatalError = func(err error) { stop(fmt.Errorf("%w: %w", fatal, err)) }
	w, err := p.NewWorker(ctx, b.Conn, o)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	conn := b.Conn
	p.Logger.Info("worker started", "version", version.String(), "task_queue", conn.TaskQueue,
		"namespace", conn.Namespace, "endpoints", p.Endpoints.Count(), "pid", os.Getpid(),
		"encrypted", !conn.InsecurePlaintext, "temporal_security", conn.Mode(), "allow_cidr", o.AllowCIDRs, "https_only", o.HTTPSOnly, "use_env_proxy", o.UseEnvProxy,
		"max_concurrent_attempts", o.MaxConcurrentAttempts, "pollers", o.Pollers, "attempts_per_second", o.AttemptsPerSecond,
		"tracing", p.Tracing.Enabled(), "delivery_log", logDialect(p.Log))
	<-ctx.Done()
	if err := context.Cause(ctx); errors.Is(err, fatal) {
		p.Logger.Error("worker failed", "error", err.Error())
		w.Stop()
		return err
	}
	p.Logger.Info("worker stopping: no new work; in-flight attempts may finish", "shutdown_timeout", o.ShutdownTimeout.String())
	w.Stop()
	p.Logger.Info("worker stopped")
	return nil
}

// logDialect names the delivery log's database kind, or "off".
func logDialect(l *deliverylog.Log) string {
	if l == nil {
		return "off"
	}
	return l.Dialect()
}
