package temporalcluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/hookrelay/hookrelay/workflows"
)

// The tests share one cluster, started by the first test that needs it
// (sharedCluster) and stopped by TestMain. Each test has task queues and
// workflow ids of its own. Without the binaries they skip; without
// PostgreSQL they skip, or fail when CI=true.
var (
	shared        *Cluster
	sharedErr     error
	sharedStart   sync.Once
	sharedLogDir  string
	sharedFailed  bool
	sharedStarted time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop the shared cluster: %v\n", err)
			code = 1
		}
	}
	if sharedLogDir != "" {
		if entries, _ := os.ReadDir(sharedLogDir); len(entries) == 0 {
			os.Remove(sharedLogDir) // no cluster got as far as logging
		} else if code != 0 || sharedFailed {
			fmt.Fprintf(os.Stderr, "cluster logs kept in %s\n", sharedLogDir)
		} else {
			os.RemoveAll(sharedLogDir)
		}
	}
	os.Exit(code)
}

// hookrelaySearchAttributes are the worker's, by name and type.
func hookrelaySearchAttributes() map[string]enumspb.IndexedValueType {
	m := map[string]enumspb.IndexedValueType{}
	for _, k := range workflows.SearchAttributes {
		m[k.GetName()] = k.GetValueType()
	}
	return m
}

// needClusterRun skips a test that starts a cluster unless this is the
// make test-cluster run (HOOKRELAY_TEST_SERVER=postgres), which CI runs
// after make test: started inside make test, beside the integration suite
// on a two-core machine, four server processes miss their timings.
func needClusterRun(t *testing.T) {
	t.Helper()
	if os.Getenv("HOOKRELAY_TEST_SERVER") != "postgres" {
		t.Skip("starts a Temporal cluster: make test-cluster runs these (HOOKRELAY_TEST_SERVER=postgres), as CI does after make test")
	}
}

func sharedCluster(t *testing.T) *Cluster {
	t.Helper()
	needClusterRun(t)
	sharedStart.Do(func() {
		sharedLogDir, sharedErr = os.MkdirTemp("", "temporalcluster-test-")
		if sharedErr != nil {
			return
		}
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared, sharedErr = Start(ctx, Options{LogDir: sharedLogDir, SearchAttributes: hookrelaySearchAttributes()})
		sharedStarted = time.Since(began)
	})
	skipOrFail(t, sharedErr)
	t.Cleanup(func() {
		if t.Failed() {
			sharedFailed = true
		}
	})
	t.Logf("cluster started in %v: frontend %s, namespace %s, databases %s, %s; logs in %s",
		sharedStarted.Round(time.Millisecond), shared.Address(), shared.Namespace(), shared.dbs.temporal, shared.dbs.visibility, shared.LogDir())
	return shared
}

// skipOrFail skips a test that cannot have a cluster on this machine, saying why.
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	switch {
	case err == nil:
	case errors.Is(err, ErrNoBinaries):
		t.Skipf("%v (make test-cluster builds them and runs these tests)", err)
	case errors.Is(err, ErrNoPostgres) && os.Getenv("CI") != "true":
		t.Skipf("%v; CI=true makes this a failure", err)
	default:
		t.Fatal(err)
	}
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// greetInput is the tiny workflow's input: wait, then one activity.
type greetInput struct {
	Name  string
	Sleep time.Duration
}

func sleepThenGreet(ctx workflow.Context, in greetInput) (string, error) {
	if in.Sleep > 0 {
		if err := workflow.Sleep(ctx, in.Sleep); err != nil {
			return "", err
		}
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var greeting string
	if err := workflow.ExecuteActivity(ctx, greet, in.Name).Get(ctx, &greeting); err != nil {
		return "", err
	}
	// Written by history from a workflow task: its namespace cache must know the alias.
	if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.StatusAttr.ValueSet(string(workflows.StatusDelivered))); err != nil {
		return "", err
	}
	return greeting, nil
}

func greet(_ context.Context, name string) (string, error) { return "hello " + name, nil }

// startWorker runs an in-process SDK worker on a task queue of the test's own.
func startWorker(t *testing.T, c *Cluster) string {
	t.Helper()
	tq := "tq-" + strings.ReplaceAll(t.Name(), "/", "-")
	w := worker.New(c.Client(), tq, worker.Options{})
	w.RegisterWorkflow(sleepThenGreet)
	w.RegisterActivity(greet)
	if err := w.Start(); err != nil {
		t.Fatalf("start worker on %s: %v", tq, err)
	}
	t.Cleanup(w.Stop)
	return tq
}

func TestWorkflowListedByCustomSearchAttribute(t *testing.T) {
	c := sharedCluster(t)
	tq := startWorker(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	endpoint := "ep-" + fmt.Sprint(time.Now().UnixNano())
	run, err := c.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "visibility-" + endpoint,
		TaskQueue: tq,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.EndpointAttr.ValueSet(endpoint),
			workflows.EventNameAttr.ValueSet("delivered"),
			workflows.MailLogIDAttr.ValueSet("mail-1"),
			workflows.AttemptsAttr.ValueSet(1),
		),
	}, sleepThenGreet, greetInput{Name: "visibility"})
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil || got != "hello visibility" {
		t.Fatalf("workflow result %q, %v", got, err)
	}

	query := fmt.Sprintf("HookrelayEndpoint = '%s' AND HookrelayStatus = 'delivered' AND HookrelayAttempts = 1 AND ExecutionStatus = 'Completed'", endpoint)
	eventually(t, time.Minute, "the workflow listed by "+query, func() error {
		resp, err := c.Client().ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: c.Namespace(), Query: query})
		if err != nil {
			return err
		}
		if n := len(resp.Executions); n != 1 || resp.Executions[0].GetExecution().GetWorkflowId() != run.GetID() {
			return fmt.Errorf("%d executions listed", n)
		}
		return nil
	})
}

// Every listener of every process is its own port on 127.0.0.1, and each
// process answers on its metrics and pprof ports (what compose's health
// checks ask), and the frontend's HTTP API its cluster info, to a client
// with a certificate.
func TestEachProcessHasItsOwnPorts(t *testing.T) {
	c := sharedCluster(t)
	seen := map[int]string{}
	for _, s := range Services {
		p := c.Ports(s)
		for name, port := range map[string]int{"gRPC": p.GRPC, "membership": p.Membership, "HTTP": p.HTTP, "metrics": p.Metrics, "pprof": p.PProf} {
			if port == 0 {
				continue
			}
			what := fmt.Sprintf("%s %s", s, name)
			if other, ok := seen[port]; ok {
				t.Errorf("port %d: %s and %s", port, other, what)
			}
			seen[port] = what
		}
		urls := []string{
			fmt.Sprintf("http://127.0.0.1:%d/metrics", p.Metrics),
			fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", p.PProf),
		}
		if s == Frontend { // the frontend's HTTP API: over mutual TLS, as its gRPC
			urls = append(urls, fmt.Sprintf("https://127.0.0.1:%d%s", p.HTTP, FrontendHealthPath))
		}
		for _, url := range urls {
			resp, err := httpsClient(t, c).Get(url)
			if err != nil {
				t.Errorf("%s: %v", s, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: GET %s: %s", s, url, resp.Status)
			}
		}
	}
	if len(seen) != 17 {
		t.Errorf("%d distinct ports, want 17 (4 per service, and the frontend's HTTP)", len(seen))
	}

	// What each process really listens on: its own ports, on 127.0.0.1 only.
	for _, s := range Services {
		p := c.Ports(s)
		want := []string{}
		for _, port := range []int{p.GRPC, p.Membership, p.HTTP, p.Metrics, p.PProf} {
			if port != 0 {
				want = append(want, fmt.Sprintf("127.0.0.1:%d", port))
			}
		}
		got, err := listening(c.PID(s))
		if err != nil {
			t.Skipf("listening sockets of %s: %v", s, err)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s listens on %v, want %v", s, got, want)
		}
	}
}

// listening lists the TCP addresses process pid listens on, from Linux's
// /proc: the socket inodes among its descriptors, found in /proc/net/tcp{,6}.
func listening(pid int) ([]string, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var addrs []string
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local_address rem_address st ... inode; 0A is LISTEN.
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			addrs = append(addrs, procNetAddr(f[1]))
		}
	}
	slices.Sort(addrs)
	return addrs, nil
}

// procNetAddr reads /proc/net/tcp's "0100007F:1F90" (IPv4 little-endian
// hex, port hex) as "127.0.0.1:8080"; IPv6 addresses it leaves in hex.
func procNetAddr(s string) string {
	ipHex, portHex, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(portHex, 16, 16)
	if len(ipHex) == 8 {
		ip, _ := strconv.ParseUint(ipHex, 16, 32)
		return fmt.Sprintf("%d.%d.%d.%d:%d", byte(ip), byte(ip>>8), byte(ip>>16), byte(ip>>24), port)
	}
	return fmt.Sprintf("[%s]:%d", ipHex, port)
}

// startWaiting starts n workflows that each wait on a timer of d, then run
// an activity, and returns once every timer is set (the first workflow task
// completed), so none is still waiting for history or matching to begin.
func startWaiting(t *testing.T, c *Cluster, tq string, n int, d time.Duration) []client.WorkflowRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runs := make([]client.WorkflowRun, n)
	err := forEach(n, func(i int) (err error) {
		runs[i], err = c.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:        fmt.Sprintf("%s-%d", tq, i),
			TaskQueue: tq,
		}, sleepThenGreet, greetInput{Name: fmt.Sprint(i), Sleep: d})
		return err
	})
	if err != nil {
		t.Fatalf("start workflows: %v", err)
	}
	eventuallyEach(t, runs, "timer to be set", func(run client.WorkflowRun) error { return timerSet(ctx, c, run) })
	return runs
}

// eventuallyEach polls cond for each run until it has held for every one,
// asking again only about those it has not held for yet.
func eventuallyEach(t *testing.T, runs []client.WorkflowRun, what string, cond func(client.WorkflowRun) error) {
	t.Helper()
	pending := append([]client.WorkflowRun(nil), runs...)
	eventually(t, time.Minute, fmt.Sprintf("each of %d workflows' %s", len(runs), what), func() error {
		var still []client.WorkflowRun
		var first error
		for _, run := range pending {
			if err := cond(run); err != nil {
				still = append(still, run)
				first = cmp.Or(first, err)
			}
		}
		pending = still
		if first != nil {
			return fmt.Errorf("%d to go: %w", len(pending), first)
		}
		return nil
	})
}

// forEach runs f for 0..n-1 concurrently and returns their errors joined.
func forEach(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// timerSet says whether run's first workflow task completed with its timer
// started: events WorkflowExecutionStarted, WorkflowTaskScheduled, -Started,
// -Completed, TimerStarted.
func timerSet(ctx context.Context, c *Cluster, run client.WorkflowRun) error {
	resp, err := c.Client().DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return err
	}
	if resp.GetPendingWorkflowTask() != nil || resp.GetWorkflowExecutionInfo().GetHistoryLength() < 5 {
		return fmt.Errorf("%s: no timer yet", run.GetID())
	}
	return nil
}

// checkAllComplete waits for each run's result.
func checkAllComplete(t *testing.T, runs []client.WorkflowRun) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i, run := range runs {
		var got string
		if err := run.Get(ctx, &got); err != nil {
			t.Fatalf("%s: %v", run.GetID(), err)
		}
		if want := fmt.Sprintf("hello %d", i); got != want {
			t.Fatalf("%s: %q, want %q", run.GetID(), got, want)
		}
	}
}

// killAndRestart kills service, checks its process is gone, runs whileDown,
// restarts it and checks it runs as a new process.
func killAndRestart(t *testing.T, c *Cluster, s Service, whileDown func()) {
	t.Helper()
	old := c.PID(s)
	began := time.Now()
	if err := c.Kill(s); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(old, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("%s (pid %d) still there after Kill: %v", s, old, err)
	}
	if c.PID(s) != 0 {
		t.Fatalf("PID(%s) = %d after Kill", s, c.PID(s))
	}
	killed := time.Since(began)
	whileDown()
	restarting := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Restart(ctx, s); err != nil {
		t.Fatal(err)
	}
	if pid := c.PID(s); pid == 0 || pid == old {
		t.Fatalf("PID(%s) = %d after Restart (was %d)", s, pid, old)
	}
	t.Logf("%s: killed in %v, down for %v, serving again %v after Restart", s,
		killed.Round(time.Millisecond), restarting.Sub(began).Round(time.Millisecond), time.Since(restarting).Round(time.Millisecond))
}

// History dies while 50 workflows wait on timers that fire while it is
// down; once it is back each one resumes and completes.
func TestHistoryKilledWhileTimersWait(t *testing.T) {
	// Restart takes longer than the timers (history reports SERVING 5s
	// after taking its shards), so they come due while it is down or recovering.
	killWhileTimersWait(t, History, 3*time.Second, func(*Cluster, []client.WorkflowRun) {})
}

// Matching dies while 50 workflows wait on timers; the timers fire while it
// is down (history then holds workflow tasks it cannot hand to matching);
// once it is back each one is dispatched to the worker and completes.
func TestMatchingKilledWhileTimersWait(t *testing.T) {
	// Long enough that starting the 50 (a few seconds under -race on two
	// cores) ends well before the first fires.
	killWhileTimersWait(t, Matching, 8*time.Second, func(c *Cluster, runs []client.WorkflowRun) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		eventuallyEach(t, runs, "timer to fire while matching is down", func(run client.WorkflowRun) error {
			resp, err := c.Client().DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
			if err != nil {
				return err
			}
			// Event 6 is TimerFired.
			if resp.GetWorkflowExecutionInfo().GetHistoryLength() < 6 {
				return fmt.Errorf("%s: timer not fired", run.GetID())
			}
			return nil
		})
	})
}

// killWhileTimersWait starts 50 workflows that each wait on a timer of d,
// kills and restarts s (running whileDown while it is down), and checks
// each workflow completes.
func killWhileTimersWait(t *testing.T, s Service, d time.Duration, whileDown func(c *Cluster, runs []client.WorkflowRun)) {
	t.Helper()
	c := sharedCluster(t)
	tq := startWorker(t, c)
	setup := time.Now()
	runs := startWaiting(t, c, tq, 50, d)
	began := time.Now()
	t.Logf("50 workflows started, their timers set, in %v", time.Since(setup).Round(time.Millisecond))
	killAndRestart(t, c, s, func() { whileDown(c, runs) })
	checkAllComplete(t, runs)
	t.Logf("all %d workflows complete %v after the kill", len(runs), time.Since(began).Round(time.Millisecond))
}

// Stop ends every process and drops both databases; a second Stop does nothing.
func TestStopEndsProcessesAndDropsDatabases(t *testing.T) {
	needClusterRun(t)
	logDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{LogDir: logDir, Namespace: "stop-test"})
	skipOrFail(t, err)
	pids := map[Service]int{}
	for _, s := range Services {
		pids[s] = c.PID(s)
	}
	began := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %v", time.Since(began).Round(time.Millisecond))
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for s, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still there after Stop: %v", s, pid, err)
		}
	}
	temporalDB, visibilityDB := c.Databases()
	checkDropped(t, c.tool, temporalDB, visibilityDB)
	if err := c.Kill(History); err == nil {
		t.Error("Kill after Stop: no error")
	}
}

// checkDropped checks each database is gone: setup-schema connects to the
// database itself, so it fails saying so.
func checkDropped(t *testing.T, tool sqlTool, dbs ...string) {
	t.Helper()
	for _, db := range dbs {
		cmd := exec.Command(tool.path, "--plugin", plugin, "--ep", tool.pg.host, "-p", fmt.Sprint(tool.pg.port), "-u", tool.pg.user, "--db", db, "setup-schema", "-v", "0.0")
		cmd.Env = []string{"SQL_PASSWORD=" + tool.pg.password}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "does not exist") {
			t.Errorf("database %s is still there: %v\n%s", db, err, out)
		}
	}
}

// A server process that dies at start fails Start, naming it and its log,
// which stays; the databases Start created are dropped.
func TestStartFailureDropsDatabasesAndKeepsLogs(t *testing.T) {
	needClusterRun(t)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	realBin := filepath.Join(root, "bin", "temporal-server-"+ServerVersion)
	if _, err := os.Stat(filepath.Join(realBin, "sql")); err != nil {
		t.Skipf("%v: %v", ErrNoBinaries, err)
	}
	bin := t.TempDir()
	if err := os.Symlink(filepath.Join(realBin, "sql"), filepath.Join(bin, "sql")); err != nil {
		t.Fatal(err)
	}
	fake := "#!/bin/sh\necho 'fake server: refusing to start' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bin, "server"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	run := "failpath" + fmt.Sprint(time.Now().UnixNano()%1e6)
	defer func(old func() string) { newRunID = old }(newRunID)
	newRunID = func() string { return run }

	logDir := t.TempDir()
	_, err = Start(context.Background(), Options{BinDir: bin, LogDir: logDir})
	if errors.Is(err, ErrNoPostgres) {
		skipOrFail(t, err)
	}
	if err == nil || !strings.Contains(err.Error(), "frontend exited") || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), logDir) {
		t.Fatalf("Start with a server that exits: %v; want the frontend's exit, its log's end and the log dir", err)
	}
	if log, _ := os.ReadFile(filepath.Join(logDir, "frontend.log")); !strings.Contains(string(log), "refusing to start") {
		t.Errorf("frontend.log: %q", log)
	}
	pg, err := parsePostgresURL(Options{}.postgresURL())
	if err != nil {
		t.Fatal(err)
	}
	checkDropped(t, sqlTool{path: filepath.Join(realBin, "sql"), pg: pg}, "hookrelay_"+run+"_temporal", "hookrelay_"+run+"_visibility")
}

func TestStartWithoutBinaries(t *testing.T) {
	_, err := Start(context.Background(), Options{BinDir: t.TempDir(), LogDir: t.TempDir()})
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "make tools-cluster") {
		t.Fatalf("Start without binaries: %v; want ErrNoBinaries naming make tools-cluster", err)
	}
}

func TestParsePostgresURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want postgresTarget
		err  string
	}{
		{DefaultPostgresURL, postgresTarget{user: "postgres", host: "127.0.0.1", port: 5432, database: "postgres"}, ""},
		{"postgresql://root:s3cret@db.internal:6543/admin", postgresTarget{user: "root", password: "s3cret", host: "db.internal", port: 6543, database: "admin"}, ""},
		{"postgres://127.0.0.1", postgresTarget{user: "postgres", host: "127.0.0.1", port: 5432, database: "postgres"}, ""},
		{"postgres://u@[::1]:5433/d?sslmode=prefer", postgresTarget{user: "u", host: "::1", port: 5433, database: "d"}, ""},
		{"mysql://root@127.0.0.1:3306/x", postgresTarget{}, `scheme "mysql"`},
		{"postgres:///postgres?host=/var/run/postgresql", postgresTarget{}, "no host"},
		{"postgres://u:pw@127.0.0.1:port/d", postgresTarget{}, "invalid port"},
		{"postgres://u:pw@127.0.0.1/d?sslmode=require", postgresTarget{}, "sslmode=require is not supported"},
	} {
		got, err := parsePostgresURL(c.url)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("parsePostgresURL(%q) = %+v, %v; want %+v, %q", c.url, got, err, c.want, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("parsePostgresURL(%q): error shows the password: %v", c.url, err)
		}
	}
}

// The Makefile builds the release this package expects.
func TestMakefileBuildsServerVersion(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "TEMPORAL_SERVER_VERSION := " + ServerVersion + "\n"; !strings.Contains(string(makefile), want) {
		t.Fatalf("the Makefile lacks %q: update ServerVersion with TEMPORAL_SERVER_VERSION", strings.TrimSpace(want))
	}
}
