// Command worker runs DeliveryWorkflow and the attempt activity. Any number
// of worker processes on one task queue share the deliveries.
//
//	worker (--endpoints FILE | --endpoints-db DSN) [flags]   run deliveries
//	worker codec-server --listen ADDR [flags]        serve the payload codec to the Temporal UI and CLI
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/deliveryworker"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/tracing"
	"github.com/hookrelay/hookrelay/internal/version"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

func main() {
	cmdline.Main("worker", func(ctx context.Context, args []string) error {
		if len(args) > 0 && args[0] == "codec-server" {
			return runCodecServer(ctx, args[1:])
		}
		return run(ctx, args)
	})
}

func run(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	var conn temporalclient.Options
	conn.AddFlags(fs)
	var opts deliveryworker.Options
	opts.AddFlags(fs)
	cmdline.ShutdownTimeout(fs, &opts.ShutdownTimeout)
	var src cmdline.Endpoints
	src.AddFlags(fs)
	var metricsListen string
	cmdline.String(fs, &metricsListen, "metrics-listen", "HOOKRELAY_METRICS_LISTEN", "", "serve Prometheus GET /metrics and GET /healthz on this address")
	var pprof cmdline.PProf
	pprof.AddFlags(fs)
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	if err := pprof.Check(); err != nil {
		return err
	}
	if err := src.Check(fs, true); err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return cmdline.Usage(err)
	}
	if err := conn.Validate(); err != nil {
		return cmdline.Usage(err)
	}
	var metricsWarning string
	if metricsListen != "" {
		admitted, _ := netguard.ParseCIDRs(opts.AllowCIDRs) // checked by opts.Validate
		var err error
		if metricsWarning, err = metrics.CheckListen(metricsListen, admitted); err != nil {
			return cmdline.Usage(err)
		}
	}

	// Last of the checks, before anything is opened or dialled: a bad
	// OTEL_* variable is a usage mistake too.
	tr, err := tracing.Setup(ctx, "hookrelay-worker")
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	defer tr.Flush(logger)
	conn.TracerProvider = tr.Provider()
	if metricsWarning != "" {
		logger.Warn(metricsWarning, "metrics_listen", metricsListen)
	}
	// Attempts resolve through the registry's cache, at most --endpoints-cache-ttl stale.
	endpoints, err := opts.OpenEndpoints(ctx, src, &conn, true, logger)
	if err != nil {
		return err
	}
	defer endpoints.Close()
	if metricsListen != "" {
		reg := metrics.New()
		defer reg.Close()
		addr, err := reg.Serve(ctx, metricsListen, logger)
		if err != nil {
			return err
		}
		conn.MetricsHandler = reg.Handler()
		logger.Info("metrics serving", "addr", addr)
	}

	if err := pprof.Serve(ctx, logger); err != nil {
		return err
	}

	tc, err := temporalclient.Connect(ctx, conn, logger)
	if err != nil {
		return err
	}
	defer tc.Close()
	c := tc.Client
	if err := temporalclient.EnsureSearchAttributes(ctx, c, conn.Namespace, workflows.SearchAttributes); err != nil {
		return err
	}
	// A fatal worker error ends the process with it, rather than leaving a
	// process that looks healthy but no longer polls.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	fatal := errors.New("worker stopped polling")
	opts.OnFatalError = func(err error) { stop(fmt.Errorf("%w: %w", fatal, err)) }
	w, err := deliveryworker.New(deliveryworker.Deps{Client: c, Namespace: conn.Namespace, TaskQueue: conn.TaskQueue,
		Endpoints: endpoints.Source, Logger: logger, Metrics: conn.MetricsHandler, Sealed: temporalclient.Sealed(tc.DataConverter),
		TracerProvider: tr.Provider()}, opts)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	logger.Info("worker started", "version", version.String(), "task_queue", conn.TaskQueue,
		"namespace", conn.Namespace, "endpoints", endpoints.Count(), "pid", os.Getpid(),
		"encrypted", !conn.InsecurePlaintext, "temporal_security", conn.Mode(), "allow_cidr", opts.AllowCIDRs, "https_only", opts.HTTPSOnly, "use_env_proxy", opts.UseEnvProxy,
		"max_concurrent_attempts", opts.MaxConcurrentAttempts, "pollers", opts.Pollers, "attempts_per_second", opts.AttemptsPerSecond,
		"tracing", tr.Enabled())
	<-ctx.Done()
	if err := context.Cause(ctx); errors.Is(err, fatal) {
		logger.Error("worker failed", "error", err.Error())
		w.Stop()
		return err
	}
	logger.Info("worker stopping: no new work; in-flight attempts may finish", "shutdown_timeout", opts.ShutdownTimeout.String())
	w.Stop()
	logger.Info("worker stopped")
	return nil
}
