package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/endpointsource"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

const endpointUsage = `usage:
  starter endpoint create --account ID --url URL --events NAME[,NAME...] [--description TEXT] [--timeout 15s] [--retry-schedule 5s,5m,...] [--enabled=false] [--trace-context]
  starter endpoint list --account ID [--limit N] [--cursor CURSOR]
  starter endpoint show --account ID ENDPOINT_ID
  starter endpoint update --account ID ENDPOINT_ID [--url URL] [--events ...] [--description TEXT] [--timeout D] [--retry-schedule ...] [--enabled=true|false] [--trace-context=true|false]
  starter endpoint delete --account ID ENDPOINT_ID
  starter endpoint rotate-secret --account ID ENDPOINT_ID [--overlap 24h]
Each takes --endpoints-db DSN and --codec-key-file FILE (or their environment variables) and --output text|json;
create and update also --allow-cidr and --https-only, the rules registration checks URLs by, and the
flags that narrow the bounds on endpoint values (--max-attempt-timeout, --max-in-flight-limit, ...).
Secrets are printed only by create and rotate-secret.
` + healthUsage + "\n" + recoverUsage

// endpointCommand is `starter endpoint ...`: the endpoint registry managed
// directly in its database, as the HTTP API manages it.
func endpointCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return cmdline.Usagef("endpoint: no command given\n%s", endpointUsage)
	}
	cmds := map[string]func(ctx context.Context, e *endpointFlags, fs *pflag.FlagSet, stdout io.Writer) error{
		"create": endpointCreate, "list": endpointList, "show": endpointShow,
		"update": endpointUpdate, "delete": endpointDelete, "rotate-secret": endpointRotate,
	}
	name := args[0]
	if _, ok := healthCommands[name]; ok {
		return endpointHealth(ctx, name, args[1:], stdout)
	}
	if name == "recover" || name == "test" {
		return endpointRecover(ctx, name, args[1:], stdout)
	}
	run, ok := cmds[name]
	if !ok {
		if name == "help" || name == "-h" || name == "--help" {
			fmt.Fprintln(stdout, endpointUsage)
			return nil
		}
		return cmdline.Usagef("endpoint: unknown command %q\n%s", name, endpointUsage)
	}
	e := &endpointFlags{name: name}
	fs := e.flagSet()
	if err := e.parse(fs, args[1:]); err != nil {
		return err
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	defer e.registry.Close()
	return run(ctx, e, fs, stdout)
}

// endpointFlags are the flags every endpoint command shares, and the fields
// create and update take.
type endpointFlags struct {
	name    string
	db      string
	keys    temporalclient.Options // its key file; for list, the connection to read each endpoint's circuit
	account string
	output  string
	rules   endpointsource.Rules // --allow-cidr and --https-only
	id      string
	fields  struct {
		url, description, timeout string
		events, schedule          []string
		enabled, traceContext     bool
		maxInFlight               int
		rateLimit                 float64
	}
	limit    int
	cursor   string
	overlap  time.Duration
	registry *registry.Registry
}

func (e *endpointFlags) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("starter endpoint "+e.name, pflag.ContinueOnError)
	cmdline.EndpointsDB(fs, &e.db)
	if e.name == "list" {
		e.keys.AddFlags(fs) // the key file, and where Temporal is: list shows each endpoint's circuit
	} else {
		temporalclient.AddCodecKeyFileFlag(fs, &e.keys.CodecKeyFile)
	}
	fs.StringVar(&e.account, "account", "", "the account whose endpoints these are (required)")
	fs.StringVar(&e.output, "output", "text", "output format: text or json")
	switch e.name {
	case "create", "update":
		fs.StringVar(&e.fields.url, "url", "", "where events are POSTed: http or https")
		fs.StringSliceVar(&e.fields.events, "events", nil, `event names the endpoint subscribes to, comma-separated, or "*" for all`)
		fs.StringVar(&e.fields.description, "description", "", "a note for people")
		fs.StringVar(&e.fields.timeout, "timeout", "", "per attempt, such as 15s (default 15s)")
		fs.StringSliceVar(&e.fields.schedule, "retry-schedule", nil, `delays after each failed attempt, such as 5s,5m,30m ("" for a single attempt)`)
		fs.BoolVar(&e.fields.enabled, "enabled", true, "whether events are routed to it")
		fs.BoolVar(&e.fields.traceContext, "trace-context", false, "send the W3C traceparent header with each attempt when tracing is on")
		fs.IntVar(&e.fields.maxInFlight, "max-in-flight", endpoint.DefaultMaxInFlight, fmt.Sprintf("attempts to the endpoint one worker runs at once, 1 to %d", endpoint.MaxMaxInFlight))
		fs.Float64Var(&e.fields.rateLimit, "rate-limit", 0, fmt.Sprintf("at most this many requests a second to the endpoint across every worker, %g to %d; 0 for none", endpoint.MinRateLimit, endpoint.MaxRateLimit))
		fs.StringArrayVar(&e.rules.AllowCIDRs, "allow-cidr", nil, "admit this otherwise refused range for the URL, as the workers do (repeatable)")
		cmdline.StringSlice(fs, &e.rules.AllowPorts, "allow-port", "HOOKRELAY_ALLOW_PORT", "admit this port or range (8443, 1-1023) beyond 443, 80 and 1024-65535, as the workers do (repeatable or comma-separated)")
		fs.BoolVar(&e.rules.HTTPSOnly, "https-only", false, "refuse plain http URLs")
		endpointsource.AddBoundsFlags(fs, &e.rules.Bounds)
	case "list":
		fs.IntVar(&e.limit, "limit", registry.DefaultListLimit, fmt.Sprintf("endpoints per page, 1 to %d", registry.MaxListLimit))
		fs.StringVar(&e.cursor, "cursor", "", "continue a listing from the cursor the last page printed")
	case "rotate-secret":
		fs.DurationVar(&e.overlap, "overlap", registry.DefaultOverlap, "how long the replaced secret keeps signing beside the new one; 0 drops it at once")
	}
	return fs
}

// parse checks the command line, each command's own flags too, before the
// database is opened.
func (e *endpointFlags) parse(fs *pflag.FlagSet, args []string) error {
	maxArgs := 1
	if e.name == "create" || e.name == "list" {
		maxArgs = 0
	}
	if err := cmdline.Parse(fs, args, maxArgs); err != nil {
		return err
	}
	switch {
	case e.output != "text" && e.output != "json":
		return cmdline.Usagef("--output: %q is not text or json", e.output)
	case e.db == "":
		return cmdline.Usagef("--endpoints-db: required (or set %s): the endpoint registry's database", cmdline.EnvEndpointsDB)
	case e.keys.CodecKeyFile == "":
		return cmdline.Usagef("--codec-key-file: required (or set %s): endpoint secrets are stored encrypted with the payload keys", temporalclient.EnvCodecKeyFile)
	case e.account == "":
		return cmdline.Usagef("--account: required")
	case maxArgs == 1 && fs.NArg() != 1:
		return cmdline.Usagef("%s takes one ENDPOINT_ID", e.name)
	}
	if err := event.CheckAccountID(e.account); err != nil {
		return cmdline.Usagef("--account: %v", err)
	}
	if e.name == "create" || e.name == "update" {
		if err := endpointsource.CheckBounds(e.rules.Bounds); err != nil {
			return err
		}
	}
	e.id = fs.Arg(0)
	switch f := e.fieldsFrom(fs); e.name {
	case "create":
		switch {
		case f.URL == nil:
			return cmdline.Usagef("--url: required")
		case f.Events == nil:
			return cmdline.Usagef(`--events: required: event names, or "*" for all`)
		}
	case "update":
		if f == (registry.Fields{}) {
			return cmdline.Usagef("update: give at least one of --url, --events, --description, --timeout, --retry-schedule, --enabled, --trace-context, --max-in-flight, --rate-limit")
		}
	case "list":
		if e.limit < 1 || e.limit > registry.MaxListLimit {
			return cmdline.Usagef("--limit: %d is not between 1 and %d", e.limit, registry.MaxListLimit)
		}
	}
	return nil
}

// open opens the registry; a missing or wrong key file names the flag.
func (e *endpointFlags) open(ctx context.Context) error {
	r, err := endpointsource.OpenRegistry(ctx, e.db, &e.keys, e.rules)
	e.registry = r
	return err
}

// fieldsFrom are the fields given on the command line: update changes
// only those.
func (e *endpointFlags) fieldsFrom(fs *pflag.FlagSet) registry.Fields {
	return registry.Fields{
		URL:           ifChanged(fs, "url", &e.fields.url),
		Events:        ifChanged(fs, "events", &e.fields.events),
		Description:   ifChanged(fs, "description", &e.fields.description),
		Timeout:       ifChanged(fs, "timeout", &e.fields.timeout),
		RetrySchedule: ifChanged(fs, "retry-schedule", &e.fields.schedule),
		Enabled:       ifChanged(fs, "enabled", &e.fields.enabled),
		TraceContext:  ifChanged(fs, "trace-context", &e.fields.traceContext),
		MaxInFlight:   ifChanged(fs, "max-in-flight", &e.fields.maxInFlight),
		RateLimit:     ifChanged(fs, "rate-limit", &e.fields.rateLimit),
	}
}

// ifChanged is v when the flag was given on the command line, else nil.
func ifChanged[T any](fs *pflag.FlagSet, flag string, v *T) *T {
	if !fs.Changed(flag) {
		return nil
	}
	return v
}

// flagError names the flag for a field the registry refused: a mistake on
// the command line (exit 2). Anything else is exit 1.
func flagError(err error) error {
	var fe *event.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field, _, _ := strings.Cut(fe.Field, "[")
	flag := strings.ReplaceAll(field, "_", "-") // max_in_flight: --max-in-flight
	if field == "account_id" {
		flag = "account"
	}
	return cmdline.Usagef("--%s: %s", flag, fe.Problem)
}

func endpointCreate(ctx context.Context, e *endpointFlags, fs *pflag.FlagSet, stdout io.Writer) error {
	entry, secret, err := e.registry.Create(ctx, e.account, e.fieldsFrom(fs))
	if err != nil {
		return flagError(err)
	}
	v := entry.View()
	v.Secret = secret
	return e.print(stdout, v)
}

func endpointList(ctx context.Context, e *endpointFlags, fs *pflag.FlagSet, stdout io.Writer) error {
	page, err := e.registry.List(ctx, e.account, e.limit, e.cursor)
	if err != nil {
		return flagError(err)
	}
	states := e.health(ctx, page.Entries)
	if e.output == "json" {
		enc := json.NewEncoder(stdout)
		for _, entry := range page.Entries {
			line := struct {
				registry.View
				State  string `json:"state,omitempty"`
				Parked *int   `json:"parked,omitempty"`
			}{View: entry.View()}
			if st, ok := states[entry.ID]; ok {
				line.State, line.Parked = string(st.State), &st.Parked
			}
			enc.Encode(line)
		}
		if page.NextCursor != "" {
			enc.Encode(map[string]string{"next_cursor": page.NextCursor})
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENABLED\tSTATE\tPARKED\tEVENTS\tURL\tDESCRIPTION")
	for _, entry := range page.Entries {
		u := *entry.URL
		if u.RawQuery != "" {
			u.RawQuery = "…" // a query may carry a customer's token: show shows it
		}
		state, parked := "-", "-"
		if st, ok := states[entry.ID]; ok {
			state, parked = string(st.State), fmt.Sprint(st.Parked)
		}
		fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%s\t%s\t%s\n", entry.ID, entry.Enabled, state, parked, strings.Join(entry.Events, ","), u.String(), entry.Description)
	}
	tw.Flush()
	if page.NextCursor != "" {
		fmt.Fprintf(stdout, "more: --cursor %s\n", page.NextCursor)
	}
	return nil
}

// health reads each endpoint's circuit and parked count from Temporal's
// visibility (no action); if Temporal does not answer, the list still
// prints, without them, and says why on stderr.
func (e *endpointFlags) health(ctx context.Context, entries []registry.Entry) map[string]workflows.HealthState {
	if len(entries) == 0 {
		return nil
	}
	ids := make([]string, len(entries))
	for i, entry := range entries {
		ids[i] = entry.ID
	}
	c := common{conn: e.keys}
	dc, closeClient, err := c.client(ctx, nil)
	if err == nil {
		defer closeClient()
		var states map[string]workflows.HealthState
		if states, err = dc.EndpointStates(ctx, ids); err == nil {
			return states
		}
	}
	fmt.Fprintln(os.Stderr, "starter: endpoint states unknown:", cmdline.OneLine(err))
	return nil
}

func endpointShow(ctx context.Context, e *endpointFlags, _ *pflag.FlagSet, stdout io.Writer) error {
	entry, err := e.registry.Get(ctx, e.account, e.id)
	if err != nil {
		return flagError(err)
	}
	return e.print(stdout, entry.View())
}

func endpointUpdate(ctx context.Context, e *endpointFlags, fs *pflag.FlagSet, stdout io.Writer) error {
	entry, err := e.registry.Update(ctx, e.account, e.id, e.fieldsFrom(fs))
	if err != nil {
		return flagError(err)
	}
	return e.print(stdout, entry.View())
}

func endpointDelete(ctx context.Context, e *endpointFlags, _ *pflag.FlagSet, stdout io.Writer) error {
	if err := e.registry.Delete(ctx, e.account, e.id); err != nil {
		return flagError(err)
	}
	if e.output == "json" {
		return json.NewEncoder(stdout).Encode(map[string]any{"id": e.id, "deleted": true})
	}
	fmt.Fprintf(stdout, "%s deleted; its open deliveries end with endpoint_deleted at their next attempt\n", e.id)
	return nil
}

func endpointRotate(ctx context.Context, e *endpointFlags, _ *pflag.FlagSet, stdout io.Writer) error {
	rot, err := e.registry.RotateSecret(ctx, e.account, e.id, e.overlap)
	if err != nil {
		return flagError(err)
	}
	if e.output == "json" {
		return json.NewEncoder(stdout).Encode(map[string]any{"secret": rot.Secret, "previous_expires_at": rot.PreviousExpiresAt})
	}
	fmt.Fprintf(stdout, "secret    %s\n", rot.Secret)
	if rot.PreviousExpiresAt != nil {
		fmt.Fprintf(stdout, "previous  signs until %s\n", rot.PreviousExpiresAt.Format(time.RFC3339))
	} else {
		fmt.Fprintln(stdout, "previous  dropped")
	}
	return nil
}

// print shows one endpoint; its secret only when set (create).
func (e *endpointFlags) print(w io.Writer, v registry.View) error {
	if e.output == "json" {
		return json.NewEncoder(w).Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\naccount\t%s\nurl\t%s\nevents\t%s\nenabled\t%t\ntimeout\t%s\nretry_schedule\t%s\n",
		v.ID, v.AccountID, v.URL, strings.Join(v.Events, ","), v.Enabled, v.Timeout, strings.Join(v.RetrySchedule, ","))
	if v.TraceContext {
		fmt.Fprintf(tw, "trace_context\t%t\n", v.TraceContext)
	}
	fmt.Fprintf(tw, "max_in_flight\t%d\n", v.MaxInFlight)
	if v.RateLimit > 0 {
		fmt.Fprintf(tw, "rate_limit\t%g\n", v.RateLimit)
	}
	if v.Description != "" {
		fmt.Fprintf(tw, "description\t%s\n", v.Description)
	}
	if v.Secret != "" {
		fmt.Fprintf(tw, "secret\t%s\t(shown only now)\n", v.Secret)
	}
	return tw.Flush()
}
