// Package tests runs hookrelay end to end: a real Temporal server (an
// existing cluster, a dev server container, or bin/temporal built by `make
// tools`, as package testenv chooses: see server_test.go), the worker as OS
// processes, the starter binary, and real HTTP receivers on loopback that
// verify signatures.
package tests

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
)

var (
	// server is the suite's Temporal server, whichever mode provides it.
	server testenv.Server
	// serverMode is how this run got its server; serverSkip, when set, is
	// why there is none (docker mode without an engine).
	serverMode testenv.Mode
	serverSkip string
	// namespace is the suite's namespace: "default" on a server of its own,
	// a fresh one per run on an existing cluster.
	namespace = "default"
	// suiteSecurity is how the suite reaches its server: TLS and API key
	// options from the environment in cluster mode, the cluster's client
	// certificate in postgres mode, plaintext otherwise.
	suiteSecurity temporalclient.Security
	// temporal decrypts payloads with this run's key, as worker and starter do.
	temporal client.Client
	// rawTemporal has no codec: it sees payloads as Temporal stores them.
	rawTemporal  client.Client
	binDir       string // worker and starter built for this run
	temporalCLI  string // bin/temporal; optional unless the suite's server is a dev server
	codecKeyFile string // this run's payload encryption key, generated in TestMain
	// dataConverter decrypts with codecKeyFile, as workers and the starter do.
	dataConverter converter.DataConverter
)

// codecKeyID names this run's payload encryption key.
const codecKeyID = "tests"

// testSecret is a fake signing secret for tests only.
const testSecret = "whsec_dGVzdC1vbmx5LXNlY3JldC1ub3QtZm9yLXByb2R1Y3Rpb24="

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (code int, err error) {
	root, err := testenv.Root()
	if err != nil {
		return 0, err
	}
	temporalCLI = filepath.Join(root, "bin", "temporal")
	if binDir, err = os.MkdirTemp("", "hookrelay-tests-"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(binDir)

	serverLog, err := os.Create(filepath.Join(binDir, "temporal.log"))
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a first docker run pulls the image
	defer cancel()
	address := os.Getenv("TEMPORAL_ADDRESS")
	if serverMode, err = testenv.ChooseMode(os.Getenv(testenv.EnvServer), address, testenv.PingDocker); err != nil {
		return 0, err
	}
	opts := testenv.ServerOptions{Mode: serverMode, TemporalCLI: temporalCLI, Log: serverLog}
	if serverMode == testenv.ModePostgres {
		// The cluster's logs outlive the run when it fails, to be read.
		if opts.LogDir, err = os.MkdirTemp("", "hookrelay-tests-cluster-"); err != nil {
			return 0, err
		}
		defer func() {
			if code == 0 && err == nil {
				os.RemoveAll(opts.LogDir)
			} else {
				fmt.Fprintln(os.Stderr, "tests: the Temporal cluster's logs are kept in", opts.LogDir)
			}
		}()
	}
	if serverMode == testenv.ModeCluster {
		// The same environment fallbacks as worker and starter.
		opts.Address, opts.Namespace, opts.Security = address, os.Getenv("TEMPORAL_NAMESPACE"), testenv.SecurityFromEnv()
		suiteSecurity = opts.Security
	}
	server, err = testenv.StartServer(ctx, opts)
	if serverMode == testenv.ModeDocker && errors.Is(err, testenv.ErrNoDocker) {
		// Only TestTemporalServerMode runs, to skip saying so.
		serverSkip = fmt.Sprintf("dockertest mode (%s=%s): %v; the same suite runs against bin/temporal with `make test`", testenv.EnvServer, serverMode, err)
		flag.Parse()
		flag.Set("test.run", "^TestTemporalServerMode$")
		return m.Run(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("Temporal server: %w", err)
	}
	defer func() {
		if err := server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "tests: stop Temporal server:", err)
		}
	}()
	namespace = server.Namespace()
	if sec, ok := testenv.ServerSecurity(server); ok {
		suiteSecurity = sec // a cluster started for the run: its client certificate
	}

	if err := testenv.Build(context.Background(), root, binDir); err != nil {
		return 0, err
	}
	codecKeyFile = filepath.Join(binDir, "codec.key")
	if err := testenv.WriteCodecKey(codecKeyFile, codecKeyID); err != nil {
		return 0, err
	}
	rawTemporal = server.Client()
	suite := testenv.Hookrelay{Address: server.FrontendHostPort(), Namespace: namespace, CodecKeyFile: codecKeyFile, Security: suiteSecurity}
	if temporal, err = suite.Dial(ctx, nil); err != nil {
		return 0, err
	}
	defer temporal.Close()
	if dataConverter, err = suite.Options().DataConverter(); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// hookrelay is how t runs worker and starter: the binaries built for this
// run, against the suite's server in its namespace, on t's task queue,
// encrypting with this run's key. Tests give serve its token as a file, and
// choose how to reach Temporal: settings inherited from the environment
// would change what they check, so the processes get none.
func hookrelay(t testing.TB) testenv.Hookrelay {
	return testenv.Hookrelay{
		Bin: binDir, Address: server.FrontendHostPort(), Namespace: namespace, TaskQueue: taskQueue(t),
		CodecKeyFile: codecKeyFile, Security: suiteSecurity, ReadyTimeout: 30 * time.Second,
	}
}

// on is h against another Temporal frontend (a test's own dev server, a TLS
// proxy), reached in plaintext unless the test says otherwise.
func on(h testenv.Hookrelay, addr string) testenv.Hookrelay {
	h.Address, h.Security = addr, temporalclient.Security{}
	return h
}

// startWorker runs bin/worker on the test's task queue against the suite's
// server, admitting loopback (where the test receivers listen) through the
// network guard, and waits until it polls. Cleanup stops it with SIGTERM
// and expects exit status 0.
func startWorker(t *testing.T, endpoints string, extraArgs ...string) *testenv.Process {
	t.Helper()
	return testenv.StartT(t, hookrelay(t).Worker("worker", append([]string{"--endpoints", endpoints, "--allow-cidr", "127.0.0.0/8"}, extraArgs...)...))
}

// attempts counts the attempts a worker made, from its audit lines.
func attempts(w *testenv.Process) int {
	return strings.Count(w.Log(), `"msg":"attempt finished"`)
}

// temporalCLIConn are the Temporal CLI's flags that reach the suite's
// server, in its namespace, as the suite does (its client certificate in
// postgres mode).
func temporalCLIConn() []string {
	return testenv.CLIConnArgs(server.FrontendHostPort(), namespace, suiteSecurity)
}

// needTemporalCLI skips t where bin/temporal is absent, which only the
// cluster and docker modes allow.
func needTemporalCLI(t *testing.T, why string) {
	t.Helper()
	if _, err := os.Stat(temporalCLI); err != nil {
		t.Skipf("%s needs the Temporal CLI at %s (make tools), absent in %s mode: %v", why, temporalCLI, serverMode, err)
	}
}

// startOwnDevServer starts a dev server for t alone, for tests that stop it.
// It is always bin/temporal, whatever the suite's server: these tests stop
// and restart their server, which they cannot do to a shared cluster or
// container. opts.HostPort fixes its address (a restart keeps it) and
// opts.DBFilename makes it persist. It has the suite's namespace. Cleanup
// stops it if it still runs.
func startOwnDevServer(t *testing.T, opts testenv.DevServerOptions) *testenv.DevServer {
	t.Helper()
	needTemporalCLI(t, "a test that stops and restarts its own dev server")
	logFile, err := os.OpenFile(filepath.Join(binDir, "temporal-"+regexp.MustCompile(`\W+`).ReplaceAllString(t.Name(), "-")+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	opts.CLI, opts.Namespace, opts.Log = temporalCLI, namespace, logFile
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ds, err := testenv.StartDevServer(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ds.Client().Close()
		ds.Stop() // an error only says it was stopped already
	})
	return ds
}

// inParallel runs do(i) for every i in [0, n) from workers goroutines and
// returns the errors, in no order. do guards whatever state it shares.
func inParallel(n, workers int, do func(i int) error) []error {
	return testenv.Paced(n, workers, 0, do)
}

// taskQueue gives each test its own task queue, so its workers see only its deliveries.
func taskQueue(t testing.TB) string {
	return "t-" + regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeEndpoints writes an endpoints file of eps, each signing with
// testSecret unless it names another.
func writeEndpoints(t *testing.T, eps ...testenv.Endpoint) string {
	t.Helper()
	for i := range eps {
		if eps[i].Secret == "" {
			eps[i].Secret = testSecret
		}
	}
	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	if err := testenv.WriteEndpoints(path, eps...); err != nil {
		t.Fatal(err)
	}
	return path
}

// endpointsFile writes one endpoint pointing at url; extra adds YAML lines
// to it, and a timeout there replaces the default 5s.
func endpointsFile(t *testing.T, id, url, extra string) string {
	t.Helper()
	e := testenv.Endpoint{ID: id, URL: url, Extra: extra}
	if !strings.Contains(extra, "timeout:") {
		e.Timeout = 5 * time.Second
	}
	return writeEndpoints(t, e)
}

// newReceiver is a receiver on loopback that verifies every request's
// signature with testSecret and answers with respond(n), n counting that
// webhook-id's requests from 1.
func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter) int) *testenv.Receiver {
	t.Helper()
	return testenv.NewReceiverT(t, testenv.ReceiverOptions{Secret: testSecret, KeepRequests: true,
		Answer: func(_ string, n int, w http.ResponseWriter) int { return respond(n, w) }})
}

func always(code int) func(int, http.ResponseWriter) int {
	return func(int, http.ResponseWriter) int { return code }
}

// failFirst answers code to each webhook-id's first k requests, and 200 after.
func failFirst(k, code int) func(int, http.ResponseWriter) int {
	return func(n int, _ http.ResponseWriter) int {
		if n <= k {
			return code
		}
		return http.StatusOK
	}
}

// recoveringReceiver answers failCode to every request until heal is
// called, and 200 after: an endpoint that is down, then comes back.
func recoveringReceiver(t *testing.T, failCode int) (rc *testenv.Receiver, heal func() time.Time) {
	t.Helper()
	answer, heal := testenv.Healable(failCode)
	rc = newReceiver(t, func(n int, w http.ResponseWriter) int { return answer("", n, w) })
	return rc, heal
}

// starter runs the starter binary against the suite's server and returns its output and exit status.
func starter(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := hookrelay(t).Command("starter", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	code, err := testenv.ExitCode(cmd.Run())
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// sampleEvent is a fake event; mailLogID makes it distinct.
func sampleEvent(name string, mailLogID int) string {
	return testenv.FakeEvent("", name, mailLogID, testenv.FakeEventTime)
}

// sampleEvents are n sample events cycling through the event names, their
// mail log ids counting from base.
func sampleEvents(n, base int) []string {
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = sampleEvent(event.Names[i%len(event.Names)], base+i)
	}
	return bodies
}

// localPublisher publishes in this process through tc, on t's task queue,
// to the endpoints in the file at path.
func localPublisher(t *testing.T, tc client.Client, path string) *deliveries.Client {
	t.Helper()
	dc, err := testenv.LocalPublisher(tc, path, taskQueue(t), dataConverter)
	if err != nil {
		t.Fatal(err)
	}
	return dc
}

// rawHistory fetches a workflow's history through the client with no codec:
// the bytes Temporal stores.
func rawHistory(t *testing.T, workflowID string) []*historypb.HistoryEvent {
	t.Helper()
	events, err := testenv.History(context.Background(), rawTemporal, workflowID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 {
		t.Fatalf("history of %s is empty", workflowID)
	}
	return events
}

// countOnQueue checks how many workflows visibility lists on t's task queue.
func countOnQueue(t *testing.T, want int64) {
	t.Helper()
	n, err := testenv.CountWorkflows(context.Background(), temporal, fmt.Sprintf("TaskQueue = %q", taskQueue(t)))
	if err != nil || n != want {
		t.Fatalf("workflows on task queue %s: %d (%v), want %d", taskQueue(t), n, err, want)
	}
}
