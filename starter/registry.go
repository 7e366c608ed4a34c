package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/endpointsource"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/temporalclient"
)

const registryUsage = `usage:
  starter registry reseal --endpoints-db DSN --codec-key-file FILE [--accept ENDPOINT_ID]... [--output text|json]
reseal seals every live endpoint's secrets under the key file's current endpoint-secrets key and MACs
its row under the current row-MAC key; rows already current are left alone, so it may run again.
A row whose MAC fails is not resealed unless --accept names it (after you checked its URL and events).
It exits 1 if any row could not be resealed, naming each.`

// registryCommand is `starter registry ...`: the registry as a whole.
func registryCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return cmdline.Usagef("registry: no command given\n%s", registryUsage)
	}
	switch args[0] {
	case "reseal":
		return reseal(ctx, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, registryUsage)
		return nil
	default:
		return cmdline.Usagef("registry: unknown command %q\n%s", args[0], registryUsage)
	}
}

// resealFailure is one row reseal could not reseal, as --output json prints it.
type resealFailure struct {
	EndpointID string `json:"endpoint_id"`
	Error      string `json:"error"`
}

func reseal(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		db, output string
		keys       temporalclient.Options
		accept     []string
	)
	fs := pflag.NewFlagSet("starter registry reseal", pflag.ContinueOnError)
	cmdline.EndpointsDB(fs, &db)
	temporalclient.AddCodecKeyFileFlag(fs, &keys.CodecKeyFile)
	fs.StringArrayVar(&accept, "accept", nil, "MAC this endpoint's row as it stands although its MAC fails, after checking its URL and events (repeatable)")
	fs.StringVar(&output, "output", "text", "output format: text or json")
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	switch {
	case output != "text" && output != "json":
		return cmdline.Usagef("--output: %q is not text or json", output)
	case db == "":
		return cmdline.Usagef("--endpoints-db: required (or set %s): the endpoint registry's database", cmdline.EnvEndpointsDB)
	case keys.CodecKeyFile == "":
		return cmdline.Usagef("--codec-key-file: required (or set %s): the key file endpoint keys are derived from", temporalclient.EnvCodecKeyFile)
	}
	r, err := endpointsource.OpenRegistry(ctx, db, &keys, endpointsource.Rules{})
	if err != nil {
		return err
	}
	defer r.Close()
	rep, err := r.Reseal(ctx, accept)
	printReseal(stdout, output, rep)
	if err != nil {
		return err
	}
	if len(rep.Failed) > 0 {
		return fmt.Errorf("registry reseal: %d endpoint(s) not resealed; each is named above", len(rep.Failed))
	}
	return nil
}

func printReseal(stdout io.Writer, output string, rep registry.ResealReport) {
	failed := make([]resealFailure, len(rep.Failed))
	for i, f := range rep.Failed {
		failed[i] = resealFailure{EndpointID: f.ID, Error: f.Err.Error()}
	}
	if output == "json" {
		line, _ := json.Marshal(struct {
			registry.ResealReport
			Failed []resealFailure `json:"failed"`
		}{rep, failed})
		fmt.Fprintln(stdout, string(line))
		return
	}
	fmt.Fprintf(stdout, "resealed %d, already current %d, failed %d\n", rep.Resealed, rep.Current, len(failed))
	for _, f := range failed {
		fmt.Fprintf(os.Stderr, "starter: %s: %s\n", f.EndpointID, f.Error)
	}
}
