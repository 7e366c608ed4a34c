// Package tests runs hookrelay end to end: a real Temporal server (an
// existing cluster, a dev server container, or bin/temporal built by `make
// tools`: see server_test.go), the worker as OS processes, the starter
// binary, and real HTTP receivers on loopback that verify signatures.
package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/webhookverify"
)

var (
	// devServer is the suite's Temporal server, whichever mode provides it
	// (the name stays from when it was always a dev server).
	devServer temporalServer
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

func setup(m *testing.M) (int, error) {
	root, err := filepath.Abs("..")
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
	if mode, _ := chooseMode(os.Getenv(envTestServer), os.Getenv("TEMPORAL_ADDRESS"), pingDocker); mode == modeDevServer {
		if _, err := os.Stat(temporalCLI); err != nil {
			return 0, fmt.Errorf("the integration tests need the Temporal CLI at %s: run `make tools`", temporalCLI)
		}
	}
	server, err := startServer(ctx, serverLog)
	if err != nil {
		return 0, fmt.Errorf("Temporal server: %w", err)
	}
	if server == nil {
		// Docker mode without an engine: only TestTemporalServerMode runs, to skip saying so.
		flag.Parse()
		flag.Set("test.run", "^TestTemporalServerMode$")
		return m.Run(), nil
	}
	devServer = server
	defer func() {
		if err := devServer.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "tests: stop Temporal server:", err)
		}
	}()

	build := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./worker", "./starter")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("build worker and starter: %w", err)
	}
	if codecKeyFile, err = writeCodecKey(binDir); err != nil {
		return 0, err
	}
	rawTemporal = devServer.Client()
	temporal, err = temporalclient.Dial(ctx, temporalclient.Options{
		Address: devServer.FrontendHostPort(), Namespace: namespace, TaskQueue: "unused", CodecKeyFile: codecKeyFile,
		Security: suiteSecurity,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, err
	}
	defer temporal.Close()
	if dataConverter, err = (temporalclient.Options{CodecKeyFile: codecKeyFile}).DataConverter(); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// writeCodecKey writes a fresh key file: keys are generated per run, never committed.
func writeCodecKey(dir string) (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "codec.key")
	content := "# generated for one test run\n" + codecKeyID + ":" + base64.StdEncoding.EncodeToString(key) + "\n"
	return path, os.WriteFile(path, []byte(content), 0o600)
}

func quietSDKLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
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
// container. opts.ClientOptions.HostPort fixes its address (a restart keeps
// it) and opts.DBFilename makes it persist. It has the suite's namespace.
// Cleanup stops it if it still runs.
func startOwnDevServer(t *testing.T, opts testsuite.DevServerOptions) *testsuite.DevServer {
	t.Helper()
	needTemporalCLI(t, "a test that stops and restarts its own dev server")
	logFile, err := os.OpenFile(filepath.Join(binDir, "temporal-"+regexp.MustCompile(`\W+`).ReplaceAllString(t.Name(), "-")+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	co := client.Options{}
	if opts.ClientOptions != nil {
		co = *opts.ClientOptions
	}
	co.Namespace = namespace
	if namespace != "default" {
		opts.ExtraArgs = append(opts.ExtraArgs, "--namespace", namespace)
	}
	co.Logger = quietSDKLogger()
	opts.ClientOptions, opts.ExistingPath, opts.LogLevel, opts.Stdout, opts.Stderr = &co, temporalCLI, "warn", logFile, logFile
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ds, err := testsuite.StartDevServer(ctx, opts)
	if err != nil {
		t.Fatalf("start dev server: %v", err)
	}
	t.Cleanup(func() {
		ds.Client().Close()
		ds.Stop() // an error only says it was stopped already
	})
	return ds
}

// freeAddr finds a loopback address nothing listens on, for a server that
// must come back on the same address after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// inParallel runs do(i) for every i in [0, n) from workers goroutines and
// returns the errors, in no order. do guards whatever state it shares.
func inParallel(n, workers int, do func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// taskQueue gives each test its own task queue, so its workers see only its deliveries.
func taskQueue(t *testing.T) string {
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

// endpointsFile writes one endpoint pointing at url; extra adds YAML lines
// to it, and a timeout there replaces the default 5s.
func endpointsFile(t *testing.T, id, url, extra string) string {
	if !strings.Contains(extra, "timeout:") {
		extra = "    timeout: 5s\n" + extra
	}
	return writeFile(t, "endpoints.yaml", fmt.Sprintf(
		"endpoints:\n  - id: %s\n    url: %s\n    events: [\"*\"]\n    secret: %s\n%s", id, url, testSecret, extra))
}

// received is one request a receiver got.
type received struct {
	ID        string
	Header    http.Header
	Body      []byte
	VerifyErr error
	Status    int
}

// receiver is a real HTTP server on loopback that verifies every request's
// signature and answers with respond(n), n counting that webhook-id's requests from 1.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter) int) *receiver {
	t.Helper()
	verifier, err := webhookverify.New(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{ID: r.Header.Get(webhookverify.HeaderID), Header: r.Header.Clone(), Body: body}
		rec.VerifyErr = verifier.Verify(r.Header, body)
		rc.mu.Lock()
		n := 1
		for _, p := range rc.reqs {
			if p.ID == rec.ID {
				n++
			}
		}
		rc.mu.Unlock()
		rec.Status = http.StatusUnauthorized
		if rec.VerifyErr == nil {
			rec.Status = respond(n, w)
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, rec)
		rc.mu.Unlock()
		w.WriteHeader(rec.Status)
	})}}
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}

func always(code int) func(int, http.ResponseWriter) int {
	return func(int, http.ResponseWriter) int { return code }
}

// recoveringReceiver answers failCode to every request until heal is
// called, and 200 after: an endpoint that is down, then comes back.
func recoveringReceiver(t *testing.T, failCode int) (rc *receiver, heal func()) {
	t.Helper()
	var healthy atomic.Bool
	rc = newReceiver(t, func(int, http.ResponseWriter) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return failCode
	})
	return rc, func() { healthy.Store(true) }
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// hookrelayCmd is the one place the tests build a worker or starter command:
// the binary built for this run, talking to the Temporal frontend at
// temporalAddr in the suite's namespace on the test's task queue,
// encrypting with this run's key.
func hookrelayCmd(t *testing.T, temporalAddr, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	// Tests give serve its token as a file, and choose how to reach
	// Temporal: a token or TLS settings inherited from the environment
	// would change what they check.
	dropped := append([]string{"HOOKRELAY_API_TOKEN"}, temporalclient.SecurityEnv...)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(dropped, name)
	})
	if serverMode == modeCluster && temporalAddr == devServer.FrontendHostPort() {
		// The existing cluster's own TLS and API key settings.
		for _, name := range temporalclient.SecurityEnv {
			if v, ok := os.LookupEnv(name); ok {
				env = append(env, name+"="+v)
			}
		}
	}
	cmd.Env = append(env, "TEMPORAL_ADDRESS="+temporalAddr, "TEMPORAL_NAMESPACE="+namespace, "HOOKRELAY_TASK_QUEUE="+taskQueue(t),
		temporalclient.EnvCodecKeyFile+"="+codecKeyFile)
	return cmd
}

// proc is a worker or `starter serve` OS process.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

// startProc starts cmd and waits until its log contains ready. Cleanup stops
// it with SIGTERM and expects exit status 0.
func startProc(t *testing.T, cmd *exec.Cmd, ready string) *proc {
	t.Helper()
	p := &proc{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(cmd.Path)
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			if err := p.stop(30 * time.Second); err != nil {
				t.Errorf("%s pid %d: %v\n%s", name, p.cmd.Process.Pid, err, p.log)
			}
		}
	})
	eventually(t, 30*time.Second, name+" to start", func() bool {
		select {
		case err := <-p.done:
			t.Fatalf("%s exited early: %v\n%s", name, err, p.log)
		default:
		}
		return strings.Contains(p.log.String(), ready)
	})
	return p
}

// startWorker runs bin/worker on the test's task queue, admitting loopback
// (where the test receivers listen) through the network guard, and waits
// until it polls.
func startWorker(t *testing.T, endpoints string, extraArgs ...string) *proc {
	t.Helper()
	return startWorkerOn(t, devServer.FrontendHostPort(), endpoints, extraArgs...)
}

// startWorkerOn is startWorker against another Temporal frontend.
func startWorkerOn(t *testing.T, temporalAddr, endpoints string, extraArgs ...string) *proc {
	t.Helper()
	return runWorker(t, temporalAddr, endpoints, append([]string{"--allow-cidr", "127.0.0.0/8"}, extraArgs...)...)
}

// startGuardedWorker is startWorker without --allow-cidr: the guard refuses loopback.
func startGuardedWorker(t *testing.T, endpoints string, extraArgs ...string) *proc {
	t.Helper()
	return runWorker(t, devServer.FrontendHostPort(), endpoints, extraArgs...)
}

func runWorker(t *testing.T, temporalAddr, endpoints string, extraArgs ...string) *proc {
	t.Helper()
	args := append([]string{"--endpoints", endpoints}, extraArgs...)
	return startProc(t, hookrelayCmd(t, temporalAddr, "worker", args...), `"worker started"`)
}

// stop sends SIGTERM and waits for a clean exit.
func (w *proc) stop(timeout time.Duration) error {
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	select {
	case err := <-w.done:
		if err != nil {
			return fmt.Errorf("exit after SIGTERM: %w", err)
		}
		return nil
	case <-time.After(timeout):
		w.cmd.Process.Kill()
		return fmt.Errorf("still running %s after SIGTERM", timeout)
	}
}

// kill sends SIGKILL, as a crash or the OOM killer would: no shutdown, no
// last word to Temporal. It waits until the process is gone.
func (w *proc) kill(timeout time.Duration) error {
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	select {
	case err := <-w.done:
		exitErr, ok := err.(*exec.ExitError)
		if !ok {
			return fmt.Errorf("exit after SIGKILL: %v, want killed by the signal", err)
		}
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			return fmt.Errorf("exit after SIGKILL: %v, want killed by the signal", err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("still running %s after SIGKILL", timeout)
	}
}

// attempts counts the attempts this worker made, from its audit lines.
func (w *proc) attempts() int {
	return strings.Count(w.log.String(), `"msg":"attempt finished"`)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// starter runs the starter binary against the dev server and returns its output and exit status.
func starter(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := hookrelayCmd(t, devServer.FrontendHostPort(), "starter", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exitErr, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

// sampleEvent is a fake event; mailLogID makes it distinct.
func sampleEvent(name string, mailLogID int) string {
	return fmt.Sprintf(`{"event_name":%q,"payload":{"id":%d,"subject":"Fake subject %d","time":"2026-04-18T20:27:25.379Z","from":"clinic@sender.example.com","to":"patient%d@recipient.example.com","custom_headers":{"X-Custom-Header":"fake"}}}`,
		name, mailLogID, mailLogID, mailLogID)
}

// rawHistory fetches a workflow's history through the client with no codec:
// the bytes Temporal stores.
func rawHistory(t *testing.T, workflowID string) []*historypb.HistoryEvent {
	t.Helper()
	it := rawTemporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		t.Fatalf("history of %s is empty", workflowID)
	}
	return events
}
