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
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/hookrelay/hookrelay/activities"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/netguard"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/version"
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
	endpointsPath := fs.String("endpoints", os.Getenv("HOOKRELAY_ENDPOINTS"), "endpoints YAML file (env HOOKRELAY_ENDPOINTS)")
	stopTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long in-flight attempts may take to finish")
	allowCIDRs := fs.StringArray("allow-cidr", nil, "admit this otherwise refused range, such as 127.0.0.0/8 for local testing (repeatable)")
	httpsOnly := fs.Bool("https-only", false, "refuse endpoints with plain http URLs")
	useEnvProxy := fs.Bool("use-env-proxy", false, "send attempts through the proxy in HTTPS_PROXY/HTTP_PROXY/NO_PROXY")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *endpointsPath == "" {
		return errors.New("--endpoints: required (or set HOOKRELAY_ENDPOINTS)")
	}
	if *stopTimeout <= 0 {
		return errors.New("--shutdown-timeout: must be positive")
	}
	allow, err := netguard.ParseCIDRs(*allowCIDRs)
	if err != nil {
		return fmt.Errorf("--allow-cidr: %w", err)
	}
	if err := conn.Validate(); err != nil {
		return err
	}

	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var endpointRules []endpoint.Option
	if *httpsOnly {
		endpointRules = append(endpointRules, endpoint.HTTPSOnly())
	}
	endpoints, err := endpoint.OpenFile(*endpointsPath, endpointRules...)
	if err != nil {
		return err
	}
	if err := endpoints.Config().CheckSecrets(); err != nil {
		return fmt.Errorf("endpoints file %s: %w", *endpointsPath, err)
	}
	endpoints.OnError = func(err error) { logger.Error("endpoints file reload failed", "error", err.Error()) }

	c, err := temporalclient.Dial(ctx, conn, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := temporalclient.EnsureSearchAttributes(ctx, c, conn.Namespace, workflows.SearchAttributes); err != nil {
		return err
	}

	httpClient := activities.NewHTTPClient(activities.HTTPOptions{Guard: netguard.New(allow...), UseEnvProxy: *useEnvProxy})
	w := worker.New(c, conn.TaskQueue, worker.Options{WorkerStopTimeout: *stopTimeout})
	workflows.Register(w)
	w.RegisterActivityWithOptions(activities.New(endpoints, httpClient).Attempt, activity.RegisterOptions{Name: workflows.AttemptActivityName})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	logger.Info("worker started", "version", version.String(), "task_queue", conn.TaskQueue,
		"namespace", conn.Namespace, "endpoints", len(endpoints.Config().Endpoints), "pid", os.Getpid(),
		"encrypted", !conn.InsecurePlaintext, "temporal_security", conn.Mode(), "allow_cidr", *allowCIDRs, "https_only", *httpsOnly, "use_env_proxy", *useEnvProxy)
	<-ctx.Done()
	logger.Info("worker stopping: no new work; in-flight attempts may finish", "shutdown_timeout", stopTimeout.String())
	w.Stop()
	logger.Info("worker stopped")
	return nil
}
