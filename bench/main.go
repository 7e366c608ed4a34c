// Command bench measures hookrelay end to end on a real Temporal server:
// deliveries per second, latency from submission to the receiver's verified
// 2xx, billable Temporal actions per delivery and worker memory, beside a
// lean baseline (one workflow, one activity that POSTs) on the same server
// and receiver. With --mode park it parks deliveries in backoff and shows
// what waiting costs a worker, and that the server holds the timers. With
// --mode drain an outage parks deliveries behind an endpoint's open circuit
// and the health workflow drains them; --mode absorb measures the failure
// reports one endpoint's health workflow takes.
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
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	interrupted := ctx.Err() != nil
	stop()
	var usage usageError
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	case interrupted:
		fmt.Fprintln(os.Stderr, "bench: interrupted; every process it started is stopped")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) (err error) {
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
		if err := runThroughput(ctx, h, r); err != nil {
			return err
		}
		r.Machine.LoadAvgEnd = loadavg()
		printThroughput(out, r)
		report = r
	case modePark:
		r := &parkReport{header: hd}
		if err := runPark(ctx, h, r); err != nil {
			return err
		}
		r.Machine.LoadAvgEnd = loadavg()
		printPark(out, r)
		report = r
	case modeDrain:
		r := &drainReport{header: hd}
		if err := runDrain(ctx, h, r); err != nil {
			return err
		}
		r.Machine.LoadAvgEnd = loadavg()
		printDrain(out, r)
		report = r
		if r.Lost > 0 || r.Duplicates > 0 {
			defer func() {
				if err == nil {
					err = fmt.Errorf("drain: %d deliveries lost, %d delivered twice", r.Lost, r.Duplicates)
				}
			}()
		}
	case modeAbsorb:
		r := &absorbReport{header: hd}
		if err := runAbsorb(ctx, h, r); err != nil {
			return err
		}
		r.Machine.LoadAvgEnd = loadavg()
		printAbsorb(out, r)
		report = r
		if r.Deliveries.Lost > 0 || r.Deliveries.Duplicates > 0 || r.SignalsLost() > 0 {
			defer func() {
				if err == nil {
					err = fmt.Errorf("absorb: %d deliveries lost, %d delivered twice, %d failure reports accepted but not in the health workflow's history",
						r.Deliveries.Lost, r.Deliveries.Duplicates, r.SignalsLost())
				}
			}()
		}
	}
	// Every request the receiver got was signed right, or the figures mean nothing.
	if err := h.rc.Verified(); err != nil {
		return err
	}
	if err := writeJSON(cfg.out, report); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nfigures written to %s; process logs in %s\n", rel(root, cfg.out), hd.LogDir)
	return nil
}
