package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/workflows"
)

// recoverUsage is the recovery commands' part of `starter endpoint`.
const recoverUsage = `  starter endpoint recover ENDPOINT_ID --account ID --since TIME [--until TIME] [--wait] [--output text|json]
  starter endpoint test ENDPOINT_ID --account ID --event NAME [--output text|json]
recover resends, once each, the endpoint's deliveries that ended failed and were created in the window
(RFC 3339 times), as the delivery log lists them, paced at its drain_per_second, by the workers that keep
the log; test delivers an example event with fake data and "test": true. Both talk to Temporal, like the
health commands, and take the connection flags and --endpoints or --endpoints-db.`

// endpointRecover is `starter endpoint recover|test ID`.
func endpointRecover(ctx context.Context, name string, args []string, stdout io.Writer) error {
	var c common
	fs := newFlags("endpoint "+name, &c)
	var src cmdline.Endpoints
	src.AddFlags(fs)
	account := fs.String("account", "", "the account whose endpoint this is (required)")
	var since, until, eventName string
	var wait bool
	if name == "recover" {
		fs.StringVar(&since, "since", "", "resend deliveries created at or after this RFC 3339 time (required)")
		fs.StringVar(&until, "until", "", "and before this RFC 3339 time (default: when the recovery starts)")
		fs.BoolVar(&wait, "wait", false, "wait for the recovery to end and print its counts")
	} else {
		fs.StringVar(&eventName, "event", "", "the example event's name (required): one of "+fmt.Sprint(event.Names))
	}
	if err := c.parse(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cmdline.Usagef("endpoint %s takes one ENDPOINT_ID", name)
	}
	if err := event.CheckAccountID(*account); err != nil {
		return cmdline.Usagef("--account: %q %v", *account, err)
	}
	var from, to time.Time
	if name == "recover" {
		var err error
		if from, to, err = recoverFlags(since, until); err != nil {
			return err
		}
	} else if !event.Known(eventName) {
		return cmdline.Usagef("--event: %q is not one of %v", eventName, event.Names)
	}
	_, dc, closeAll, err := c.endpointClient(ctx, fs, src)
	if err != nil {
		return err
	}
	defer closeAll()
	if name == "test" {
		started, err := dc.SendTest(ctx, *account, fs.Arg(0), eventName)
		if err != nil {
			return err
		}
		return printAs(&c, stdout, started, func(w io.Writer, s deliveries.Started) { fmt.Fprintf(w, "started   %s\n", s.DeliveryID) })
	}
	return runRecover(ctx, &c, dc, *account, fs.Arg(0), from, to, wait, stdout)
}

// recoverFlags checks --since and --until, naming the flag at fault.
func recoverFlags(since, until string) (from, to time.Time, err error) {
	if since == "" {
		return from, to, cmdline.Usagef("--since: required, an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	if from, err = time.Parse(time.RFC3339Nano, since); err != nil {
		return from, to, cmdline.Usagef("--since: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", since)
	}
	if from.After(time.Now()) {
		return from, to, cmdline.Usagef("--since: %s is in the future", since)
	}
	if until != "" {
		if to, err = time.Parse(time.RFC3339Nano, until); err != nil {
			return from, to, cmdline.Usagef("--until: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", until)
		}
		if !to.After(from) {
			return from, to, cmdline.Usagef("--until: %s is not after --since %s", until, since)
		}
	}
	return from, to, nil
}

func runRecover(ctx context.Context, c *common, dc *deliveries.Client, account, endpointID string, from, to time.Time, wait bool, stdout io.Writer) error {
	id, err := dc.Recover(ctx, account, endpointID, from, to)
	if err != nil {
		return err
	}
	var st workflows.RecoverState
	if wait {
		st, err = dc.WaitRecovery(ctx, account, id)
	} else {
		st, err = dc.Recovery(ctx, account, id)
	}
	if err != nil {
		return fmt.Errorf("recovery %s started: %w", id, err)
	}
	return printAs(c, stdout, st, printRecovery)
}

func printRecovery(w io.Writer, st workflows.RecoverState) {
	fmt.Fprintf(w, "recovery  %s\nendpoint  %s\nwindow    %s to %s\nstate     %s\nmatched   %d\nresent    %d\nskipped   %d\n",
		st.RecoverID, st.EndpointID, st.Since.UTC().Format(time.RFC3339), st.Until.UTC().Format(time.RFC3339), st.State, st.Matched, st.Resent, st.Skipped)
	for _, s := range st.SkippedDeliveries {
		fmt.Fprintf(w, "  %s  %s\n", s.DeliveryID, s.Reason)
	}
}
