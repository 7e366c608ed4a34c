// Command worker runs DeliveryWorkflow and the attempt activity. Any number
// of worker processes on one task queue share the deliveries.
//
//	worker (--endpoints FILE | --endpoints-db DSN) [--log-db DSN] [flags]   run deliveries
//	worker codec-server --listen ADDR [flags]        serve the payload codec to the Temporal UI and CLI
package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/deliveryworker"
	"github.com/hookrelay/hookrelay/internal/endpointsource"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/temporalclient"
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
	b := deliveryworker.Boot{Service: "hookrelay-worker", Conn: &temporalclient.Options{}, CheckSecrets: true}
	b.Conn.AddFlags(fs)
	var opts deliveryworker.Options
	opts.AddFlags(fs)
	cmdline.ShutdownTimeout(fs, &opts.ShutdownTimeout)
	b.Endpoints.AddFlags(fs)
	b.Log.AddFlags(fs, true)
	var bounds endpoint.Bounds
	endpointsource.AddBoundsFlags(fs, &bounds)
	cmdline.String(fs, &b.MetricsListen, "metrics-listen", "HOOKRELAY_METRICS_LISTEN", "", "serve Prometheus GET /metrics and GET /healthz on this address")
	cmdline.Int(fs, &b.MetricsEndpointLabels, "metrics-endpoint-labels", "HOOKRELAY_METRICS_ENDPOINT_LABELS", metrics.DefaultEndpointLabels,
		"endpoints with a metrics label of their own, the first to carry traffic; the rest are counted as \"other\"")
	b.PProf.AddFlags(fs)
	b.LogRetention.AddFlags(fs)
	b.RunRetention = true
	cmdline.String(fs, &b.AuditDB, "audit-db", "HOOKRELAY_AUDIT_DB", "",
		"the audit trail's database, kept as long as the delivery log's records and pruned with them (default: --endpoints-db's)")
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	if err := check(fs, &b, opts); err != nil {
		return err
	}
	if err := endpointsource.CheckBounds(bounds); err != nil {
		return err
	}
	b.Rules = opts.Rules()
	opts.LogWriteTimeout, opts.LogReconcileEvery = b.Log.WriteTimeout, b.Log.ReconcileEvery
	b.Rules.Bounds = bounds
	return deliveryworker.Run(ctx, b, opts)
}

// check checks the flags, before anything is opened or dialled.
func check(fs *pflag.FlagSet, b *deliveryworker.Boot, opts deliveryworker.Options) error {
	if err := b.PProf.Check(); err != nil {
		return err
	}
	if err := b.Endpoints.Check(fs, true); err != nil {
		return err
	}
	if err := b.LogRetention.Check(fs); err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return cmdline.Usage(err)
	}
	if err := b.Conn.Validate(); err != nil {
		return cmdline.Usage(err)
	}
	if err := b.Log.Check(b.Conn); err != nil {
		return err
	}
	if b.MetricsEndpointLabels < 1 {
		return cmdline.Usagef("--metrics-endpoint-labels: %d is not a positive count", b.MetricsEndpointLabels)
	}
	if b.MetricsListen != "" {
		admitted, _ := netguard.ParseCIDRs(opts.AllowCIDRs) // checked by opts.Validate
		var err error
		if b.MetricsWarning, err = metrics.CheckListen(b.MetricsListen, admitted); err != nil {
			return cmdline.Usage(err)
		}
	}
	return nil
}
