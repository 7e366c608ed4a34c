package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/internal/temporalcluster"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// harness is what both modes share, on package testenv: the binaries built
// for this run, the generated secrets, the Temporal server and a client,
// the receiver, and every process started.
type harness struct {
	cfg    config
	out    io.Writer // progress and the report
	runID  string
	tmp    string // binaries, key, token, endpoints files; removed on close
	logDir string // every process's log, kept

	secret    string // the endpoints' signing secret; never printed
	token     string // serve's API token, in tokenFile; never printed
	tokenFile string

	server testenv.Server
	// serverProcs are the server's processes, when the bench runs it (the
	// dev server, or a cluster's four services): their CPU and memory are
	// among the figures.
	serverProcs []member
	// hr runs worker, starter and the lean worker against the server.
	hr        testenv.Hookrelay
	client    client.Client
	logs      []*os.File // the server's and the client's
	rc        *testenv.Receiver
	processes []*testenv.Process

	// heal switches the drain and absorb modes' receiver from 503 to 200.
	heal func() time.Time
	// registry is the throughput mode's endpoint registry (--endpoints-db); nil: the YAML file.
	registry *benchRegistry
	// log is the throughput mode's delivery log (--log-db), once created;
	// while logOn, every worker and serve started keeps its log there.
	log   *benchLog
	logOn bool
	// compareBin holds worker and starter built at --compare's revision;
	// while phaseBin is set, every worker and serve started runs from there.
	// phaseTag ("": none) tells a comparison's phases' processes (and their
	// logs) apart.
	compareBin string
	phaseBin   string
	phaseTag   string
	// endpointAccount is the account_id writeEndpoints gives its endpoint
	// ("": none): the log records only deliveries of events with an account.
	endpointAccount string
}

// newHarness builds worker and starter, generates a codec key, a signing
// secret and an API token, starts (or reaches) Temporal and the receiver.
func newHarness(ctx context.Context, cfg config, out io.Writer) (h *harness, err error) {
	h = &harness{cfg: cfg, out: out, runID: time.Now().UTC().Format("20060102-150405")}
	defer func() {
		if err != nil {
			h.close()
			h = nil
		}
	}()
	if h.tmp, err = os.MkdirTemp("", "hookrelay-bench-"); err != nil {
		return h, fmt.Errorf("temp dir: %w", err)
	}
	h.logDir = filepath.Join(cfg.root, ".temporal", "bench", "logs-"+h.runID)
	if err = os.MkdirAll(h.logDir, 0o700); err != nil {
		return h, fmt.Errorf("log dir: %w", err)
	}
	h.hr = testenv.Hookrelay{Bin: filepath.Join(h.tmp, "bin"), CodecKeyFile: filepath.Join(h.tmp, "codec.key"), LogDir: h.logDir}

	fmt.Fprintf(out, "== building worker and starter (logs in %s)\n", rel(cfg.root, h.logDir))
	if err = testenv.Build(ctx, cfg.root, h.hr.Bin); err != nil {
		return h, err
	}
	if cfg.compareCommit != "" {
		fmt.Fprintf(out, "== building worker and starter at %s (%s)\n", cfg.compare, cfg.compareCommit)
		if h.compareBin, err = buildRevision(ctx, cfg.root, cfg.compareCommit, h.tmp); err != nil {
			return h, err
		}
	}
	if err = h.writeSecrets(); err != nil {
		return h, err
	}
	if err = h.startServer(ctx); err != nil {
		return h, err
	}
	if cfg.endpointsDB != "" {
		// Before the receiver: the registry generates the secret it verifies with.
		if h.registry, err = newBenchRegistry(ctx, cfg.endpointsDB, h.tmp, h.hr.CodecKeyFile); err != nil {
			return h, err
		}
		fmt.Fprintf(out, "== endpoint registry: %s\n", h.registry.where)
		h.secret = h.registry.secret
	}
	clientLog, err := h.logFile("bench-client.log")
	if err != nil {
		return h, err
	}
	logger := slog.New(slog.NewJSONHandler(clientLog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if h.client, err = h.hr.Dial(ctx, logger); err != nil {
		return h, err
	}
	// Serve needs the search attributes before any worker has run.
	if err = temporalclient.EnsureSearchAttributes(ctx, h.client, h.hr.Namespace, workflows.SearchAttributes); err != nil {
		return h, err
	}
	// Park mode's endpoint never accepts: every attempt parks its delivery.
	answer := testenv.Always(http.StatusOK)
	switch cfg.mode {
	case modePark:
		answer = testenv.Always(http.StatusServiceUnavailable) // no Retry-After: the schedule decides
	case modeDrain, modeAbsorb:
		answer, h.heal = testenv.Healable(http.StatusServiceUnavailable) // down until the bench heals it
	}
	if h.rc, err = testenv.NewReceiver(testenv.ReceiverOptions{Secret: h.secret, Answer: answer}); err != nil {
		return h, err
	}
	if h.registry != nil {
		if err = h.registry.pointAt(ctx, h.rc.URL); err != nil {
			return h, err
		}
	}
	return h, nil
}

// startServer starts the dev server from bin/temporal, in memory on a free
// port with hookrelay's search attributes, or reaches the server the run
// asked for (--temporal-address, HOOKRELAY_TEST_SERVER).
func (h *harness) startServer(ctx context.Context) error {
	cfg := h.cfg
	serverLog, err := h.logFile("temporal.log")
	if err != nil {
		return err
	}
	if cfg.serverMode == testenv.ModeCluster {
		fmt.Fprintf(h.out, "== using Temporal at %s (namespace %s)\n", cfg.temporalAddress, cfg.namespace)
	}
	if cfg.serverMode == testenv.ModePostgres {
		fmt.Fprintf(h.out, "== starting a Temporal server on PostgreSQL, its services as processes (logs in %s)\n", rel(cfg.root, h.logDir))
	}
	h.server, err = testenv.StartServer(ctx, testenv.ServerOptions{
		Mode: cfg.serverMode, Address: cfg.temporalAddress, Namespace: cfg.namespace,
		TemporalCLI: cfg.temporalCLI, ExtraArgs: cfg.serverArgs, Log: serverLog, LogDir: h.logDir,
	})
	if err != nil {
		return fmt.Errorf("Temporal server (%s mode): %w", cfg.serverMode, err)
	}
	h.hr.Address, h.hr.Namespace = h.server.FrontendHostPort(), h.server.Namespace()
	if sec, ok := testenv.ServerSecurity(h.server); ok {
		h.hr.Security = sec // the cluster's client certificate: its frontend admits no other
	}
	switch s := h.server.(type) {
	case *testenv.DevServer:
		if s.PID() > 0 {
			h.serverProcs = []member{{"temporal", s.PID()}}
		}
		fmt.Fprintf(h.out, "== starting a dev server on %s (%s)\n", h.hr.Address, rel(cfg.root, cfg.temporalCLI))
	case *testenv.RemoteServer:
		if cfg.serverMode == testenv.ModeDocker {
			fmt.Fprintf(h.out, "== started a dev server container (%s:%s) on %s, namespace %s\n",
				testenv.DockerImageRepository, testenv.DockerImageTag, h.hr.Address, h.hr.Namespace)
		}
	case *temporalcluster.Cluster:
		for _, svc := range temporalcluster.Services {
			h.serverProcs = append(h.serverProcs, member{"temporal-" + string(svc), s.PID(svc)})
		}
		temporalDB, visibilityDB := s.Databases()
		fmt.Fprintf(h.out, "   frontend %s, databases %s and %s (dropped at the end)\n", h.hr.Address, temporalDB, visibilityDB)
	}
	return nil
}

// logFile creates a log of the bench's own in the run's log directory.
func (h *harness) logFile(name string) (*os.File, error) {
	f, err := os.Create(filepath.Join(h.logDir, name))
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", name, err)
	}
	h.logs = append(h.logs, f)
	return f, nil
}

// close stops every process (the last started first), the receiver, the
// client and the server, and removes the temporary files (binaries, key,
// token). Logs stay.
func (h *harness) close() []error {
	var errs []error
	for i := len(h.processes) - 1; i >= 0; i-- {
		if err := h.processes[i].Stop(30 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if h.rc != nil {
		h.rc.Close()
	}
	if h.client != nil {
		h.client.Close()
	}
	if h.registry != nil {
		if err := h.registry.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.log.close(); err != nil {
		errs = append(errs, err)
	}
	if h.server != nil {
		if err := h.server.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop Temporal server: %w", err))
		}
	}
	for _, f := range h.logs {
		f.Close()
	}
	if h.tmp != "" {
		os.RemoveAll(h.tmp)
	}
	return errs
}

// writeSecrets generates this run's payload key, signing secret and API
// token, in files only the bench's children read.
func (h *harness) writeSecrets() error {
	if err := testenv.WriteCodecKey(h.hr.CodecKeyFile, "bench"); err != nil {
		return err
	}
	h.secret, h.token = testenv.NewSecret(), testenv.NewToken()
	h.tokenFile = filepath.Join(h.tmp, "api-token")
	if err := os.WriteFile(h.tokenFile, []byte(h.token+"\n"), 0o600); err != nil {
		return fmt.Errorf("api token: %w", err)
	}
	return nil
}

// writeEndpoints writes an endpoints file with one endpoint, pointing at
// the receiver, and returns its path; circuit is its circuit's settings
// ("": the default), its account h.endpointAccount.
func (h *harness) writeEndpoints(name, id string, schedule []time.Duration, circuit string) (string, error) {
	path := filepath.Join(h.tmp, name)
	e := testenv.Endpoint{ID: id, URL: h.rc.URL, Secret: h.secret, Timeout: 15 * time.Second, RetrySchedule: schedule}
	if circuit != "" {
		e.Extra = "    circuit: {" + circuit + "}\n"
	}
	if h.endpointAccount != "" {
		e.Extra += "    account_id: " + h.endpointAccount + "\n"
	}
	return path, testenv.WriteEndpoints(path, e)
}

// start starts s, to be stopped by close if the bench does not stop it first.
func (h *harness) start(ctx context.Context, s testenv.Spec) (*testenv.Process, error) {
	p, err := testenv.Start(ctx, s)
	if err != nil {
		return nil, err
	}
	h.processes = append(h.processes, p)
	return p, nil
}

// on is h.hr on taskQueue, running the programs in h.phaseBin if set.
func (h *harness) on(taskQueue string) testenv.Hookrelay {
	hr := h.hr
	hr.TaskQueue = taskQueue
	if h.phaseBin != "" {
		hr.Bin = h.phaseBin
	}
	return hr
}

// startWorker runs a hookrelay worker process on taskQueue, admitting
// loopback (where the receiver listens) through the network guard.
func (h *harness) startWorker(ctx context.Context, name, taskQueue, endpoints string) (*testenv.Process, error) {
	args := append(endpointsFlag(endpoints), "--allow-cidr", "127.0.0.0/8")
	args = append(append(args, h.logArgs()...), h.cfg.workerArgs...)
	return h.start(ctx, h.on(taskQueue).Worker(name, args...))
}

// serveProc is `starter serve` and the address it listens on.
type serveProc struct {
	*testenv.Process
	url string
}

// startHookrelay starts n worker processes and starter serve on taskQueue,
// and a client that submits through serve with concurrency submitters.
func (h *harness) startHookrelay(ctx context.Context, n int, taskQueue, endpoints string, concurrency int) ([]*testenv.Process, *serveProc, *testenv.EventsClient, error) {
	var workers []*testenv.Process
	for i := range n {
		w, err := h.startWorker(ctx, fmt.Sprintf("worker-%d%s", i+1, h.procSuffix()), taskQueue, endpoints)
		if err != nil {
			return nil, nil, nil, err
		}
		workers = append(workers, w)
	}
	serve, err := h.startServe(ctx, taskQueue, endpoints)
	if err != nil {
		return nil, nil, nil, err
	}
	sc := testenv.NewEventsClient(serve.url, h.token, concurrency)
	sc.TransportRetries = 5
	return workers, serve, sc, nil
}

// startServe runs `starter serve` on a free loopback port with this run's token.
func (h *harness) startServe(ctx context.Context, taskQueue, endpoints string) (*serveProc, error) {
	p, err := h.start(ctx, h.on(taskQueue).Serve("serve"+h.procSuffix(), h.tokenFile, slices.Concat(endpointsFlag(endpoints), h.logArgs(), h.cfg.serveArgs)...))
	if err != nil {
		return nil, err
	}
	addr, err := p.LoggedAddr(testenv.ServeListening)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return &serveProc{Process: p, url: "http://" + addr}, nil
}

// procSuffix tells the with-log phase's processes (and their logs) from
// the first phase's, and a comparison's phases from each other.
func (h *harness) procSuffix() string {
	if h.phaseTag != "" {
		return "-" + h.phaseTag
	}
	if h.logOn {
		return "-log"
	}
	return ""
}

// logArgs give a worker or serve the delivery log while h.logOn.
func (h *harness) logArgs() []string {
	if !h.logOn {
		return nil
	}
	return []string{"--log-db", h.log.dsn}
}

// startLeanWorker runs this program's lean-worker subcommand on taskQueue.
func (h *harness) startLeanWorker(ctx context.Context, name, taskQueue string) (*testenv.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("lean worker: find this program: %w", err)
	}
	secretFile := filepath.Join(h.tmp, "lean-secret")
	if err := os.WriteFile(secretFile, []byte(h.secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("lean worker: secret file: %w", err)
	}
	args := append([]string{leanWorkerCommand, "--secret-file", secretFile, "--url", h.rc.URL}, h.cfg.baselineArgs...)
	s := h.on(taskQueue).Spec(name, self, args...)
	s.Ready = leanWorkerReady
	return h.start(ctx, s)
}

// rel shows path relative to the repository when it is inside it.
func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// errIncomplete marks a phase that did not finish in --timeout.
var errIncomplete = errors.New("incomplete")
