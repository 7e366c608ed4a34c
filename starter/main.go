// Command starter submits events to hookrelay, reports and steers deliveries,
// and with serve runs the HTTP API (package httpapi).
// Run "starter help" for its commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/httpapi"
	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/deliveryworker"
	"github.com/hookrelay/hookrelay/internal/endpointsource"
	"github.com/hookrelay/hookrelay/internal/portal"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/secretfile"
	"github.com/hookrelay/hookrelay/internal/tracing"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

const usage = `usage:
  starter send (--endpoints FILE | --endpoints-db DSN) [--event FILE|-] [--output text|json]
  starter status DELIVERY_ID [--output text|json] [--wait]
  starter list [--account ID] [--endpoint ID] [--event-name NAME] [--status STATUS] [--since DURATION] [--query QUERY] [--output text|json]
  starter cancel (DELIVERY_ID | --query QUERY [--yes]) [--reason TEXT] [--output text|json]
  starter retry-now DELIVERY_ID [--wait] [--output text|json]
  starter resend (DELIVERY_ID | --query QUERY [--yes]) [--output text|json]
  starter serve --listen ADDR (--endpoints FILE | --endpoints-db DSN) [--log-db DSN] [--api-token-file FILE | --insecure-no-auth] [--worker [worker flags]]
  starter endpoint create|list|show|update|delete|rotate-secret --account ID --endpoints-db DSN [flags] [--output text|json]
  starter endpoint recover ENDPOINT_ID --account ID --since TIME [--until TIME] [--wait] | test ENDPOINT_ID --account ID --event NAME
  starter deliveries list|show|attempts --account ID [--log-db DSN] [flags] [--output text|json]
  starter registry reseal --endpoints-db DSN [--accept ENDPOINT_ID] [--output text|json]
  starter migrate --db DSN [--grant-to ROLE]
Run "starter COMMAND --help" for a command's flags.`

func main() {
	cmdline.Main("starter", func(ctx context.Context, args []string) error {
		return run(ctx, args, os.Stdin, os.Stdout)
	})
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return cmdline.Usagef("no command given\n%s", usage)
	}
	switch args[0] {
	case "send":
		return send(ctx, args[1:], stdin, stdout)
	case "status":
		return status(ctx, args[1:], stdout)
	case "list":
		return list(ctx, args[1:], stdout)
	case "cancel":
		return cancel(ctx, args[1:], stdout)
	case "retry-now":
		return retryNow(ctx, args[1:], stdout)
	case "resend":
		return resend(ctx, args[1:], stdout)
	case "serve":
		return serve(ctx, args[1:])
	case "endpoint":
		return endpointCommand(ctx, args[1:], stdout)
	case "deliveries":
		return deliveriesCommand(ctx, args[1:], stdout)
	case "registry":
		return registryCommand(ctx, args[1:], stdout)
	case "migrate":
		return migrate(ctx, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return cmdline.Usagef("unknown command %q\n%s", args[0], usage)
	}
}

// common holds the flags every command shares.
type common struct {
	conn   temporalclient.Options
	output string
}

func newFlags(name string, c *common) *pflag.FlagSet {
	fs := pflag.NewFlagSet("starter "+name, pflag.ContinueOnError)
	c.conn.AddFlags(fs)
	fs.StringVar(&c.output, "output", "text", "output format: text or json")
	return fs
}

// parse parses and checks the command's flags; maxArgs bounds its
// positional arguments (-1: the command checks them).
func (c *common) parse(fs *pflag.FlagSet, args []string, maxArgs int) error {
	if err := cmdline.Parse(fs, args, maxArgs); err != nil {
		return err
	}
	if c.output != "text" && c.output != "json" {
		return cmdline.Usagef("--output: %q is not text or json", c.output)
	}
	return cmdline.Usage(c.conn.Validate())
}

func (c *common) client(ctx context.Context, endpoints endpoint.Source) (*deliveries.Client, func(), error) {
	// The SDK logs only problems here: the starter's output is its answer.
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tc, err := temporalclient.Connect(ctx, c.conn, logger)
	if err != nil {
		return nil, nil, err
	}
	return &deliveries.Client{Temporal: tc.Client, Endpoints: endpoints, TaskQueue: c.conn.TaskQueue, DataConverter: tc.DataConverter,
		TracerProvider: c.conn.TracerProvider, ResealPlaintext: c.conn.InsecurePlaintext}, tc.Close, nil
}

func send(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) (err error) {
	var c common
	fs := newFlags("send", &c)
	var src cmdline.Endpoints
	cmdline.EndpointsFile(fs, &src.File)
	cmdline.EndpointsDB(fs, &src.DB)
	eventPath := fs.String("event", "-", "event JSON file, or - for standard input")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := cmdline.OneEndpointsSource(fs, &src.File, &src.DB, true); err != nil {
		return err
	}
	tr, err := tracing.Setup(ctx, "hookrelay-starter")
	if err != nil {
		return err
	}
	defer tr.Flush(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	c.conn.TracerProvider = tr.Provider()
	data, err := readEvent(*eventPath, stdin)
	if err != nil {
		return err
	}
	ev, err := event.Parse(data)
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	endpoints, err := endpointsource.Open(ctx, src, &c.conn, endpointsource.Rules{}, false, nil)
	if err != nil {
		return err
	}
	defer endpoints.Close()
	subscribers, err := endpoints.Source.Route(ctx, ev.AccountID, ev.Name)
	var partial *endpoint.RouteError
	if err != nil && !errors.As(err, &partial) {
		return err
	}
	if partial != nil { // the other endpoints still get the event
		defer func() { err = errors.Join(err, partial) }()
	}
	if len(subscribers) == 0 {
		if ev.AccountID != "" {
			fmt.Fprintf(os.Stderr, "starter: no enabled endpoint of account %s subscribes to %s; nothing to deliver\n", ev.AccountID, ev.Name)
		} else {
			fmt.Fprintf(os.Stderr, "starter: no enabled endpoint subscribes to %s; nothing to deliver\n", ev.Name)
		}
		return nil
	}
	dc, closeClient, err := c.client(ctx, endpoints.Source)
	if err != nil {
		return err
	}
	defer closeClient()
	started, err := dc.PublishTo(ctx, ev, subscribers)
	for _, s := range started {
		if c.output == "json" {
			line, _ := json.Marshal(s)
			fmt.Fprintln(stdout, string(line))
			continue
		}
		verb := "started"
		if s.Duplicate {
			verb = "duplicate, already started"
		}
		fmt.Fprintf(stdout, "%s\t%s (run %s)\n", s.DeliveryID, verb, s.RunID)
	}
	if err != nil {
		return fmt.Errorf("%w (sending the same event again is safe: started deliveries are not duplicated)", err)
	}
	return nil
}

// serveFlags are serve's flags.
type serveFlags struct {
	boot       deliveryworker.Boot
	listen     string
	tokenFile  string
	portal     portal.Options
	noAuth     bool
	auditDB    string
	cfg        httpapi.Config
	hostWorker bool
	logDB      string // the delivery log's database: --log-db, else --endpoints-db
	worker     deliveryworker.Options
	bounds     endpoint.Bounds // what registration and the endpoints file hold endpoints to
}

func (f *serveFlags) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("starter serve", pflag.ContinueOnError)
	f.boot.Conn = &temporalclient.Options{}
	f.boot.Conn.AddFlags(fs)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "host:port the HTTP API listens on")
	f.boot.Endpoints.AddFlags(fs)
	f.boot.Log.AddFlags(fs, true)
	endpointsource.AddBoundsFlags(fs, &f.bounds)
	fs.StringVar(&f.tokenFile, "api-token-file", "", "file holding the admin bearer token, or two on two lines while rotating it (default: env HOOKRELAY_API_TOKEN)")
	fs.BoolVar(&f.noAuth, "insecure-no-auth", false, "serve without authentication, for local testing only")
	cmdline.String(fs, &f.auditDB, "audit-db", "HOOKRELAY_AUDIT_DB", "", "the audit trail's database, postgres://... or sqlite:PATH (default: --endpoints-db's; without either, changes are not recorded)")
	fs.StringVar(&f.cfg.PortalBaseURL, "portal-base-url", "", "where portal session URLs point, https://host[/prefix] (default: each request's own origin)")
	fs.StringVar(&f.portal.FrameAncestors, "portal-frame-ancestors", portal.DefaultFrameAncestors, "the portal's CSP frame-ancestors: origins that may show it in an iframe, such as https://mail.example.com")
	fs.IntVar(&f.cfg.MaxInFlight, "max-in-flight", httpapi.DefaultMaxInFlight, "requests waiting on Temporal at once; more are refused with 503")
	fs.DurationVar(&f.cfg.RequestTimeout, "request-timeout", httpapi.DefaultRequestTimeout, "bound on one request's Temporal calls; past it, 503")
	fs.Float64Var(&f.cfg.AccountRate, "account-rate", httpapi.DefaultAccountRate, "events a second each account may send to POST /v1/events, in this process; over it, 429 and nothing started; 0: no limit")
	fs.IntVar(&f.cfg.AccountBurst, "account-burst", httpapi.DefaultAccountBurst, "events an account may send at once before --account-rate applies")
	cmdline.ShutdownTimeout(fs, &f.cfg.ShutdownTimeout)
	f.boot.PProf.AddFlags(fs)
	fs.BoolVar(&f.hostWorker, "worker", false, "also run a delivery worker in this process, so accepted events start eagerly: "+
		"the first workflow task, and with it the first attempt, runs here without a server round trip; takes the worker's flags")
	f.worker.AddFlags(fs)
	fs.Lookup("https-only").Usage = "refuse endpoints with plain http URLs; with --endpoints-db, registration refuses them unless --https-only=false"
	// The hosted worker's flags had a worker- prefix; those names still work.
	for _, name := range append(deliveryworker.FlagNames, "shutdown-timeout") {
		cmdline.Deprecated(fs, "worker-"+name, name)
	}
	logDBFlag(fs) // after the worker's flags, which may define it
	return fs
}

// check checks serve's flags and reads the API token, before anything is
// opened or dialled.
func (f *serveFlags) check(fs *pflag.FlagSet) error {
	if err := f.boot.Endpoints.Check(fs, true); err != nil {
		return err
	}
	if err := endpointsource.CheckBounds(f.bounds); err != nil {
		return err
	}
	if err := f.boot.PProf.Check(); err != nil {
		return err
	}
	if err := f.boot.Conn.Validate(); err != nil {
		return cmdline.Usage(err)
	}
	if err := f.boot.Log.Check(f.boot.Conn); err != nil {
		return err
	}
	f.worker.ShutdownTimeout = f.cfg.ShutdownTimeout
	f.worker.LogWriteTimeout, f.worker.LogReconcileEvery = f.boot.Log.WriteTimeout, f.boot.Log.ReconcileEvery
	if err := f.worker.Validate(); err != nil {
		return cmdline.Usage(err)
	}
	workerOnly := append(slices.Clone(deliveryworker.FlagNames), "log-write-timeout", "log-reconcile-every")
	if f.boot.Endpoints.DB != "" {
		// With a registry, the network guard's ranges and ports and
		// --https-only also vet URLs at registration, hosted worker or not.
		workerOnly = slices.DeleteFunc(slices.Clone(workerOnly), func(n string) bool { return n == "allow-cidr" || n == "allow-port" || n == "https-only" })
		// Endpoints registered over the API are https unless the operator
		// says otherwise: plain http would carry PHI in the clear.
		if !fs.Changed("https-only") {
			f.worker.HTTPSOnly = true
		}
	}
	if set := cmdline.Changed(fs, workerOnly...); !f.hostWorker && len(set) > 0 {
		return cmdline.Usagef("%s: configures the hosted worker; add --worker", set[0])
	}
	f.logDB = logDSN(fs, f.boot.Endpoints.DB)
	if f.logDB != "" && f.boot.Conn.CodecKeyFile == "" {
		return cmdline.Usagef("--log-db: response excerpts are stored sealed with the payload keys: give --codec-key-file (or set %s)", temporalclient.EnvCodecKeyFile)
	}
	if err := httpapi.CheckPortalBaseURL(f.cfg.PortalBaseURL); err != nil {
		return cmdline.Usagef("--portal-base-url: %v", err)
	}
	h, err := portal.Handler(f.portal)
	if err != nil {
		return cmdline.Usagef("--portal-frame-ancestors: %v", err)
	}
	f.cfg.Portal = h
	token, second, err := apiToken(f.tokenFile, f.noAuth)
	if err != nil {
		return err
	}
	f.cfg.Token, f.cfg.SecondToken, f.cfg.NoAuth = token, second, f.noAuth
	return cmdline.Usage(f.cfg.Validate())
}

func serve(ctx context.Context, args []string) error {
	var f serveFlags
	fs := f.flagSet()
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	if err := f.check(fs); err != nil {
		return err
	}
	f.boot.Service, f.boot.Lazy, f.boot.Rules = "hookrelay-api", true, f.worker.Rules()
	f.boot.Rules.Bounds = f.bounds
	// Only a hosted worker signs, so only then must every secret of a file resolve here.
	f.boot.CheckSecrets = f.hostWorker
	f.boot.Warn = func(logger *slog.Logger) { secretfile.Warn(logger, "--api-token-file", f.tokenFile) }
	p, err := f.boot.Start(ctx)
	if err != nil {
		return err
	}
	defer p.Close() // after the server and the hosted worker have stopped
	if f.hostWorker {
		w, err := p.NewWorker(ctx, f.boot.Conn, f.worker)
		if err != nil {
			return err
		}
		// Started before serving, stopped after the last request is answered.
		if err := w.Start(); err != nil {
			return fmt.Errorf("start the hosted worker: %w", err)
		}
		defer w.Stop()
		p.Logger.Info("hosted worker started", "task_queue", f.boot.Conn.TaskQueue, "allow_cidr", f.worker.AllowCIDRs)
	}
	return f.serveAPI(ctx, p)
}

// serveAPI serves the HTTP API on --listen until ctx is done.
func (f *serveFlags) serveAPI(ctx context.Context, p *deliveryworker.Process) error {
	cfg, conn := f.cfg, f.boot.Conn
	cfg.TracerProvider, cfg.Logger = p.Tracing.Provider(), p.Logger
	if p.Endpoints.Registry != nil {
		cfg.Endpoints = p.Endpoints.Registry
		// A revoked key is refused here at once, and by every other serve
		// process within --endpoints-cache-ttl.
		cfg.Keys = registry.NewKeyCache(p.Endpoints.Registry, f.boot.Endpoints.CacheTTL)
	} else {
		cfg.Endpoints = registry.FileView{File: p.Endpoints.File}
	}
	if f.logDB != "" {
		l, err := openDeliveryLog(ctx, f.logDB, conn, f.boot.Endpoints.NoMigrate)
		if err != nil {
			return err
		}
		defer l.Close() // after the last request is answered
		cfg.DeliveryLog = l
	}
	trail, err := f.openAudit(ctx, p.Logger)
	if err != nil {
		return err
	}
	if trail != nil {
		defer trail.Close()
		cfg.Audit = trail
	}
	dc := &deliveries.Client{Temporal: p.Client.Client, Endpoints: p.Endpoints.Source, TaskQueue: conn.TaskQueue,
		DataConverter: p.Client.DataConverter, EagerStart: f.hostWorker, TracerProvider: p.Tracing.Provider(),
		ResealPlaintext: conn.InsecurePlaintext}
	cfg.Deliveries = dc
	if f.logDB != "" {
		cfg.Recoveries = dc // recoveries page the log, on the workers that keep it
	}
	srv, err := httpapi.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	return srv.Serve(ctx, ln)
}

// openAudit opens the audit trail: --audit-db, else the registry's
// database; nil, with a warning, when there is neither.
func (f *serveFlags) openAudit(ctx context.Context, logger *slog.Logger) (*auditstore.Store, error) {
	dsn := f.auditDB
	if dsn == "" {
		dsn = f.boot.Endpoints.DB
	}
	if dsn == "" {
		logger.Warn("no audit trail: resends and cancels made through the API are not recorded; give --audit-db (or --endpoints-db)")
		return nil, nil
	}
	trail, err := auditstore.Open(ctx, dsn, auditstore.Options{NoMigrate: f.boot.Endpoints.NoMigrate})
	if err != nil {
		return nil, fmt.Errorf("--audit-db: %w", err)
	}
	return trail, nil
}

// apiToken reads the admin token from --api-token-file, else from
// HOOKRELAY_API_TOKEN: one token, or two on two lines while the token is
// rotated (the second is returned as second). With neither, serve refuses
// to start unless told to run without authentication.
func apiToken(file string, noAuth bool) (token, second string, err error) {
	text, from := os.Getenv("HOOKRELAY_API_TOKEN"), "HOOKRELAY_API_TOKEN"
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", "", fmt.Errorf("--api-token-file: %w", err)
		}
		if text, from = string(data), "--api-token-file "+file; strings.TrimSpace(text) == "" {
			return "", "", cmdline.Usagef("--api-token-file %s: the file is empty", file)
		}
	}
	var tokens []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			tokens = append(tokens, line)
		}
	}
	switch {
	case len(tokens) == 0 && !noAuth:
		return "", "", cmdline.Usagef("no API token: give --api-token-file FILE or set HOOKRELAY_API_TOKEN (or --insecure-no-auth for local testing)")
	case len(tokens) > 0 && noAuth:
		return "", "", cmdline.Usagef("--insecure-no-auth: an API token is configured too; drop one of them")
	case len(tokens) > 2:
		return "", "", cmdline.Usagef("%s: %d tokens; give one, or two on two lines while rotating", from, len(tokens))
	case len(tokens) == 0:
		return "", "", nil
	case len(tokens) == 2:
		return tokens[0], tokens[1], nil
	}
	return tokens[0], "", nil
}

func readEvent(path string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--event: %w", err)
		}
		defer f.Close()
		r = f
	}
	// One byte over the limit is enough for event.Parse to refuse it by size.
	data, err := io.ReadAll(io.LimitReader(r, event.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("--event: read: %w", err)
	}
	return data, nil
}

// connect parses a command's flags, has checkArgs check its arguments, and
// only then dials Temporal: bad input never costs a connection.
func (c *common) connect(ctx context.Context, fs *pflag.FlagSet, args []string, checkArgs func(*pflag.FlagSet) error) (*deliveries.Client, func(), error) {
	if err := c.parse(fs, args, -1); err != nil {
		return nil, nil, err
	}
	if err := checkArgs(fs); err != nil {
		return nil, nil, err
	}
	return c.client(ctx, nil)
}

// connectTo is connect for a command that takes one DELIVERY_ID.
func (c *common) connectTo(ctx context.Context, fs *pflag.FlagSet, args []string, command string) (string, *deliveries.Client, func(), error) {
	var id string
	dc, closeClient, err := c.connect(ctx, fs, args, func(fs *pflag.FlagSet) (err error) {
		id, err = oneID(fs, command)
		return err
	})
	return id, dc, closeClient, err
}

// oneID is the single DELIVERY_ID argument command takes.
func oneID(fs *pflag.FlagSet, command string) (string, error) {
	if fs.NArg() != 1 {
		return "", cmdline.Usagef("%s takes one DELIVERY_ID", command)
	}
	id := fs.Arg(0)
	if _, _, err := workflows.ParseDeliveryID(id); err != nil {
		return "", cmdline.Usage(err)
	}
	return id, nil
}

func status(ctx context.Context, args []string, stdout io.Writer) error {
	var c common
	fs := newFlags("status", &c)
	wait := fs.Bool("wait", false, "wait until the delivery is delivered, failed or canceled")
	id, dc, closeClient, err := c.connectTo(ctx, fs, args, "status")
	if err != nil {
		return err
	}
	defer closeClient()
	get := dc.Status
	if *wait {
		get = dc.Wait
	}
	st, err := get(ctx, id)
	if err != nil {
		return err
	}
	return c.printState(stdout, st)
}

func (c *common) printState(w io.Writer, st workflows.DeliveryState) error {
	return printAs(c, w, st, printState)
}

// printAs writes v as JSON with --output json, else as text does.
func printAs[T any](c *common, w io.Writer, v T, text func(io.Writer, T)) error {
	if c.output == "json" {
		return json.NewEncoder(w).Encode(v)
	}
	text(w, v)
	return nil
}

func printState(w io.Writer, st workflows.DeliveryState) {
	fmt.Fprintf(w, "delivery  %s\nstatus    %s\n", st.DeliveryID, st.Status)
	if st.NextAttemptAt != nil {
		fmt.Fprintf(w, "next      %s (in %s)\n", st.NextAttemptAt.UTC().Format(time.RFC3339), time.Until(*st.NextAttemptAt).Round(time.Second))
	}
	if len(st.Attempts) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\n#\tSTARTED\tOUTCOME\tSTATUS\tLATENCY\tERROR")
	for _, a := range st.Attempts {
		code := "-"
		if a.StatusCode != 0 {
			code = strconv.Itoa(a.StatusCode)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%dms\t%s\n", a.Number, a.StartedAt.UTC().Format(time.RFC3339), a.Outcome, code, a.LatencyMS, cmdline.OneLine(errors.New(a.Error)))
	}
	tw.Flush()
	for _, a := range st.Actions {
		fmt.Fprintf(w, "%s  %s %s\n", a.At.UTC().Format(time.RFC3339), a.Name, a.Reason)
	}
}
