package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/endpointsource"
	"github.com/hookrelay/hookrelay/workflows"
	"github.com/spf13/pflag"
)

// healthUsage is the endpoint health commands' part of `starter endpoint`.
const healthUsage = `  starter endpoint status ENDPOINT_ID [--output text|json]
  starter endpoint pause|resume|enable|disable ENDPOINT_ID [--reason TEXT]
These read and steer the endpoint's circuit through Temporal (each is a signal or query of its
health workflow, endpoint-health/ENDPOINT_ID); they take the connection flags and --endpoints or --endpoints-db.`

// healthCommands are the endpoint health commands, by name.
var healthCommands = map[string]string{
	"status":  "",
	"pause":   workflows.PauseSignal,
	"resume":  workflows.ResumeSignal,
	"enable":  workflows.EnableSignal,
	"disable": workflows.DisableSignal,
}

// endpointHealth is `starter endpoint status|pause|resume|enable|disable ID`.
func endpointHealth(ctx context.Context, name string, args []string, stdout io.Writer) error {
	var c common
	fs := newFlags("endpoint "+name, &c)
	var src cmdline.Endpoints
	src.AddFlags(fs)
	reason := ""
	if name != "status" {
		fs.StringVar(&reason, "reason", "", "why, recorded with the endpoint's actions")
	}
	if err := c.parse(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cmdline.Usagef("endpoint %s takes one ENDPOINT_ID", name)
	}
	id := fs.Arg(0)
	endpoints, dc, closeAll, err := c.endpointClient(ctx, fs, src)
	if err != nil {
		return err
	}
	defer closeAll()
	var st workflows.HealthState
	if signal := healthCommands[name]; signal != "" {
		if st, err = dc.SteerEndpoint(ctx, id, signal, reason); err != nil {
			return err
		}
		return printAs(&c, stdout, st, printHealth)
	}
	ep, err := endpoints.Source.Resolve(ctx, id)
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", id, err)
	}
	if st, err = dc.EndpointHealth(ctx, id); err != nil {
		return err
	}
	status := endpointStatus{HealthState: st, MaxInFlight: ep.EffectiveMaxInFlight(), RateLimit: ep.RateLimit}
	return printAs(&c, stdout, status, printStatus)
}

// endpointStatus is `starter endpoint status`: the endpoint's health and
// its share of the fleet.
type endpointStatus struct {
	workflows.HealthState
	MaxInFlight int     `json:"max_in_flight"`
	RateLimit   float64 `json:"rate_limit"` // requests a second; 0: none
}

func printStatus(w io.Writer, s endpointStatus) {
	printHealth(w, s.HealthState)
	fmt.Fprintf(w, "max_in_flight  %d per worker\n", s.MaxInFlight)
	if s.RateLimit > 0 {
		fmt.Fprintf(w, "rate_limit     %g a second, fleet-wide\n", s.RateLimit)
	} else {
		fmt.Fprintln(w, "rate_limit     none")
	}
}

func printHealth(w io.Writer, st workflows.HealthState) {
	fmt.Fprintf(w, "endpoint  %s\nstate     %s", st.EndpointID, st.State)
	if !st.Since.IsZero() {
		fmt.Fprintf(w, " since %s", st.Since.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "\nparked    %d\nfailures  %d consecutive\n", st.Parked, st.ConsecutiveFailures)
	if st.NextProbeAt != nil {
		fmt.Fprintf(w, "probe     %s\n", st.NextProbeAt.UTC().Format(time.RFC3339))
	}
	for _, a := range st.Actions {
		fmt.Fprintf(w, "%s  %s %s\n", a.At.UTC().Format(time.RFC3339), a.Name, a.Reason)
	}
}

// endpointClient checks the endpoint flags, opens the endpoints they name
// and a deliveries client routing by them: what every `starter endpoint`
// command that talks to Temporal needs. closeAll closes both.
func (c *common) endpointClient(ctx context.Context, fs *pflag.FlagSet, src cmdline.Endpoints) (endpointsource.Endpoints, *deliveries.Client, func(), error) {
	if err := src.Check(fs, true); err != nil {
		return endpointsource.Endpoints{}, nil, nil, err
	}
	endpoints, err := endpointsource.Open(ctx, src, &c.conn, endpointsource.Rules{}, false, nil)
	if err != nil {
		return endpointsource.Endpoints{}, nil, nil, err
	}
	dc, closeClient, err := c.client(ctx, endpoints.Source)
	if err != nil {
		endpoints.Close()
		return endpointsource.Endpoints{}, nil, nil, err
	}
	return endpoints, dc, func() { closeClient(); endpoints.Close() }, nil
}
