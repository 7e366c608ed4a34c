package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// harness is what both modes share: the binaries built for this run, the
// generated secrets, the Temporal server and a client, the receiver, and
// every process started.
type harness struct {
	cfg    config
	out    io.Writer // progress and the report
	runID  string
	tmp    string // binaries, key, token, endpoints files; removed on close
	logDir string // every process's log, kept
	binDir string

	codecKeyFile string
	secret       string // the endpoints' signing secret; never printed
	tokenFile    string

	temporalAddr string
	server       *proc // nil with --temporal-address
	client       client.Client
	clientLog    *os.File
	rc           *receiver
	procs        procs
	env          []string // children's environment
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
	h.binDir = filepath.Join(h.tmp, "bin")
	h.logDir = filepath.Join(cfg.root, ".temporal", "bench", "logs-"+h.runID)
	if err = os.MkdirAll(h.logDir, 0o700); err != nil {
		return h, fmt.Errorf("log dir: %w", err)
	}
	h.env = childEnv()

	fmt.Fprintf(out, "== building worker and starter (logs in %s)\n", rel(cfg.root, h.logDir))
	if err = h.build(ctx); err != nil {
		return h, err
	}
	if err = h.writeSecrets(); err != nil {
		return h, err
	}
	if h.clientLog, err = os.Create(filepath.Join(h.logDir, "bench-client.log")); err != nil {
		return h, fmt.Errorf("client log: %w", err)
	}
	if cfg.temporalAddress != "" {
		fmt.Fprintf(out, "== using Temporal at %s (namespace %s)\n", cfg.temporalAddress, cfg.namespace)
		h.temporalAddr = cfg.temporalAddress
		if h.client, err = h.dial(ctx); err != nil {
			return h, err
		}
	} else if err = h.startDevServer(ctx); err != nil {
		return h, err
	}
	// The dev server registers them at start; another server may lack them,
	// and serve needs them before any worker has run.
	if err = temporalclient.EnsureSearchAttributes(ctx, h.client, cfg.namespace, workflows.SearchAttributes); err != nil {
		return h, err
	}
	if h.rc, err = startReceiver(h.secret); err != nil {
		return h, err
	}
	return h, nil
}

// close stops every process, the receiver and the client, and removes the
// temporary files (binaries, key, token). Logs stay.
func (h *harness) close() []error {
	errs := h.procs.stopAll(30 * time.Second)
	if h.rc != nil {
		h.rc.close()
	}
	if h.client != nil {
		h.client.Close()
	}
	if h.clientLog != nil {
		h.clientLog.Close()
	}
	if h.tmp != "" {
		os.RemoveAll(h.tmp)
	}
	return errs
}

// childEnv is this environment without hookrelay's and Temporal's
// variables: every setting a child gets is on its command line.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKRELAY_") && !strings.HasPrefix(kv, "TEMPORAL_") {
			env = append(env, kv)
		}
	}
	return env
}

func (h *harness) build(ctx context.Context) error {
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", h.binDir+string(filepath.Separator), "./worker", "./starter")
	cmd.Dir = h.cfg.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./worker ./starter: %w\n%s", err, out)
	}
	return nil
}

// writeSecrets generates this run's payload key, signing secret and API
// token, in files only the bench's children read.
func (h *harness) writeSecrets() error {
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b) // never fails (crypto/rand)
		return b
	}
	h.codecKeyFile = filepath.Join(h.tmp, "codec.key")
	key := "# generated for one bench run\nbench:" + base64.StdEncoding.EncodeToString(random(32)) + "\n"
	if err := os.WriteFile(h.codecKeyFile, []byte(key), 0o600); err != nil {
		return fmt.Errorf("codec key: %w", err)
	}
	h.secret = "whsec_" + base64.StdEncoding.EncodeToString(random(32))
	h.tokenFile = filepath.Join(h.tmp, "api-token")
	if err := os.WriteFile(h.tokenFile, []byte(base64.RawURLEncoding.EncodeToString(random(32))+"\n"), 0o600); err != nil {
		return fmt.Errorf("api token: %w", err)
	}
	return nil
}

// token is the API token serve was given.
func (h *harness) token() (string, error) {
	b, err := os.ReadFile(h.tokenFile)
	return strings.TrimSpace(string(b)), err
}

// writeEndpoints writes an endpoints file with one endpoint and returns its path.
func (h *harness) writeEndpoints(name, id, url string, schedule []time.Duration) (string, error) {
	var delays []string
	for _, d := range schedule {
		delays = append(delays, d.String())
	}
	yaml := fmt.Sprintf("endpoints:\n  - id: %s\n    url: %s\n    events: [\"*\"]\n    secret: %s\n    timeout: 15s\n    retry_schedule: [%s]\n",
		id, url, h.secret, strings.Join(delays, ", "))
	path := filepath.Join(h.tmp, name)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return "", fmt.Errorf("endpoints file: %w", err)
	}
	return path, nil
}

func (h *harness) dial(ctx context.Context) (client.Client, error) {
	logger := slog.New(slog.NewJSONHandler(h.clientLog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return temporalclient.Dial(ctx, temporalclient.Options{
		Address: h.temporalAddr, Namespace: h.cfg.namespace, TaskQueue: "unused", CodecKeyFile: h.codecKeyFile,
	}, logger)
}

// startDevServer runs `temporal server start-dev` in memory on a free port,
// with hookrelay's search attributes, and waits until it answers.
func (h *harness) startDevServer(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	h.temporalAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	fmt.Fprintf(h.out, "== starting a dev server on %s (%s)\n", h.temporalAddr, rel(h.cfg.root, h.cfg.temporalCLI))
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--headless",
		"--log-level", "warn", "--dynamic-config-value", "frontend.enableServerVersionCheck=false"}
	if h.cfg.namespace != "default" {
		args = append(args, "--namespace", h.cfg.namespace)
	}
	for _, k := range workflows.SearchAttributes {
		args = append(args, "--search-attribute", k.GetName()+"="+cliType(k.GetValueType().String()))
	}
	args = append(args, h.cfg.serverArgs...)
	if h.server, err = h.procs.start(ctx, "temporal", h.logDir, h.cfg.temporalCLI, args, h.env, ""); err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := h.dial(ctx)
		if err == nil {
			h.client = c
			return nil
		}
		switch {
		case !h.server.running():
			return fmt.Errorf("dev server exited (%v); see %s", h.server.waitErr, h.server.logPath)
		case time.Now().After(deadline):
			return fmt.Errorf("dev server not answering after 90s: %w", err)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// cliType turns INDEXED_VALUE_TYPE_KEYWORD_LIST into KeywordList, as
// `temporal server start-dev --search-attribute` spells types.
func cliType(enum string) string {
	var b strings.Builder
	for _, part := range strings.Split(strings.TrimPrefix(enum, "INDEXED_VALUE_TYPE_"), "_") {
		if part != "" {
			b.WriteString(part[:1] + strings.ToLower(part[1:]))
		}
	}
	return b.String()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startWorker runs a hookrelay worker process on taskQueue, admitting
// loopback (where the receiver listens) through the network guard.
func (h *harness) startWorker(ctx context.Context, name, taskQueue, endpoints string) (*proc, error) {
	args := []string{"--temporal-address", h.temporalAddr, "--namespace", h.cfg.namespace, "--task-queue", taskQueue,
		"--endpoints", endpoints, "--codec-key-file", h.codecKeyFile, "--allow-cidr", "127.0.0.0/8"}
	args = append(args, h.cfg.workerArgs...)
	return h.procs.start(ctx, name, h.logDir, filepath.Join(h.binDir, "worker"), args, h.env, `"worker started"`)
}

// serveProc is `starter serve` and the address it listens on.
type serveProc struct {
	*proc
	url string
}

// startServe runs `starter serve` on a free loopback port with this run's token.
// startHookrelay starts n worker processes and starter serve on taskQueue,
// and a client that submits through serve with concurrency submitters.
func (h *harness) startHookrelay(ctx context.Context, n int, taskQueue, endpoints string, concurrency int) ([]*proc, *serveProc, *serveClient, error) {
	var workers []*proc
	for i := range n {
		w, err := h.startWorker(ctx, fmt.Sprintf("worker-%d", i+1), taskQueue, endpoints)
		if err != nil {
			return nil, nil, nil, err
		}
		workers = append(workers, w)
	}
	serve, err := h.startServe(ctx, taskQueue, endpoints)
	if err != nil {
		return nil, nil, nil, err
	}
	token, err := h.token()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("api token: %w", err)
	}
	return workers, serve, newServeClient(serve.url, token, concurrency), nil
}

func (h *harness) startServe(ctx context.Context, taskQueue, endpoints string) (*serveProc, error) {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--endpoints", endpoints, "--api-token-file", h.tokenFile,
		"--temporal-address", h.temporalAddr, "--namespace", h.cfg.namespace, "--task-queue", taskQueue, "--codec-key-file", h.codecKeyFile}
	args = append(args, h.cfg.serveArgs...)
	p, err := h.procs.start(ctx, "serve", h.logDir, filepath.Join(h.binDir, "starter"), args, h.env, `"msg":"ingest serving"`)
	if err != nil {
		return nil, err
	}
	var line struct{ Addr string }
	if err := json.Unmarshal([]byte(p.watch.readyLine()), &line); err != nil || line.Addr == "" {
		return nil, fmt.Errorf("serve: no address in its log line %q (%v)", p.watch.readyLine(), err)
	}
	return &serveProc{proc: p, url: "http://" + line.Addr}, nil
}

// startLeanWorker runs this program's lean-worker subcommand on taskQueue.
func (h *harness) startLeanWorker(ctx context.Context, name, taskQueue string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("lean worker: find this program: %w", err)
	}
	secretFile := filepath.Join(h.tmp, "lean-secret")
	if err := os.WriteFile(secretFile, []byte(h.secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("lean worker: secret file: %w", err)
	}
	args := []string{leanWorkerCommand, "--temporal-address", h.temporalAddr, "--namespace", h.cfg.namespace, "--task-queue", taskQueue,
		"--codec-key-file", h.codecKeyFile, "--secret-file", secretFile, "--url", h.rc.url + pathOK}
	args = append(args, h.cfg.baselineArgs...)
	return h.procs.start(ctx, name, h.logDir, self, args, h.env, leanWorkerReady)
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
