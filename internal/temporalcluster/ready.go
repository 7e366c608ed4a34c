package temporalcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The names under which each service reports SERVING on its own gRPC port:
// frontend once membership is ready, history once it holds its shards,
// matching once started. The worker service serves only gRPC health;
// workerStarted is the line it logs when all its parts run, which is what
// the readiness check waits for.
var healthNames = map[Service]string{
	Frontend: "temporal.api.workflowservice.v1.WorkflowService",
	History:  "temporal.api.workflowservice.v1.HistoryService",
	Matching: "temporal.api.workflowservice.v1.MatchingService",
}

const workerStarted = `"msg":"worker service started"`

// probeTaskQueue is where readiness checks ask matching; nothing polls it.
const probeTaskQueue = "temporalcluster-probe"

// dialHealth opens a connection for health checks, with tlsConfig (the
// frontend and the services each want a certificate). A short reconnect
// backoff, so a restarted service is seen within a poll or two rather than
// after gRPC's default backoff grew during the outage.
func dialHealth(addr string, tlsConfig *tls.Config) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("health check connection to %s: %w", addr, err)
	}
	return conn, nil
}

// poll calls check until it succeeds, failing early if a process the check
// depends on exits and late when ctx ends. The interval is short: every
// check here is cheap and local.
func (c *Cluster) poll(ctx context.Context, what string, check func(ctx context.Context) error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(attempt)
		cancel()
		if last == nil {
			return nil
		}
		c.mu.Lock()
		var gone *process
		for _, s := range Services {
			if p := c.procs[s]; p != nil && !p.killed && !p.running() {
				gone = p
				break
			}
		}
		c.mu.Unlock()
		if gone != nil {
			return fmt.Errorf("waiting for %s: %w", what, c.exited(gone))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// waitHealthy returns once service s serves: SERVING on its health check
// (the worker: its start logged), and for history and matching, a request
// through the frontend that needs them answered, once the namespace exists.
func (c *Cluster) waitHealthy(ctx context.Context, s Service) error {
	if s == Worker {
		return c.poll(ctx, "the worker service to start", c.workerStarted)
	}
	err := c.poll(ctx, fmt.Sprintf("%s at %s to report SERVING", s, c.ports[s].address()), func(ctx context.Context) error {
		resp, err := healthpb.NewHealthClient(c.health[s]).Check(ctx, &healthpb.HealthCheckRequest{Service: healthNames[s]})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
	if err != nil || c.client == nil {
		return err
	}
	switch s {
	case History:
		return c.poll(ctx, "history to answer through the frontend", c.historyAnswers)
	case Matching:
		return c.poll(ctx, "matching to answer through the frontend", c.matchingAnswers)
	}
	return nil
}

func (c *Cluster) workerStarted(context.Context) error {
	c.mu.Lock()
	p := c.procs[Worker]
	c.mu.Unlock()
	log, err := os.ReadFile(c.logPath(Worker))
	if err != nil {
		return err
	}
	if int64(len(log)) < p.logOffset || !bytes.Contains(log[p.logOffset:], []byte(workerStarted)) {
		return errors.New(`no "worker service started" in its log yet`)
	}
	return nil
}

// historyAnswers asks for a workflow that does not exist: NotFound comes
// from the history shard owning its id, which knows the namespace.
func (c *Cluster) historyAnswers(ctx context.Context) error {
	_, err := c.client.DescribeWorkflowExecution(ctx, "temporalcluster-probe-no-such-workflow", "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil
	}
	if err == nil {
		return errors.New("a probe workflow exists")
	}
	return err
}

// matchingAnswers describes a task queue, which the matching service owning it answers.
func (c *Cluster) matchingAnswers(ctx context.Context) error {
	_, err := c.client.DescribeTaskQueue(ctx, probeTaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
	return err
}

// visibilityAnswers lists the namespace's workflows from the visibility store.
func (c *Cluster) visibilityAnswers(ctx context.Context) error {
	_, err := c.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: c.opts.Namespace, PageSize: 1})
	return err
}

func (c *Cluster) dialClient(ctx context.Context) (client.Client, error) {
	tlsConfig, err := c.tls.ClientTLS()
	if err != nil {
		return nil, err
	}
	cl, err := client.DialContext(ctx, client.Options{HostPort: c.Address(), Namespace: c.opts.Namespace, Logger: quietLogger(),
		ConnectionOptions: client.ConnectionOptions{TLS: tlsConfig}})
	if err != nil {
		return nil, fmt.Errorf("dial frontend at %s: %w", c.Address(), err)
	}
	return cl, nil
}

// registerNamespace registers Namespace and waits until each service
// answers for it (they learn of a new namespace by polling the database).
func (c *Cluster) registerNamespace(ctx context.Context) error {
	err := c.poll(ctx, "namespace "+c.opts.Namespace+" to be registered", func(ctx context.Context) error {
		_, err := c.client.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        c.opts.Namespace,
			WorkflowExecutionRetentionPeriod: durationpb.New(c.opts.Retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if errors.As(err, &exists) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, check := range []struct {
		what  string
		check func(context.Context) error
	}{
		{"history to answer in namespace " + c.opts.Namespace, c.historyAnswers},
		{"matching to answer in namespace " + c.opts.Namespace, c.matchingAnswers},
		{"visibility to answer in namespace " + c.opts.Namespace, c.visibilityAnswers},
	} {
		if err := c.poll(ctx, check.what, check.check); err != nil {
			return err
		}
	}
	return nil
}

// addSearchAttributes registers Options.SearchAttributes and waits until
// the namespace lists them and the frontend accepts a visibility query
// naming each. With SQL visibility they are aliases of pre-allocated
// columns, kept in the namespace's record; each service's namespace cache
// reloads it every few seconds (system.namespaceCacheRefreshInterval).
func (c *Cluster) addSearchAttributes(ctx context.Context) error {
	want := c.opts.SearchAttributes
	if len(want) == 0 {
		return nil
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	err := c.poll(ctx, "search attributes "+strings.Join(names, ", ")+" to be added", func(ctx context.Context) error {
		_, err := c.client.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: c.opts.Namespace, SearchAttributes: want,
		})
		return err
	})
	if err != nil {
		return err
	}
	err = c.poll(ctx, "search attributes to be listed", func(ctx context.Context) error {
		resp, err := c.client.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: c.opts.Namespace})
		if err != nil {
			return err
		}
		for _, name := range names {
			if got := resp.GetCustomAttributes()[name]; got != want[name] {
				return fmt.Errorf("%s is %v, want %v", name, got, want[name])
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	conds := make([]string, len(names))
	for i, name := range names {
		conds[i] = name + " IS NULL"
	}
	query := strings.Join(conds, " AND ")
	return c.poll(ctx, "the frontend to accept the query "+query, func(ctx context.Context) error {
		_, err := c.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: c.opts.Namespace, Query: query})
		return err
	})
}
