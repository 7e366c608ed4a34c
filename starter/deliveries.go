package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/httpapi"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

const deliveriesUsage = `usage:
  starter deliveries list --account ID [--endpoint ID] [--status STATUS] [--event-name NAME] [--since TIME] [--until TIME] [--limit 50] [--cursor CURSOR]
  starter deliveries show --account ID DELIVERY_ID
  starter deliveries attempts --account ID DELIVERY_ID
Each reads the delivery log in its database directly: --log-db DSN (or HOOKRELAY_LOG_DB; default: the
--endpoints-db database) and --codec-key-file FILE (or their environment variables), and takes
--output text|json. --since and --until are RFC 3339 times or durations before now (24h).`

// envLogDB is the environment fallback of --log-db.
const envLogDB = "HOOKRELAY_LOG_DB"

const logDBUsage = "delivery log database (postgres://... or sqlite:PATH); default: the --endpoints-db database"

// logDBFlag defines --log-db, unless the flag set already has it (a
// hosted worker's flags may define it for the same database).
func logDBFlag(fs *pflag.FlagSet) {
	if fs.Lookup("log-db") == nil {
		cmdline.String(fs, new(string), "log-db", envLogDB, "", logDBUsage)
	}
}

// logDSN is --log-db, else the --endpoints-db database ("": neither).
func logDSN(fs *pflag.FlagSet, endpointsDB string) string {
	if dsn := fs.Lookup("log-db").Value.String(); dsn != "" {
		return dsn
	}
	return endpointsDB
}

// openDeliveryLog opens the delivery log in dsn with the payload keys of
// conn, which seal its response excerpts.
func openDeliveryLog(ctx context.Context, dsn string, conn *temporalclient.Options, noMigrate bool) (*httpapi.LogDB, error) {
	if conn.CodecKeyFile == "" {
		return nil, cmdline.Usagef("--log-db: response excerpts are stored sealed with the payload keys: give --codec-key-file (or set %s)", temporalclient.EnvCodecKeyFile)
	}
	keys, err := conn.Codec()
	if err != nil {
		return nil, err
	}
	open := httpapi.OpenDeliveryLog
	if noMigrate {
		open = httpapi.OpenDeliveryLogNoMigrate
	}
	l, err := open(ctx, dsn, keys)
	if err != nil {
		return nil, fmt.Errorf("--log-db: %w", err)
	}
	return l, nil
}

// deliveriesFlags are the flags of `starter deliveries ...`.
type deliveriesFlags struct {
	name         string
	endpointsDB  string
	keys         temporalclient.Options // its key file only
	account      string
	output       string
	id           string
	since, until string
	filter       httpapi.LogFilter
}

// deliveriesCommand is `starter deliveries ...`: an account's deliveries
// and attempts as the delivery log holds them, read from its database, as
// the HTTP API's /v1/accounts/{account_id}/deliveries routes read them.
func deliveriesCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return cmdline.Usagef("deliveries: no command given\n%s", deliveriesUsage)
	}
	cmds := map[string]func(ctx context.Context, d *deliveriesFlags, l *httpapi.LogDB, stdout io.Writer) error{
		"list": deliveriesList, "show": deliveriesShow, "attempts": deliveriesAttempts,
	}
	name := args[0]
	run, ok := cmds[name]
	if !ok {
		if name == "help" || name == "-h" || name == "--help" {
			fmt.Fprintln(stdout, deliveriesUsage)
			return nil
		}
		return cmdline.Usagef("deliveries: unknown command %q\n%s", name, deliveriesUsage)
	}
	d := &deliveriesFlags{name: name}
	fs := d.flagSet()
	if err := d.parse(fs, args[1:]); err != nil {
		return err
	}
	dsn := logDSN(fs, d.endpointsDB)
	if dsn == "" {
		return cmdline.Usagef("--log-db: required (or set %s, or give --endpoints-db when the log shares its database)", envLogDB)
	}
	l, err := openDeliveryLog(ctx, dsn, &d.keys, false)
	if err != nil {
		return err
	}
	defer l.Close()
	return run(ctx, d, l, stdout)
}

func (d *deliveriesFlags) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("starter deliveries "+d.name, pflag.ContinueOnError)
	logDBFlag(fs)
	cmdline.EndpointsDB(fs, &d.endpointsDB)
	fs.Lookup("endpoints-db").Usage = "the endpoint registry's database: the delivery log's when --log-db is not given (env " + cmdline.EnvEndpointsDB + ")"
	temporalclient.AddCodecKeyFileFlag(fs, &d.keys.CodecKeyFile)
	fs.StringVar(&d.account, "account", "", "the account whose deliveries these are (required)")
	fs.StringVar(&d.output, "output", "text", "output format: text or json")
	if d.name == "list" {
		fs.StringVar(&d.filter.EndpointID, "endpoint", "", "only this endpoint id")
		fs.StringVar(&d.filter.Status, "status", "", "only this status: "+strings.Join(httpapi.LogStatuses, ", "))
		fs.StringVar(&d.filter.EventName, "event-name", "", "only this event name")
		fs.StringVar(&d.since, "since", "", "only deliveries created at or after this time: RFC 3339, or a duration before now such as 24h")
		fs.StringVar(&d.until, "until", "", "only deliveries created before this time: RFC 3339, or a duration before now")
		fs.IntVar(&d.filter.Limit, "limit", httpapi.DefaultLogLimit, fmt.Sprintf("deliveries per page, 1 to %d", httpapi.MaxLogLimit))
		fs.StringVar(&d.filter.Cursor, "cursor", "", "continue a listing from the cursor the last page printed (with the same filters)")
	}
	return fs
}

// parse checks the command line before the database is opened.
func (d *deliveriesFlags) parse(fs *pflag.FlagSet, args []string) error {
	maxArgs := 1
	if d.name == "list" {
		maxArgs = 0
	}
	if err := cmdline.Parse(fs, args, maxArgs); err != nil {
		return err
	}
	switch {
	case d.output != "text" && d.output != "json":
		return cmdline.Usagef("--output: %q is not text or json", d.output)
	case d.account == "":
		return cmdline.Usagef("--account: required")
	case maxArgs == 1 && fs.NArg() != 1:
		return cmdline.Usagef("%s takes one DELIVERY_ID", d.name)
	}
	if err := event.CheckAccountID(d.account); err != nil {
		return cmdline.Usagef("--account: %v", err)
	}
	if d.name != "list" {
		d.id = fs.Arg(0)
		if _, _, err := workflows.ParseDeliveryID(d.id); err != nil {
			return cmdline.Usage(err)
		}
		return nil
	}
	now := time.Now()
	var err error
	if d.filter.Since, err = flagTime("since", d.since, now); err != nil {
		return err
	}
	if d.filter.Until, err = flagTime("until", d.until, now); err != nil {
		return err
	}
	return logFlagError(d.filter.Validate())
}

// flagTime reads --since or --until: an RFC 3339 time, or a duration
// before now.
func flagTime(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if ago, err := time.ParseDuration(v); err == nil && ago >= 0 {
		return now.Add(-ago), nil
	}
	return time.Time{}, cmdline.Usagef("--%s: %q is neither an RFC 3339 time such as 2026-04-18T20:27:25Z nor a duration before now such as 24h", name, v)
}

// logFlagError names the flag for a field the log refused: a mistake on
// the command line (exit 2). Anything else is exit 1.
func logFlagError(err error) error {
	var fe *event.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	flag := map[string]string{"endpoint_id": "endpoint", "event_name": "event-name", "account_id": "account"}[fe.Field]
	if flag == "" {
		flag = fe.Field
	}
	return cmdline.Usagef("--%s: %s", flag, fe.Problem)
}

// notInLog is the error for a delivery the account does not have.
func (d *deliveriesFlags) notInLog(err error) error {
	if errors.Is(err, httpapi.ErrDeliveryNotFound) {
		return fmt.Errorf("delivery %s: account %s has no such delivery in the delivery log", d.id, d.account)
	}
	return err
}

func deliveriesList(ctx context.Context, d *deliveriesFlags, l *httpapi.LogDB, stdout io.Writer) error {
	page, err := l.List(ctx, d.account, d.filter)
	if err != nil {
		return logFlagError(err)
	}
	if d.output == "json" {
		enc := jsonOut(stdout)
		for _, dl := range page.Deliveries {
			enc.Encode(dl)
		}
		if page.NextCursor != "" {
			enc.Encode(map[string]string{"next_cursor": page.NextCursor})
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tDELIVERY\tSTATUS\tATTEMPTS\tLAST\tEVENT\tMAIL LOG\tNEXT")
	for _, dl := range page.Deliveries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", timeOrDash(&dl.CreatedAt), dl.DeliveryID, dl.Status, dl.Attempts,
			statusCode(dl.LastStatusCode), dl.EventName, dl.MailLogID, timeOrDash(dl.NextAttemptAt))
	}
	tw.Flush()
	if page.NextCursor != "" {
		fmt.Fprintf(stdout, "more: --cursor %s\n", page.NextCursor)
	}
	return nil
}

func deliveriesShow(ctx context.Context, d *deliveriesFlags, l *httpapi.LogDB, stdout io.Writer) error {
	dl, err := l.Get(ctx, d.account, d.id)
	if err != nil {
		return d.notInLog(err)
	}
	if d.output == "json" {
		return jsonOut(stdout).Encode(dl)
	}
	last := "-"
	if dl.LastAttemptAt != nil {
		last = timeOrDash(dl.LastAttemptAt) + " (" + statusCode(dl.LastStatusCode) + ")"
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "delivery\t%s\nendpoint\t%s\nevent\t%s (%s)\nmail_log_id\t%s\nstatus\t%s\nattempts\t%d\ncreated\t%s\nlast attempt\t%s\nnext attempt\t%s\n",
		dl.DeliveryID, dl.EndpointID, dl.EventID, dl.EventName, dl.MailLogID, dl.Status, dl.Attempts, timeOrDash(&dl.CreatedAt),
		last, timeOrDash(dl.NextAttemptAt))
	return tw.Flush()
}

func deliveriesAttempts(ctx context.Context, d *deliveriesFlags, l *httpapi.LogDB, stdout io.Writer) error {
	as, err := l.Attempts(ctx, d.account, d.id)
	if err != nil {
		return d.notInLog(err)
	}
	if d.output == "json" {
		enc := jsonOut(stdout)
		for _, a := range as {
			enc.Encode(a)
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTARTED\tOUTCOME\tSTATUS\tDURATION\tERROR\tRESPONSE")
	for _, a := range as {
		errClass := "-"
		if a.Error != nil {
			errClass = *a.Error
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%dms\t%s\t%s\n", a.Attempt, timeOrDash(&a.StartedAt), a.Outcome, statusCode(a.StatusCode),
			a.DurationMS, errClass, excerptLine(a.ResponseExcerpt))
	}
	return tw.Flush()
}

// excerptLine is a response excerpt on one line of a table, cut to 60
// characters; --output json shows it whole.
func excerptLine(excerpt *string) string {
	if excerpt == nil {
		return "-"
	}
	s := strings.Join(strings.Fields(*excerpt), " ")
	if utf8.RuneCountInString(s) > 60 {
		s = string([]rune(s)[:59]) + "…"
	}
	return strconv.Quote(s)
}

// jsonOut writes one JSON value a line, as the HTTP API writes it: a
// response excerpt's <, > and & unescaped.
func jsonOut(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// statusCode is an HTTP status, or "-" for none.
func statusCode(code *int) string {
	if code == nil {
		return "-"
	}
	return strconv.Itoa(*code)
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
