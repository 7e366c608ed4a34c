// Package temporalcluster runs the production shape of a Temporal server for
// tests: go.temporal.io/server v1.32.2 on PostgreSQL, with SQL advanced
// visibility, its services frontend, history, matching and worker each in an
// OS process of its own, on ports of 127.0.0.1 chosen at run time.
//
// Start creates two fresh databases, sets up their schema with
// temporal-sql-tool, starts the four processes from deploy/temporal/config.yaml
// (one file; each process gets its own environment), and returns once the
// namespace and its search attributes are usable. Kill and Restart take one
// service down and back up; Stop ends every process and drops both databases.
// `make tools-cluster` builds the two binaries; docs/temporal-cluster.md
// describes the whole arrangement.
package temporalcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/grpc"
)

// ServerVersion is the go.temporal.io/server release the binaries are built
// from (TEMPORAL_SERVER_VERSION in the Makefile; a test checks they agree).
const ServerVersion = "v1.32.2"

// ErrNoBinaries says the server or temporal-sql-tool binary is not where
// Options.BinDir points.
var ErrNoBinaries = errors.New("temporal server binaries absent: run `make tools-cluster`")

// ErrNoPostgres says PostgreSQL does not accept connections at the base URL.
var ErrNoPostgres = errors.New("PostgreSQL does not answer")

// EnvPostgres overrides the default base PostgreSQL URL.
const EnvPostgres = "HOOKRELAY_TEST_POSTGRES"

// DefaultPostgresURL is the base URL used when neither Options.PostgresURL
// nor EnvPostgres is set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Options configure Start. The zero value works on a machine with
// PostgreSQL on 127.0.0.1:5432 and the binaries built by `make tools-cluster`.
type Options struct {
	// PostgresURL is the base URL: its user, password, host and port reach
	// PostgreSQL, and its database is the one connected to for CREATE
	// DATABASE. Default: $HOOKRELAY_TEST_POSTGRES, else DefaultPostgresURL.
	PostgresURL string
	// BinDir holds the binaries `server` and `sql` (temporal-sql-tool).
	// Default: bin/temporal-server-v1.32.2 under the module root.
	BinDir string
	// ConfigDir holds config.yaml, dynamicconfig.yaml, and the scripts
	// that set up the schema (schema.sh) and start a service (service.sh).
	// Default: deploy/temporal under the module root.
	ConfigDir string
	// SchemaDir is the server module's schema directory (holding
	// postgresql/v12/...). Default: the module cache's copy of
	// go.temporal.io/server@v1.32.2, which `make tools-cluster` downloads.
	SchemaDir string
	// LogDir receives one log per process (<service>.log), the environment
	// each was started with (<service>.env) and temporal-sql-tool's output
	// (schema.log). It is never removed. Default: a new temporary directory.
	LogDir string
	// Namespace is registered at start. Default: "default".
	Namespace string
	// Retention of closed workflows in Namespace. Default: 24h.
	Retention time.Duration
	// SearchAttributes are registered in Namespace (custom search attribute
	// name → type), and Start returns once they are usable.
	SearchAttributes map[string]enumspb.IndexedValueType
}

// Cluster is a running cluster. Its methods are safe for concurrent use.
type Cluster struct {
	opts      Options
	pg        postgresTarget
	dbs       databases
	tool      sqlTool
	serverBin string
	env       []string // shared by every process; see processEnv
	tls       TLSFiles
	ports     map[Service]Ports

	client client.Client
	health map[Service]*grpc.ClientConn

	mu      sync.Mutex
	procs   map[Service]*process
	stopped bool
}

// Start runs a cluster and returns once it is usable: all four services
// healthy, Namespace registered and answering in frontend, history, matching
// and visibility, and the search attributes usable in visibility queries.
// On any failure it ends what it started and drops what it created; the logs
// stay in LogDir. Without a deadline on ctx, Start gives up after 3 minutes.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
	}
	c, err := newCluster(ctx, opts)
	if err != nil {
		return nil, err
	}
	run := newRunID()
	c.dbs = databases{temporal: "hookrelay_" + run + "_temporal", visibility: "hookrelay_" + run + "_visibility"}
	defer func() {
		if err != nil {
			if stopErr := c.Stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
			err = fmt.Errorf("%w (logs in %s)", err, c.opts.LogDir)
		}
	}()
	if err := c.tool.setup(ctx, c.dbs); err != nil {
		return nil, err
	}
	if err := c.startServices(ctx); err != nil {
		return nil, err
	}
	if c.client, err = c.dialClient(ctx); err != nil {
		return nil, err
	}
	if err := c.registerNamespace(ctx); err != nil {
		return nil, err
	}
	if err := c.addSearchAttributes(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// newCluster checks what a cluster needs (the binaries, the server's config
// and schema, PostgreSQL answering) and makes its log folder; it starts and
// creates nothing else.
func newCluster(ctx context.Context, opts Options) (*Cluster, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:      opts,
		serverBin: filepath.Join(opts.BinDir, "server"),
		tool: sqlTool{
			path:      filepath.Join(opts.BinDir, "sql"),
			script:    filepath.Join(opts.ConfigDir, "schema.sh"),
			schemaDir: opts.SchemaDir,
		},
		procs:  map[Service]*process{},
		health: map[Service]*grpc.ClientConn{},
	}
	for _, bin := range []string{c.serverBin, c.tool.path} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%w (%v)", ErrNoBinaries, err)
		}
	}
	for _, f := range []string{"config.yaml", "dynamicconfig.yaml", "schema.sh", "service.sh"} {
		if _, err := os.Stat(filepath.Join(opts.ConfigDir, f)); err != nil {
			return nil, fmt.Errorf("temporal server config: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(opts.SchemaDir, schemaTemporal)); err != nil {
		return nil, fmt.Errorf("temporal schema (`make tools-cluster` downloads the module holding it): %w", err)
	}
	if c.pg, err = parsePostgresURL(opts.PostgresURL); err != nil {
		return nil, err
	}
	c.tool.pg = c.pg
	if err := c.pg.ping(ctx); err != nil {
		return nil, err
	}
	if c.opts.LogDir, err = makeLogDir(opts.LogDir); err != nil {
		return nil, err
	}
	c.tool.logPath = filepath.Join(c.opts.LogDir, "schema.log")
	if c.tls, err = makeTLSFiles(filepath.Join(c.opts.LogDir, "tls")); err != nil {
		return nil, err
	}
	return c, nil
}

// startServices starts the four services on free ports and waits until
// each is healthy.
func (c *Cluster) startServices(ctx context.Context) error {
	var err error
	if c.ports, err = freePorts(); err != nil {
		return err
	}
	c.env = c.processEnv()
	frontendTLS, err := c.tls.ClientTLS()
	if err != nil {
		return err
	}
	internodeTLS, err := c.tls.internodeTLS()
	if err != nil {
		return err
	}
	for s := range healthNames {
		tlsConfig := internodeTLS
		if s == Frontend {
			tlsConfig = frontendTLS
		}
		conn, err := dialHealth(c.ports[s].address(), tlsConfig)
		if err != nil {
			return err
		}
		c.health[s] = conn
	}
	// The frontend first: on an empty database the first process to start
	// writes the cluster's metadata record, and a process losing that race
	// exits ("Failed to apply cluster metadata").
	if err := c.startProcess(Frontend); err != nil {
		return err
	}
	if err := c.waitHealthy(ctx, Frontend); err != nil {
		return err
	}
	for _, s := range Services[1:] {
		if err := c.startProcess(s); err != nil {
			return err
		}
	}
	for _, s := range Services[1:] {
		if err := c.waitHealthy(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// Address is the frontend's gRPC host:port.
func (c *Cluster) Address() string { return c.ports[Frontend].address() }

// FrontendHostPort is Address, under the name *testsuite.DevServer uses, so a
// Cluster serves where a dev server does.
func (c *Cluster) FrontendHostPort() string { return c.Address() }

// Namespace is the namespace Start registered.
func (c *Cluster) Namespace() string { return c.opts.Namespace }

// TLS are the cluster's certificates: a client reaches the frontend only
// with TLS.Client and TLS.ClientKey (or another certificate of
// TLS.ClientCA), verifying it by TLS.CA as FrontendServerName.
func (c *Cluster) TLS() TLSFiles { return c.tls }

// Client is an SDK client in Namespace, over mutual TLS with the client
// certificate of TLS, without a codec: it sees payloads as the server
// stores them. Stop closes it.
func (c *Cluster) Client() client.Client { return c.client }

// LogDir holds the processes' logs.
func (c *Cluster) LogDir() string { return c.opts.LogDir }

// Ports are the ports service binds.
func (c *Cluster) Ports(s Service) Ports { return c.ports[s] }

// Databases are the names of the persistence and visibility databases.
func (c *Cluster) Databases() (temporal, visibility string) {
	return c.dbs.temporal, c.dbs.visibility
}

// PID is the process id of service, or 0 when it is not running.
func (c *Cluster) PID(s Service) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[s]; p != nil && p.running() {
		return p.cmd.Process.Pid
	}
	return 0
}

// Kill ends service's process with SIGKILL and returns once it is gone.
func (c *Cluster) Kill(s Service) error {
	c.mu.Lock()
	p := c.procs[s]
	if p != nil {
		p.killed = true
	}
	c.mu.Unlock()
	if p == nil || !p.running() {
		return fmt.Errorf("kill %s: not running", s)
	}
	p.kill()
	return nil
}

// Restart starts service again on the same ports and configuration (killing
// it first if it still runs) and returns once it serves again: healthy
// itself, and for history and matching, reachable through the frontend.
func (c *Cluster) Restart(ctx context.Context, s Service) error {
	c.mu.Lock()
	p, stopped := c.procs[s], c.stopped
	if p != nil {
		p.killed = true
	}
	c.mu.Unlock()
	if stopped {
		return fmt.Errorf("restart %s: cluster stopped", s)
	}
	if p != nil && p.running() {
		p.kill()
	}
	if err := c.startProcess(s); err != nil {
		return err
	}
	if err := c.waitHealthy(ctx, s); err != nil {
		return fmt.Errorf("restart %s: %w (log %s)", s, err, c.logPath(s))
	}
	return nil
}

// Stop ends every process (SIGTERM, then SIGKILL after 10s) and drops both
// databases. Calling it again does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	procs := c.procs
	c.mu.Unlock()

	if c.client != nil {
		c.client.Close()
	}
	for _, conn := range c.health {
		conn.Close()
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(10 * time.Second) })
	}
	wg.Wait()
	if c.dbs.temporal == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.tool.drop(ctx, c.dbs)
}

// postgresURL is PostgresURL, else $HOOKRELAY_TEST_POSTGRES, else DefaultPostgresURL.
func (o Options) postgresURL() string {
	if o.PostgresURL != "" {
		return o.PostgresURL
	}
	if u := os.Getenv(EnvPostgres); u != "" {
		return u
	}
	return DefaultPostgresURL
}

func (o Options) withDefaults() (Options, error) {
	o.PostgresURL = o.postgresURL()
	if o.BinDir == "" || o.ConfigDir == "" {
		root, err := moduleRoot()
		if err != nil {
			return o, err
		}
		if o.BinDir == "" {
			o.BinDir = filepath.Join(root, "bin", "temporal-server-"+ServerVersion)
		}
		if o.ConfigDir == "" {
			o.ConfigDir = filepath.Join(root, "deploy", "temporal")
		}
	}
	if o.SchemaDir == "" {
		dir, err := moduleSchemaDir()
		if err != nil {
			return o, err
		}
		o.SchemaDir = dir
	}
	// Absolute paths keep the server's --config-file, the schema steps and
	// the binaries independent of the working directory.
	for _, p := range []*string{&o.BinDir, &o.ConfigDir, &o.SchemaDir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return o, fmt.Errorf("temporalcluster: %q: %w", *p, err)
		}
		*p = abs
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	return o, nil
}

// makeLogDir makes dir, or a new temporary directory when dir is empty.
func makeLogDir(dir string) (string, error) {
	if dir == "" {
		dir, err := os.MkdirTemp("", "temporalcluster-")
		if err != nil {
			return "", fmt.Errorf("temporalcluster: log dir: %w", err)
		}
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("temporalcluster: log dir: %w", err)
	}
	return dir, nil
}

// newRunID names a run's databases, so parallel runs never share one (a
// variable, so a test can know the names of a run whose Start fails).
var newRunID = func() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

const modulePath = "github.com/hookrelay/hookrelay"

// moduleRoot is the nearest directory at or above the working directory
// whose go.mod declares hookrelay's module: the repository's root when run
// by go test from any of its packages.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("temporalcluster: module root: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for line := range strings.Lines(string(b)) {
				if strings.TrimSpace(line) == "module "+modulePath {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("temporalcluster: no go.mod of %s at or above the working directory: set Options.BinDir and Options.ConfigDir", modulePath)
		}
		dir = parent
	}
}

// quietLogger drops the SDK client's logs: the cluster's own logs are in LogDir.
func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}
