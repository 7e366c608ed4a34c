package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/hookrelay/hookrelay/internal/temporalcluster"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// EnvServer forces a server mode: HOOKRELAY_TEST_SERVER=cluster|docker|devserver|postgres.
const EnvServer = "HOOKRELAY_TEST_SERVER"

// Mode is how a run gets its Temporal server.
type Mode string

// The modes, in ChooseMode's order of preference.
const (
	// ModeCluster is an existing cluster at TEMPORAL_ADDRESS.
	ModeCluster Mode = "cluster"
	// ModeDocker is the Temporal CLI's dev server image in a container started with dockertest.
	ModeDocker Mode = "docker"
	// ModeDevServer is bin/temporal, started through testsuite.StartDevServer.
	ModeDevServer Mode = "devserver"
	// ModePostgres is the production shape, chosen only when forced: a
	// Temporal server on PostgreSQL, its four services as processes
	// (internal/temporalcluster), with fresh databases and hookrelay's
	// search attributes (`make test-cluster`).
	ModePostgres Mode = "postgres"
)

// Server is a Temporal server a run uses. *DevServer, *RemoteServer and *temporalcluster.Cluster are ones;
// another mode provides the same four methods.
type Server interface {
	FrontendHostPort() string
	// Namespace is the one the run works in.
	Namespace() string
	// Client has no codec: it sees payloads as Temporal stores them.
	Client() client.Client
	Stop() error
}

// ServerOptions say how to reach or start the server; each mode reads the
// fields it needs.
type ServerOptions struct {
	Mode Mode
	// Address is the existing cluster's frontend (cluster mode).
	Address string
	// Namespace, in cluster mode: empty registers a fresh one for the run,
	// deleted at Stop; any other is used as it is (Temporal Cloud, where the
	// API creates none). In devserver mode, the one the server serves
	// (default "default"). Docker mode always registers a fresh one.
	Namespace string
	// Security is how to reach an existing cluster (cluster mode).
	Security temporalclient.Security
	// TemporalCLI is bin/temporal (devserver mode); it is never downloaded.
	TemporalCLI string
	// ExtraArgs are appended to `temporal server start-dev` (devserver mode).
	ExtraArgs []string
	// Log receives the dev server's output (devserver mode); nil discards it.
	Log io.Writer
	// LogDir receives the cluster's logs, one per process (postgres mode);
	// empty makes a new temporary directory. It is never removed.
	LogDir string
}

// modes is every mode and how to start it. A new mode is a Mode constant and
// one entry here: ChooseMode then accepts it when forced, and StartServer
// starts it.
var modes = []struct {
	mode  Mode
	start func(context.Context, ServerOptions) (Server, error)
}{
	{ModeCluster, func(ctx context.Context, o ServerOptions) (Server, error) {
		return ConnectCluster(ctx, o.Address, o.Namespace, o.Security)
	}},
	{ModeDocker, func(ctx context.Context, _ ServerOptions) (Server, error) { return startContainer(ctx) }},
	{ModeDevServer, func(ctx context.Context, o ServerOptions) (Server, error) {
		return StartDevServer(ctx, DevServerOptions{CLI: o.TemporalCLI, Namespace: o.Namespace, ExtraArgs: o.ExtraArgs, Log: o.Log})
	}},
	{ModePostgres, func(ctx context.Context, o ServerOptions) (Server, error) {
		return StartPostgresCluster(ctx, temporalcluster.Options{LogDir: o.LogDir})
	}},
}

// ChooseMode picks the mode: forced (the value of HOOKRELAY_TEST_SERVER)
// when set; else an existing cluster when address is set; else docker when
// dockerUp finds an engine; else the dev server. dockerUp is asked only
// when needed, and a nil dockerUp never picks docker unless forced (the
// bench, which reads its dev server's CPU from /proc, does so).
func ChooseMode(forced, address string, dockerUp func() error) (Mode, error) {
	if forced != "" {
		for _, m := range modes {
			if string(m.mode) != forced {
				continue
			}
			if m.mode == ModeCluster && address == "" {
				return "", fmt.Errorf("%s=%s needs TEMPORAL_ADDRESS", EnvServer, forced)
			}
			return m.mode, nil
		}
		return "", fmt.Errorf("%s=%q: want %s", EnvServer, forced, modeList())
	}
	switch {
	case address != "":
		return ModeCluster, nil
	case dockerUp != nil && dockerUp() == nil:
		return ModeDocker, nil
	default:
		return ModeDevServer, nil
	}
}

// modeList names the modes as "a, b or c".
func modeList() string {
	var names []string
	for _, m := range modes {
		names = append(names, string(m.mode))
	}
	last := len(names) - 1
	return strings.Join(names[:last], ", ") + " or " + names[last]
}

// StartServer starts, or connects to, the server of opts.Mode. In docker
// mode without an engine the error wraps ErrNoDocker.
func StartServer(ctx context.Context, opts ServerOptions) (Server, error) {
	for _, m := range modes {
		if m.mode == opts.Mode {
			return m.start(ctx, opts)
		}
	}
	return nil, fmt.Errorf("Temporal server mode %q: want %s", opts.Mode, modeList())
}

// quietLogger keeps the SDK's own logging out of the run's output.
func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}
