package temporalcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/hookrelay/hookrelay/workflows"
)

// httpsClient trusts the cluster's CA and presents its client certificate
// (for the frontend's HTTP API; plain HTTP URLs work as ever).
func httpsClient(t *testing.T, c *Cluster) *http.Client {
	t.Helper()
	cfg, err := c.TLS().ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerName = "" // verified as the URL's host, 127.0.0.1, which the certificate names too
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// A client without a certificate of the cluster's client CA cannot call
// the frontend at all: an endpoint's health workflow, started by it with
// HookrelayCircuit=disabled on a queue no worker polls, is never started,
// whether it comes in plain text, with TLS but no certificate, or with a
// certificate of another CA. The same start with the cluster's client
// certificate succeeds. The HTTP API refuses the same clients.
func TestFrontendAdmitsOnlyClientCertificates(t *testing.T) {
	c := sharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good, err := c.TLS().ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	noCert := good.Clone()
	noCert.Certificates = nil
	// Another CA's client certificate: the cluster's own layout, made afresh.
	other, err := makeTLSFiles(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	otherPair, err := tls.LoadX509KeyPair(other.Client, other.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := good.Clone()
	otherCA.Certificates = []tls.Certificate{otherPair}

	id := workflows.HealthWorkflowID("no-cert-" + strings.ReplaceAll(t.Name(), "/", "-"))
	start := func(tlsConfig *tls.Config) error {
		cl, err := client.NewLazyClient(client.Options{HostPort: c.Address(), Namespace: c.Namespace(), Logger: quietLogger(),
			ConnectionOptions: client.ConnectionOptions{TLS: tlsConfig}})
		if err != nil {
			return err
		}
		defer cl.Close()
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = cl.ExecuteWorkflow(attempt, client.StartWorkflowOptions{
			ID:                    id,
			TaskQueue:             "nobody-polls",
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.CircuitAttr.ValueSet(string(workflows.CircuitDisabled))),
		}, workflows.HealthWorkflowName, workflows.HealthInput{EndpointID: "no-cert"})
		return err
	}
	for name, cfg := range map[string]*tls.Config{"plain text": nil, "TLS without a certificate": noCert, "another CA's certificate": otherCA} {
		if err := start(cfg); err == nil {
			t.Errorf("%s: the health workflow started", name)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
	_, err = c.Client().DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Fatalf("describe %s after the refused starts: %v, want NotFound", id, err)
	}

	if err := start(good); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	if err := c.Client().TerminateWorkflow(ctx, id, "", "test over"); err != nil {
		t.Fatal(err)
	}

	url := fmt.Sprintf("https://127.0.0.1:%d%s", c.Ports(Frontend).HTTP, FrontendHealthPath)
	bare := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: good.RootCAs}}}
	if resp, err := bare.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("HTTP API without a certificate: %s", resp.Status)
	}
	resp, err := httpsClient(t, c).Get(url)
	if err != nil {
		t.Fatalf("HTTP API with the client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP API with the client certificate: %s", resp.Status)
	}
}
