// Command worker runs DeliveryWorkflow and the attempt activity. Any number
// of worker processes on one task queue share the deliveries.
//
//	worker --endpoints FILE [flags]                  run deliveries
//	worker codec-server --listen ADDR [flags]        serve the payload codec to the Temporal UI and CLI
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/deliveryworker"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/version"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "codec-server" {
		err = runCodecServer(ctx, os.Args[2:])
	} else {
		err = run(ctx, os.Args[1:])
	}
	stop()
	if err != nil && !errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	var conn temporalclient.Options
	conn.AddFlags(fs)
	var opts deliveryworker.Options
	opts.AddFlags(fs, "")
	endpointsPath := fs.String("endpoints", os.Getenv("HOOKRELAY_ENDPOINTS"), "endpoints YAML file (env HOOKRELAY_ENDPOINTS)")
	metricsListen := fs.String("metrics-listen", os.Getenv("HOOKRELAY_METRICS_LISTEN"), "serve Prometheus GET /metrics and GET /healthz on this address (env HOOKRELAY_METRICS_LISTEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *endpointsPath == "" {
		return errors.New("--endpoints: required (or set HOOKRELAY_ENDPOINTS)")
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	if err := conn.Validate(); err != nil {
		return err
	}

	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	endpoints, err := opts.OpenEndpoints(*endpointsPath, logger)
	if err != nil {
		return err
	}
	if *metricsListen != "" {
		reg := metrics.New()
		defer reg.Close()
		addr, err := reg.Serve(ctx, *metricsListen, logger)
		if err != nil {
			return err
		}
		conn.MetricsHandler = reg.Handler()
		logger.Info("metrics serving", "addr", addr)
	}

	c, err := temporalclient.Dial(ctx, conn, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := temporalclient.EnsureSearchAttributes(ctx, c, conn.Namespace, workflows.SearchAttributes); err != nil {
		return err
	}
	// A fatal worker error ends the process with it, rather than leaving a
	// process that looks healthy but no longer polls.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	fatal := errors.New("worker stopped polling")
	opts.OnFatalError = func(err error) { stop(fmt.Errorf("%w: %w", fatal, err)) }
	w, err := deliveryworker.New(c, conn.TaskQueue, endpoints, opts)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	logger.Info("worker started", "version", version.String(), "task_queue", conn.TaskQueue,
		"namespace", conn.Namespace, "endpoints", len(endpoints.Config().Endpoints), "pid", os.Getpid(),
		"encrypted", !conn.InsecurePlaintext, "temporal_security", conn.Mode(), "allow_cidr", opts.AllowCIDRs, "https_only", opts.HTTPSOnly, "use_env_proxy", opts.UseEnvProxy,
		"max_concurrent_attempts", opts.MaxConcurrentAttempts, "pollers", opts.Pollers, "attempts_per_second", opts.AttemptsPerSecond)
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
