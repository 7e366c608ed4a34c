package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hookrelay/hookrelay/temporalclient"
)

// RemoteServer is a server reached by its address: an existing cluster, or the
// container of docker mode.
type RemoteServer struct {
	addr      string
	namespace string
	raw       client.Client
	created   string       // the namespace this run registered, deleted at Stop
	stop      func() error // stops the container, in docker mode
}

func (c *RemoteServer) FrontendHostPort() string { return c.addr }
func (c *RemoteServer) Namespace() string        { return c.namespace }
func (c *RemoteServer) Client() client.Client    { return c.raw }

// Stop deletes the namespace the run registered, closes the client and, in
// docker mode, removes the container.
func (c *RemoteServer) Stop() error {
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

// SecurityFromEnv reads TLS and API key settings from the TEMPORAL_TLS_* and
// TEMPORAL_API_KEY* variables, as worker and starter do for their flags.
func SecurityFromEnv() temporalclient.Security {
	var o temporalclient.Options
	o.AddFlags(pflag.NewFlagSet("testenv", pflag.ContinueOnError))
	return o.Security
}

// ConnectCluster connects to the frontend at addr. With no namespace given it
// registers a fresh one for this run, since the tests' workflow IDs repeat
// from run to run and would meet the last run's deliveries; with one
// (Temporal Cloud, where the API does not create namespaces) it uses it as
// is. It returns once the namespace answers.
func ConnectCluster(ctx context.Context, addr, namespace string, sec temporalclient.Security) (*RemoteServer, error) {
	return connectCluster(ctx, addr, namespace, sec, nil)
}

// connectCluster is ConnectCluster; stop, when set, ends what serves addr
// (docker's container), also when connecting fails.
func connectCluster(ctx context.Context, addr, ns string, sec temporalclient.Security, stop func() error) (*RemoteServer, error) {
	create := ns == ""
	if create {
		suffix := make([]byte, 4)
		rand.Read(suffix) // never fails (crypto/rand)
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
	c := &RemoteServer{addr: addr, namespace: ns, raw: raw, stop: stop}
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
	err = Wait(ctx, time.Minute, "namespace "+ns+" at "+addr+" to be usable", func() error {
		_, err := raw.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
		return err
	})
	if err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}
