// Command bench measures hookrelay end to end on a real Temporal server:
// deliveries per second, latency from submission to the receiver's verified
// 2xx, billable Temporal actions per delivery and worker memory, beside a
// lean baseline (one workflow, one activity that POSTs) on the same server
// and receiver. With --mode park it parks deliveries in backoff and shows
// what waiting costs a worker, and that the server holds the timers. With
// --mode drain an outage parks deliveries behind an endpoint's open circuit
// and the health workflow drains them; --mode absorb measures the failure
// reports one endpoint's health workflow takes. With --compare REV the
// throughput mode measures worker and starter built at another git revision
// beside the working tree's, in alternating rounds on the same server.
//
//	go run ./bench [flags]                (make bench)
//	go run ./bench --mode park [flags]    (make bench-park)
//	go run ./bench --mode drain [flags]   (make bench-drain)
//	go run ./bench --mode absorb [flags]  (make bench-absorb)
//
// It starts a dev server from bin/temporal (or uses TEMPORAL_ADDRESS, or
// the server HOOKRELAY_TEST_SERVER names, as the tests choose it: package
// testenv), a loopback receiver, starter serve and worker processes built
// from this repository, prints the figures and writes them as JSON (--out).
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

func main() {
	cmdline.Main("bench", func(ctx context.Context, args []string) error {
		err := run(ctx, args, os.Stdout)
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("interrupted; every process it started is stopped: %w", err)
		}
		return err
	})
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == leanWorkerCommand {
		return runLeanWorker(ctx, args[1:])
	}
	root, err := testenv.Root()
	if err != nil {
		return err
	}
	cfg, err := parseFlags(args, root)
	if err != nil {
		return err
	}
	h, err := newHarness(ctx, cfg, out)
	if err != nil {
		return err
	}
	defer func() {
		for _, e := range h.close() {
			fmt.Fprintln(out, "   warning:", e)
		}
	}()
	hd := newHeader(cfg, h, args)
	var report any
	switch cfg.mode {
	case modeThroughput:
		r := &throughputReport{header: hd}
		report, err = r, runMode(ctx, h, out, r, runThroughput, printThroughput)
	case modePark:
		r := &parkReport{header: hd}
		report, err = r, runMode(ctx, h, out, r, runPark, printPark)
	case modeDrain:
		r := &drainReport{header: hd}
		report, err = r, runMode(ctx, h, out, r, runDrain, printDrain)
	case modeAbsorb:
		r := &absorbReport{header: hd}
		report, err = r, runMode(ctx, h, out, r, runAbsorb, printAbsorb)
	}
	if err != nil {
		return err
	}
	// A request the receiver could not verify is a figure here; the tests fail on one.
	if err := h.rc.Verified(); err != nil {
		fmt.Fprintln(out, "   warning:", err)
	}
	if err := writeJSON(cfg.out, report); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nfigures written to %s; process logs in %s\n", rel(root, cfg.out), hd.LogDir)
	return nil
}

// runMode measures a mode into its report r, then records the machine's
// load at the end and shows r.
func runMode[R interface{ finish() }](ctx context.Context, h *harness, out io.Writer, r R, measure func(context.Context, *harness, R) error, show func(io.Writer, R)) error {
	if err := measure(ctx, h, r); err != nil {
		return err
	}
	r.finish()
	show(out, r)
	return nil
}

var round, ratio = testenv.Round, testenv.Ratio
