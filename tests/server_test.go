package tests

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// The suite's Temporal server is, in this order of preference (package
// testenv chooses, and the bench chooses the same way):
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

// TestTemporalServerMode reports which server the suite runs against and
// checks it answers in the suite's namespace. In docker mode without a
// Docker engine it is the only test run, and it skips saying so.
func TestTemporalServerMode(t *testing.T) {
	if serverSkip != "" {
		t.Skip(serverSkip)
	}
	t.Logf("Temporal server: %s mode, %s, namespace %s, %s", serverMode, server.FrontendHostPort(), namespace, suiteSecurity.Mode())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := rawTemporal.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	if err != nil || resp.GetNamespaceInfo().GetName() != namespace {
		t.Fatalf("describe namespace %s: %v %v", namespace, resp, err)
	}
}

// The path docker and cluster modes take once they have an address, run
// here against a dev server of its own: a fresh namespace registered and
// usable, a worker and the starter delivering in it, and the namespace
// deleted at the end.
func TestSuiteSetupOnAnExistingCluster(t *testing.T) {
	ds := startOwnDevServer(t, testenv.DevServerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testenv.ConnectCluster(ctx, ds.FrontendHostPort(), "", temporalclient.Security{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Stop()
		}
	})
	if !strings.HasPrefix(c.Namespace(), "hookrelay-tests-") || c.Namespace() == namespace {
		t.Fatalf("namespace %q: want a fresh one", c.Namespace())
	}
	h := on(hookrelay(t), c.FrontendHostPort())
	h.Namespace = c.Namespace()

	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL+"/hooks", "")
	testenv.StartT(t, h.Worker("worker", "--endpoints", endpoints, "--allow-cidr", "127.0.0.0/8"))
	cmd := h.Command("starter", "send", "--endpoints", endpoints, "--output", "json")
	cmd.Stdin = strings.NewReader(sampleEvent(event.Delivered, 901))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("starter send: %v\n%s", err, out)
	}
	var started startedLine
	if err := json.Unmarshal(out, &started); err != nil {
		t.Fatalf("starter send output %q: %v", out, err)
	}
	status, err := h.Command("starter", "status", started.WorkflowID, "--wait", "--output", "json").Output()
	if err != nil {
		t.Fatalf("starter status --wait: %v\n%s", err, status)
	}
	var st workflows.DeliveryState
	if err := json.Unmarshal(status, &st); err != nil || st.Status != workflows.StatusDelivered {
		t.Fatalf("delivery in namespace %s: %s (%v)", c.Namespace(), status, err)
	}
	if reqs := rc.Requests(); len(reqs) != 1 || reqs[0].VerifyErr != nil {
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
	testenv.Eventually(t, time.Minute, "namespace "+c.Namespace()+" to be deleted", func() bool {
		resp, err := ds.Client().WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: c.Namespace()})
		var notFound *serviceerror.NamespaceNotFound
		return errors.As(err, &notFound) || resp.GetNamespaceInfo().GetState() == enumspb.NAMESPACE_STATE_DELETED
	})
}
