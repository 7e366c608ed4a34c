package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/internal/cmdline"
)

// target is a command's subject: one DELIVERY_ID, or every delivery a --query matches.
type target struct {
	query string
	yes   bool
	id    string
}

func (t *target) addFlags(fs *pflag.FlagSet, verb string) {
	fs.StringVar(&t.query, "query", "", "act on every delivery this visibility query matches, e.g. \"HookrelayEndpoint='acme' AND HookrelayStatus='failed'\"")
	fs.BoolVar(&t.yes, "yes", false, "with --query: "+verb+" every match when there is more than one")
}

func (t *target) parse(fs *pflag.FlagSet) error {
	switch {
	case t.query != "" && fs.NArg() > 0:
		return cmdline.Usagef("give a DELIVERY_ID or --query, not both")
	case t.query == "" && fs.NArg() != 1:
		return cmdline.Usagef("give one DELIVERY_ID or --query")
	case t.query == "" && t.yes:
		return cmdline.Usagef("--yes goes with --query")
	case t.query == "":
		id, err := oneID(fs, fs.Name())
		t.id = id
		return err
	}
	return nil
}

func cancel(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	var t target
	fs := newFlags("cancel", &c)
	t.addFlags(fs, "cancel")
	reason := fs.String("reason", "", "why, recorded with the delivery's attempts")
	dc, closeClient, err := c.connect(ctx, fs, args, t.parse)
	if err != nil {
		return err
	}
	defer closeClient()
	if t.query != "" {
		// Only open deliveries can be canceled.
		return bulk(ctx, &c, dc, t, "ExecutionStatus = 'Running' AND ("+t.query+")", "cancel", stdout, func(id string) (string, error) {
			st, err := dc.Cancel(ctx, id, *reason)
			return string(st.Status), err
		})
	}
	st, err := dc.Cancel(ctx, t.id, *reason)
	if err != nil {
		return err
	}
	return c.printState(stdout, st)
}

func retryNow(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	fs := newFlags("retry-now", &c)
	wait := fs.Bool("wait", false, "wait for the attempt and print its outcome")
	reseal := fs.Bool("reseal-plaintext", false, "also act on a delivery whose input did not arrive sealed, re-sealing it (migrations from a deployment without keys only)")
	id, dc, closeClient, err := c.connectTo(ctx, fs, args, "retry-now")
	if err != nil {
		return err
	}
	defer closeClient()
	dc.ResealPlaintext = dc.ResealPlaintext || *reseal // with --insecure-plaintext nothing is sealed
	if !*wait {
		st, err := dc.RetryNow(ctx, id)
		if err != nil {
			return err
		}
		return c.printState(stdout, st)
	}
	a, err := dc.RetryNowWait(ctx, id)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return json.NewEncoder(stdout).Encode(a)
	}
	code := "-"
	if a.StatusCode != 0 {
		code = fmt.Sprint(a.StatusCode)
	}
	fmt.Fprintf(stdout, "attempt %d: %s (status %s, %dms) %s\n", a.Number, a.Outcome, code, a.LatencyMS, a.Error)
	return nil
}

func resend(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	var t target
	fs := newFlags("resend", &c)
	t.addFlags(fs, "resend")
	reseal := fs.Bool("reseal-plaintext", false, "also act on a delivery whose input did not arrive sealed, re-sealing it (migrations from a deployment without keys only)")
	dc, closeClient, err := c.connect(ctx, fs, args, t.parse)
	if err != nil {
		return err
	}
	defer closeClient()
	dc.ResealPlaintext = dc.ResealPlaintext || *reseal // with --insecure-plaintext nothing is sealed
	if t.query != "" {
		return bulk(ctx, &c, dc, t, t.query, "resend", stdout, func(id string) (string, error) {
			s, err := dc.Resend(ctx, id)
			return "resent (run " + s.RunID + ")", err
		})
	}
	if _, err := dc.Resend(ctx, t.id); err != nil {
		return err
	}
	st, err := dc.Status(ctx, t.id)
	if err != nil {
		return err
	}
	return c.printState(stdout, st)
}

// bulk lists the deliveries a query matches, shows the count, insists on
// --yes before touching more than one, then acts on each.
func bulk(ctx context.Context, c *common, dc *deliveries.Client, t target, query, verb string, stdout io.Writer, act func(id string) (string, error)) error {
	matches, err := dc.List(ctx, query)
	if err != nil {
		return err
	}
	countTo := stdout
	if c.output == "json" {
		countTo = os.Stderr // stdout holds only JSON lines
	}
	fmt.Fprintf(countTo, "%d deliveries match\n", len(matches))
	if len(matches) > 1 && !t.yes {
		return fmt.Errorf("%d deliveries match; re-run with --yes to %s all of them", len(matches), verb)
	}
	failed := 0
	for _, m := range matches {
		result, err := act(m.DeliveryID)
		line := struct {
			DeliveryID string `json:"delivery_id"`
			WorkflowID string `json:"workflow_id"` // deprecated: delivery_id's former name
			Result     string `json:"result,omitempty"`
			Error      string `json:"error,omitempty"`
		}{DeliveryID: m.DeliveryID, WorkflowID: m.DeliveryID, Result: result}
		if err != nil {
			failed++
			line.Result, line.Error = "", cmdline.OneLine(err)
		}
		if c.output == "json" {
			json.NewEncoder(stdout).Encode(line)
		} else if err != nil {
			fmt.Fprintf(stdout, "%s\terror: %s\n", m.DeliveryID, line.Error)
		} else {
			fmt.Fprintf(stdout, "%s\t%s\n", m.DeliveryID, result)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d failed to %s", failed, len(matches), verb)
	}
	return nil
}

func list(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	fs := newFlags("list", &c)
	var f deliveries.Filter
	fs.StringVar(&f.Account, "account", "", "only deliveries of events of this account")
	fs.StringVar(&f.Endpoint, "endpoint", "", "only this endpoint id")
	fs.StringVar(&f.EventName, "event-name", "", "only this event name")
	fs.StringVar(&f.Status, "status", "", "only this status: pending, retrying, parked, delivered, failed or canceled")
	fs.DurationVar(&f.Since, "since", 0, "only deliveries started within this long, e.g. 24h")
	query := fs.String("query", "", "a raw visibility query, ANDed with the filters")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	f.Now = time.Now()
	q, err := f.Query()
	if err != nil {
		return cmdline.Usage(err)
	}
	if *query != "" {
		if q != "" {
			q += " AND "
		}
		q += "(" + *query + ")"
	}
	dc, closeClient, err := c.client(ctx, nil)
	if err != nil {
		return err
	}
	defer closeClient()
	found, err := dc.List(ctx, q)
	if err != nil {
		return err
	}
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		for _, l := range found {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DELIVERY ID\tSTATUS\tATTEMPTS\tEVENT\tMAIL LOG\tSTARTED")
	for _, l := range found {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", l.DeliveryID, l.Status, l.Attempts, l.EventName, l.MailLogID, l.StartedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
