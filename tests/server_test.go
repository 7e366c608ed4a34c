package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// The suite's Temporal server is, in this order of preference:
//
//	TEMPORAL_ADDRESS set        an existing cluster ("cluster" mode), reached with the
//	                            TEMPORAL_TLS_* / TEMPORAL_API_KEY* variables if set
//	a Docker engine answers     the Temporal CLI's dev server image in a container
//	                            started with dockertest ("docker" mode)
//	otherwise                   bin/temporal, as testsuite.StartDevServer ("devserver" mode)
//
// HOOKRELAY_TEST_SERVER=cluster|docker|devserver forces one (make test-docker
// sets docker). The same suite runs in every mode. Tests that stop and
// restart a server of their own always use bin/temporal (startOwnDevServer).
const envTestServer = "HOOKRELAY_TEST_SERVER"

const (
	modeCluster   = "cluster"
	modeDocker    = "docker"
	modeDevServer = "devserver"
)

// dockerImage is the Temporal CLI's image at the version `make tools`
// builds into bin/temporal (TEMPORAL_CLI_VERSION in the Makefile; a test
// checks they agree), so both modes run the same server.
const (
	dockerImageRepository = "temporalio/temporal"
	dockerImageTag        = "1.5.1"
)

// temporalServer is what the suite needs of its server. *testsuite.DevServer
// is one; the other modes provide the same.
type temporalServer interface {
	FrontendHostPort() string
	// Client has no codec: it sees payloads as Temporal stores them.
	Client() client.Client
	Stop() error
}

var (
	// serverMode is how this run got its server; serverSkip, when set, is
	// why there is none (docker mode without an engine).
	serverMode, serverSkip string
	// namespace is the suite's namespace: "default" on a server of its own,
	// a fresh one per run on an existing cluster.
	namespace = "default"
	// suiteSecurity is how the suite reaches its server: TLS and API key
	// options from the environment in cluster mode, plaintext otherwise.
	suiteSecurity temporalclient.Security
)

// errNoDocker says no Docker engine answered.
type errNoDocker struct{ err error }

func (e errNoDocker) Error() string {
	return "no Docker engine answers (DOCKER_HOST, else the default socket): " + e.err.Error()
}

// chooseMode applies the order above; dockerUp is asked only when needed.
func chooseMode(forced, temporalAddress string, dockerUp func() error) (string, error) {
	switch forced {
	case modeCluster, modeDocker, modeDevServer:
		if forced == modeCluster && temporalAddress == "" {
			return "", fmt.Errorf("%s=%s needs TEMPORAL_ADDRESS", envTestServer, forced)
		}
		return forced, nil
	case "":
	default:
		return "", fmt.Errorf("%s=%q: want %s, %s or %s", envTestServer, forced, modeCluster, modeDocker, modeDevServer)
	}
	if temporalAddress != "" {
		return modeCluster, nil
	}
	if dockerUp() == nil {
		return modeDocker, nil
	}
	return modeDevServer, nil
}

func pingDocker() error {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return errNoDocker{err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pool.Client.PingWithContext(ctx); err != nil {
		return errNoDocker{err}
	}
	return nil
}

// startServer starts or connects to the suite's server for the chosen mode.
// In docker mode without an engine it returns a nil server and sets serverSkip.
func startServer(ctx context.Context, serverLog io.Writer) (temporalServer, error) {
	mode, err := chooseMode(os.Getenv(envTestServer), os.Getenv("TEMPORAL_ADDRESS"), pingDocker)
	if err != nil {
		return nil, err
	}
	serverMode = mode
	switch mode {
	case modeCluster:
		// The same flags and environment fallbacks as worker and starter.
		var o temporalclient.Options
		o.AddFlags(pflag.NewFlagSet("tests", pflag.ContinueOnError))
		suiteSecurity = o.Security
		c, err := connectCluster(ctx, os.Getenv("TEMPORAL_ADDRESS"), os.Getenv("TEMPORAL_NAMESPACE"), suiteSecurity, nil)
		if err != nil {
			return nil, err
		}
		namespace = c.namespace
		return c, nil
	case modeDocker:
		if err := pingDocker(); err != nil {
			serverSkip = fmt.Sprintf("dockertest mode (%s=%s): %v; the same suite runs against bin/temporal with `make test`", envTestServer, modeDocker, err)
			return nil, nil
		}
		c, err := startContainer(ctx)
		if err != nil {
			return nil, err
		}
		namespace = c.namespace
		return c, nil
	default:
		return testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
			ExistingPath:  temporalCLI,
			ClientOptions: &client.Options{Namespace: namespace, Logger: quietSDKLogger()},
			LogLevel:      "warn",
			Stdout:        serverLog,
			Stderr:        serverLog,
		})
	}
}

// cluster is a server the suite reaches by address: an existing cluster, or
// the container of docker mode.
type cluster struct {
	addr      string
	namespace string
	raw       client.Client
	created   string       // the namespace this run registered, deleted at Stop
	stop      func() error // stops the container, in docker mode
}

func (c *cluster) FrontendHostPort() string { return c.addr }
func (c *cluster) Client() client.Client    { return c.raw }

func (c *cluster) Stop() error {
	var errs []error
	if c.created != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.raw.OperatorService().DeleteNamespace(ctx, &operatorservice.DeleteNamespaceRequest{Namespace: c.created})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", c.created, err))
		}
	}
	c.raw.Close()
	if c.stop != nil {
		errs = append(errs, c.stop())
	}
	return errors.Join(errs...)
}

// connectCluster connects to the frontend at addr. Without a namespace given
// it registers a fresh one for this run, since the suite's workflow IDs
// repeat from run to run and would meet the last run's deliveries; with one
// (Temporal Cloud, where the API does not create namespaces) it uses it as is.
// Both docker and cluster mode come through here, and so does a test run on
// every machine (TestSuiteSetupOnAnExistingCluster).
func connectCluster(ctx context.Context, addr, ns string, sec temporalclient.Security, stop func() error) (*cluster, error) {
	create := ns == ""
	if create {
		suffix := make([]byte, 4)
		rand.Read(suffix)
		ns = "hookrelay-tests-" + hex.EncodeToString(suffix)
	}
	raw, err := temporalclient.Dial(ctx, temporalclient.Options{
		Address: addr, Namespace: ns, TaskQueue: "unused", InsecurePlaintext: true, Security: sec,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		if stop != nil {
			stop()
		}
		return nil, err
	}
	c := &cluster{addr: addr, namespace: ns, raw: raw, stop: stop}
	if create {
		_, err := raw.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        ns,
			Description:                      "hookrelay integration tests, one run; deleted when the run ends",
			WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
		})
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("register namespace %s at %s: %w", ns, addr, err)
		}
		c.created = ns
	}
	// A new namespace answers once the frontend's namespace cache has it.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := raw.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("namespace %s at %s not usable after a minute: %w", ns, addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c, nil
}

// startContainer runs the dev server image, bound to a free port on
// 127.0.0.1, and connects to it as to any cluster.
func startContainer(ctx context.Context) (*cluster, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, err
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository:   dockerImageRepository,
		Tag:          dockerImageTag,
		Cmd:          []string{"server", "start-dev", "--ip", "0.0.0.0", "--headless", "--log-level", "warn"},
		ExposedPorts: []string{"7233/tcp"},
		PortBindings: map[docker.Port][]docker.PortBinding{"7233/tcp": {{HostIP: "127.0.0.1", HostPort: ""}}},
		Labels:       map[string]string{"org.hookrelay.tests": "temporal"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, fmt.Errorf("start %s:%s (pulled on first use; %s=%s uses bin/temporal instead): %w",
			dockerImageRepository, dockerImageTag, envTestServer, modeDevServer, err)
	}
	// A run that dies without cleanup leaves no container beyond this.
	res.Expire(uint((30 * time.Minute).Seconds()))
	stop := func() error { return pool.Purge(res) }
	addr := res.GetHostPort("7233/tcp")
	pool.MaxWait = 2 * time.Minute
	err = pool.Retry(func() error {
		c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: quietSDKLogger()})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("dev server container at %s did not answer: %w", addr, err)
	}
	return connectCluster(ctx, addr, "", temporalclient.Security{}, stop)
}

// TestTemporalServerMode reports which server the suite runs against and
// checks it answers in the suite's namespace. In docker mode without a
// Docker engine it is the only test run, and it skips saying so.
func TestTemporalServerMode(t *testing.T) {
	if serverSkip != "" {
		t.Skip(serverSkip)
	}
	t.Logf("Temporal server: %s mode, %s, namespace %s, %s", serverMode, devServer.FrontendHostPort(), namespace, suiteSecurity.Mode())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := rawTemporal.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	if err != nil || resp.GetNamespaceInfo().GetName() != namespace {
		t.Fatalf("describe namespace %s: %v %v", namespace, resp, err)
	}
}

func TestChooseMode(t *testing.T) {
	up := func() error { return nil }
	down := func() error { return errNoDocker{errors.New("connection refused")} }
	for _, c := range []struct {
		forced, address string
		docker          func() error
		want, err       string
	}{
		{"", "temporal.internal:7233", up, modeCluster, ""},
		{"", "", up, modeDocker, ""},
		{"", "", down, modeDevServer, ""},
		{modeDocker, "", down, modeDocker, ""}, // then skips, saying why
		{modeDocker, "temporal.internal:7233", up, modeDocker, ""},
		{modeDevServer, "temporal.internal:7233", up, modeDevServer, ""},
		{modeCluster, "", up, "", "needs TEMPORAL_ADDRESS"},
		{"kubernetes", "", up, "", `want cluster, docker or devserver`},
	} {
		got, err := chooseMode(c.forced, c.address, c.docker)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("chooseMode(%q, %q): %q, %v; want %q, %q", c.forced, c.address, got, err, c.want, c.err)
		}
	}
}

// The container runs the dev server of the same CLI version bin/temporal is built from.
func TestDockerImageMatchesTheCLIVersion(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	want := "TEMPORAL_CLI_VERSION := v" + dockerImageTag + "\n"
	if !strings.Contains(string(makefile), want) {
		t.Fatalf("the Makefile lacks %q: update dockerImageTag with TEMPORAL_CLI_VERSION", strings.TrimSpace(want))
	}
}

// The path docker and cluster modes take once they have an address, run
// here against a dev server of its own: a fresh namespace registered and
// usable, a worker and the starter delivering in it, and the namespace
// deleted at the end.
func TestSuiteSetupOnAnExistingCluster(t *testing.T) {
	ds := startOwnDevServer(t, testsuite.DevServerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := connectCluster(ctx, ds.FrontendHostPort(), "", temporalclient.Security{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Stop()
		}
	})
	if !strings.HasPrefix(c.namespace, "hookrelay-tests-") || c.namespace == namespace {
		t.Fatalf("namespace %q: want a fresh one", c.namespace)
	}
	inNamespace := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.Env = append(cmd.Env, "TEMPORAL_NAMESPACE="+c.namespace)
		return cmd
	}

	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL+"/hooks", "")
	startProc(t, inNamespace(hookrelayCmd(t, c.addr, "worker", "--endpoints", endpoints, "--allow-cidr", "127.0.0.0/8")), `"worker started"`)
	cmd := inNamespace(hookrelayCmd(t, c.addr, "starter", "send", "--endpoints", endpoints, "--output", "json"))
	cmd.Stdin = strings.NewReader(sampleEvent(event.Delivered, 901))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("starter send: %v\n%s", err, out)
	}
	var started startedLine
	if err := json.Unmarshal(out, &started); err != nil {
		t.Fatalf("starter send output %q: %v", out, err)
	}
	status, err := inNamespace(hookrelayCmd(t, c.addr, "starter", "status", started.WorkflowID, "--wait", "--output", "json")).Output()
	if err != nil {
		t.Fatalf("starter status --wait: %v\n%s", err, status)
	}
	var st workflows.DeliveryState
	if err := json.Unmarshal(status, &st); err != nil || st.Status != workflows.StatusDelivered {
		t.Fatalf("delivery in namespace %s: %s (%v)", c.namespace, status, err)
	}
	if reqs := rc.requests(); len(reqs) != 1 || reqs[0].VerifyErr != nil {
		t.Fatalf("receiver got %+v", reqs)
	}
	// The dev server's other namespace does not see it: namespaces keep runs apart.
	if _, err := ds.Client().DescribeWorkflowExecution(ctx, started.WorkflowID, ""); err == nil {
		t.Fatalf("%s is visible in namespace %s too", started.WorkflowID, namespace)
	}

	stopped = true
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "namespace "+c.namespace+" to be deleted", func() bool {
		resp, err := ds.Client().WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: c.namespace})
		var notFound *serviceerror.NamespaceNotFound
		return errors.As(err, &notFound) || resp.GetNamespaceInfo().GetState() == enumspb.NAMESPACE_STATE_DELETED
	})
}
