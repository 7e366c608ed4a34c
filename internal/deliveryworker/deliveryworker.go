// Package deliveryworker builds the worker that runs deliveries:
// DeliveryWorkflow and the attempt activity, and on "<queue>-health" the
// endpoints' health workflows and their activities, with the network guard and
// the worker's concurrency knobs, and boots the process around it (boot.go).
// The worker command runs it; `starter serve` boots the same way, and with
// --worker hosts one too, so it can start workflows eagerly.
package deliveryworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/hookrelay/hookrelay/activities"
	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/endpointsource"
	"github.com/hookrelay/hookrelay/internal/health"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/workflows"
)

// Options are the worker's flags, except --endpoints, which its host defines.
type Options struct {
	ShutdownTimeout time.Duration
	AllowCIDRs      []string
	AllowPorts      []string
	HTTPSOnly       bool
	UseEnvProxy     bool
	// ProxyAllowCIDRs admit the proxy's address (with UseEnvProxy), apart
	// from AllowCIDRs, which admit endpoints.
	ProxyAllowCIDRs       []string
	MaxConcurrentAttempts int
	Pollers               int
	AttemptsPerSecond     float64
	WorkflowCacheSize     int
	// OperationsEndpoint is the endpoint id endpoint state notices (an
	// endpoint disabled) are delivered to; "" sends none.
	OperationsEndpoint string
	// CircuitRefresh is how often the worker reads the endpoints' circuits.
	CircuitRefresh time.Duration
	// LogWriteTimeout bounds an attempt's delivery log write
	// (--log-write-timeout; 0: the default).
	LogWriteTimeout time.Duration
	// LogReconcileEvery is the time between the delivery log reconciler's
	// passes (--log-reconcile-every; 0: the default).
	LogReconcileEvery time.Duration
	// OnFatalError is called if the worker stops polling for good (say, its
	// namespace is deleted), so the host can exit rather than look healthy.
	OnFatalError func(error)
}

// FlagNames are the flags AddFlags defines, for hosts that alias or check them.
var FlagNames = []string{"allow-cidr", "allow-port", "https-only", "use-env-proxy", "proxy-allow-cidr", "max-concurrent-attempts", "pollers", "attempts-per-second", "workflow-cache-size", "operations-endpoint", "circuit-refresh"}

// AddFlags adds the worker's flags, for the worker command and for every
// process that hosts a worker (starter serve --worker) alike. The host
// defines --shutdown-timeout (cmdline.ShutdownTimeout) for its whole process.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&o.AllowCIDRs, "allow-cidr", nil, "admit this otherwise refused range, such as 127.0.0.0/8 for local testing (repeatable)")
	cmdline.StringSlice(fs, &o.AllowPorts, "allow-port", "HOOKRELAY_ALLOW_PORT",
		"admit this endpoint port or range (8443, 1-1023) beyond 443, 80 and 1024-65535 (repeatable or comma-separated)")
	fs.BoolVar(&o.HTTPSOnly, "https-only", false, "refuse endpoints with plain http URLs")
	fs.BoolVar(&o.UseEnvProxy, "use-env-proxy", false, "send attempts through the proxy in HTTPS_PROXY/HTTP_PROXY/NO_PROXY, tunnelled to the address the guard checked")
	fs.StringArrayVar(&o.ProxyAllowCIDRs, "proxy-allow-cidr", nil, "with --use-env-proxy: admit the proxy's own address in this otherwise refused range; admits no endpoint (repeatable)")
	cmdline.Int(fs, &o.MaxConcurrentAttempts, "max-concurrent-attempts", "HOOKRELAY_MAX_CONCURRENT_ATTEMPTS", 0,
		"attempts this worker runs at once, ordinary and local each (0: the SDK's 1000)")
	cmdline.Int(fs, &o.Pollers, "pollers", "HOOKRELAY_POLLERS", DefaultPollers,
		"concurrent long polls for workflow tasks and for activity tasks each (0: the SDK's 2)")
	cmdline.Float64(fs, &o.AttemptsPerSecond, "attempts-per-second", "HOOKRELAY_ATTEMPTS_PER_SECOND", 0,
		"at most this many attempts a second from this worker (0: unlimited)")
	cmdline.Int(fs, &o.WorkflowCacheSize, "workflow-cache-size", "HOOKRELAY_WORKFLOW_CACHE_SIZE", DefaultWorkflowCacheSize,
		"workflows kept in memory between tasks; deliveries parked in backoff beyond it are evicted and replayed when their timer fires")
	cmdline.String(fs, &o.OperationsEndpoint, "operations-endpoint", "HOOKRELAY_OPERATIONS_ENDPOINT", "",
		"endpoint id that notices of endpoints disabled are delivered to, as signed webhooks")
	cmdline.Duration(fs, &o.CircuitRefresh, "circuit-refresh", "HOOKRELAY_CIRCUIT_REFRESH", health.DefaultRefresh,
		"how often this worker reads the endpoints' circuits: the bound on POSTs to an endpoint whose circuit just opened")
}

// DefaultPollers is up to 8 long polls for workflow tasks (autoscaled
// between the sticky and the normal queue, see workflowPollers) and 8 for
// activity tasks, not the SDK's 2: a first-try delivery (one workflow task)
// never uses the sticky queue, a task queue has 4 partitions by default,
// and with one poll on the normal queue deliveries waited in the task
// queue while the server was busy accepting starts.
const DefaultPollers = 8

// DefaultWorkflowCacheSize bounds the sticky cache well below the SDK's
// 10,000, so tens of thousands of deliveries parked in backoff cost the
// worker little memory: the server holds their timers, and an evicted
// delivery is replayed from history (a few events) when its timer fires.
const DefaultWorkflowCacheSize = 1000

// Validate names the first unusable option.
func (o Options) Validate() error {
	switch {
	case o.ShutdownTimeout <= 0:
		return errors.New("--shutdown-timeout: must be positive")
	case o.MaxConcurrentAttempts < 0:
		return fmt.Errorf("--max-concurrent-attempts: %d must not be negative", o.MaxConcurrentAttempts)
	case o.Pollers < 0:
		return fmt.Errorf("--pollers: %d must not be negative", o.Pollers)
	case o.WorkflowCacheSize < 1:
		return fmt.Errorf("--workflow-cache-size: %d must be at least 1", o.WorkflowCacheSize)
	case o.AttemptsPerSecond < 0:
		return fmt.Errorf("--attempts-per-second: %g must not be negative", o.AttemptsPerSecond)
	case o.CircuitRefresh < 100*time.Millisecond || o.CircuitRefresh > time.Minute:
		return fmt.Errorf("--circuit-refresh: %s must be 100ms to 1m", o.CircuitRefresh)
	}
	if _, err := netguard.ParseCIDRs(o.AllowCIDRs); err != nil {
		return fmt.Errorf("--allow-cidr: %w", err)
	}
	if _, err := netguard.ParseCIDRs(o.ProxyAllowCIDRs); err != nil {
		return fmt.Errorf("--proxy-allow-cidr: %w", err)
	}
	if _, err := netguard.ParsePorts(o.AllowPorts); err != nil {
		return fmt.Errorf("--allow-port: %w", err)
	}
	if len(o.ProxyAllowCIDRs) > 0 && !o.UseEnvProxy {
		return errors.New("--proxy-allow-cidr: admits the proxy's address, so it needs --use-env-proxy")
	}
	return nil
}

// Rules are the rules endpoint URLs pass under these options, for opening
// the endpoint source (package endpointsource).
func (o Options) Rules() endpointsource.Rules {
	return endpointsource.Rules{AllowCIDRs: o.AllowCIDRs, AllowPorts: o.AllowPorts, HTTPSOnly: o.HTTPSOnly}
}

// Deps are what a worker is built on.
type Deps struct {
	Client    client.Client
	Namespace string
	TaskQueue string
	Endpoints endpoint.Source
	Logger    *slog.Logger
	// Metrics receives the endpoint state gauge; nil records none.
	Metrics client.MetricsHandler
	// Sealed tells payloads sealed by the client's keys
	// (temporalclient.Sealed); nil (--insecure-plaintext) accepts any.
	Sealed func(*commonpb.Payload) bool
	// TracerProvider records each attempt's POST as a span; nil: tracing
	// off. (Workflow and activity spans come from the client's interceptor.)
	TracerProvider trace.TracerProvider
	// DataConverter decodes histories as the client encodes them (a
	// recovery reads each delivery's event back from its history to
	// resend it). Nil: the SDK's default.
	DataConverter converter.DataConverter
	// Log is the delivery log attempts are written to; with it the worker
	// also serves recoveries (RecoverWorkflow) on workflows.RecoverTaskQueue.
	// Nil: none.
	Log *deliverylog.Log
}

// Worker is a delivery worker: the SDK worker running DeliveryWorkflow,
// EndpointHealthWorkflow and their activities, and beside it the watcher
// that reads the endpoints' circuits for the attempts.
type Worker struct {
	worker.Worker
	// health serves the health task queue (workflows.HealthTaskQueue).
	health worker.Worker
	// recover serves the recover task queue (workflows.RecoverTaskQueue);
	// nil without a delivery log.
	recover worker.Worker
	watcher *health.Watcher
	log     *logWriters // nil without a delivery log
	stop    context.CancelFunc
	// drain bounds writing the delivery log's spool at Stop.
	drain time.Duration
}

// workflowPollers are at most n workflow task pollers, spread between the
// sticky queue and the normal one by the SDK's autoscaling balancer, which
// keeps the normal queue polled. (With a fixed number, a stale sticky
// backlog hint sends every poll to the sticky queue, where each waits up to
// a minute for nothing, while the normal queue is not polled at all: a
// drain of 3,000 deliveries, whose releases of workflows evicted from the
// cache come on the normal queue, stalled for a minute at a time.)
func workflowPollers(n int) worker.PollerBehavior {
	return worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
		InitialNumberOfPollers: n, MinimumNumberOfPollers: min(2, n), MaximumNumberOfPollers: n,
	})
}

// healthPollers poll the health task queue, per task type: its tasks are
// few (one workflow per endpoint, a signal per failure while closed).
const healthPollers = 2

// New builds (but does not start) a worker on d.TaskQueue.
func New(d Deps, o Options) (*Worker, error) {
	allow, err := netguard.ParseCIDRs(o.AllowCIDRs)
	if err != nil {
		return nil, fmt.Errorf("--allow-cidr: %w", err)
	}
	// The SDK's cache is per process; set it before this process's first worker.
	worker.SetStickyWorkflowCacheSize(o.WorkflowCacheSize)
	proxyAllow, err := netguard.ParseCIDRs(o.ProxyAllowCIDRs)
	if err != nil {
		return nil, fmt.Errorf("--proxy-allow-cidr: %w", err)
	}
	ports, err := netguard.ParsePorts(o.AllowPorts)
	if err != nil {
		return nil, fmt.Errorf("--allow-port: %w", err)
	}
	allowPorts := make([]activities.PortRange, len(ports))
	for i, r := range ports {
		allowPorts[i] = activities.PortRange(r)
	}
	httpClient := activities.NewHTTPClient(activities.HTTPOptions{Allow: allow, AllowPorts: allowPorts, UseEnvProxy: o.UseEnvProxy, ProxyAllow: proxyAllow})
	var interceptors []interceptor.WorkerInterceptor
	if d.Sealed != nil {
		interceptors = append(interceptors, &sealedSignals{sealed: d.Sealed})
	}
	w := worker.New(d.Client, d.TaskQueue, worker.Options{
		Interceptors:                            interceptors,
		WorkerStopTimeout:                       o.ShutdownTimeout,
		MaxConcurrentActivityExecutionSize:      o.MaxConcurrentAttempts,
		MaxConcurrentLocalActivityExecutionSize: o.MaxConcurrentAttempts,
		MaxConcurrentActivityTaskPollers:        o.Pollers,
		WorkflowTaskPollerBehavior:              workflowPollers(o.Pollers),
		WorkerActivitiesPerSecond:               o.AttemptsPerSecond,
		WorkerLocalActivitiesPerSecond:          o.AttemptsPerSecond,
		// Heartbeats well inside the attempt's heartbeat timeout, not at 80% of it.
		MaxHeartbeatThrottleInterval: workflows.AttemptHeartbeatEvery,
		OnFatalError:                 o.OnFatalError,
	})
	watcher := &health.Watcher{Client: d.Client, Namespace: d.Namespace, TaskQueue: d.TaskQueue, Refresh: o.CircuitRefresh, Logger: d.Logger, Metrics: d.Metrics}
	attempts := activities.New(d.Endpoints, httpClient)
	if rates, ok := d.Endpoints.(activities.Rates); ok {
		attempts.Rates = rates // the registry's: one schedule for the fleet on PostgreSQL
	}
	if o.MaxConcurrentAttempts > 1 {
		// No endpoint holds more than half the worker's attempt slots,
		// local or not, whatever its max_in_flight.
		attempts.MaxInFlight = o.MaxConcurrentAttempts / 2
	}
	attempts.Health = watcher
	attempts.TracerProvider = d.TracerProvider
	var lw *logWriters
	if d.Log != nil {
		lw = newLogWriters(d.Log, d, o.LogWriteTimeout, o.LogReconcileEvery)
		attempts.Log = lw.recorder
	}
	healthActivities := &activities.HealthActivities{
		Client: d.Client, Namespace: d.Namespace, Endpoints: d.Endpoints, OperationsEndpoint: o.OperationsEndpoint,
		Notifier: &deliveries.Client{Temporal: d.Client, Endpoints: d.Endpoints, TaskQueue: d.TaskQueue},
	}
	workflows.Register(w)
	w.RegisterActivityWithOptions(attempts.Attempt, activity.RegisterOptions{Name: workflows.AttemptActivityName})
	hw := worker.New(d.Client, workflows.HealthTaskQueue(d.TaskQueue), worker.Options{
		Interceptors:                     interceptors,
		WorkerStopTimeout:                o.ShutdownTimeout,
		MaxConcurrentActivityTaskPollers: healthPollers,
		MaxConcurrentWorkflowTaskPollers: healthPollers,
		OnFatalError:                     o.OnFatalError,
	})
	// The delivery queue serves health workflows too: those started before
	// the health queue existed keep running there.
	for _, r := range []worker.Worker{w, hw} {
		workflows.RegisterHealth(r)
		r.RegisterActivityWithOptions(healthActivities.Release, activity.RegisterOptions{Name: workflows.ReleaseActivityName})
		r.RegisterActivityWithOptions(healthActivities.Notify, activity.RegisterOptions{Name: workflows.NoticeActivityName})
	}
	return &Worker{Worker: w, health: hw, recover: newRecoverWorker(d, o, interceptors), watcher: watcher, log: lw, drain: o.ShutdownTimeout}, nil
}

// newRecoverWorker builds the worker of the recover task queue, if the
// process has a delivery log: recoveries page it. Its resends never
// re-seal a plaintext input.
func newRecoverWorker(d Deps, o Options, interceptors []interceptor.WorkerInterceptor) worker.Worker {
	if d.Log == nil {
		return nil
	}
	rw := worker.New(d.Client, workflows.RecoverTaskQueue(d.TaskQueue), worker.Options{
		Interceptors:                     interceptors,
		WorkerStopTimeout:                o.ShutdownTimeout,
		MaxConcurrentActivityTaskPollers: healthPollers,
		MaxConcurrentWorkflowTaskPollers: healthPollers,
		OnFatalError:                     o.OnFatalError,
	})
	ra := &activities.RecoverActivities{Log: failedLister{d.Log}, Endpoints: d.Endpoints,
		Resender: &deliveries.Client{Temporal: d.Client, Endpoints: d.Endpoints, TaskQueue: d.TaskQueue, DataConverter: d.DataConverter}}
	workflows.RegisterRecover(rw)
	rw.RegisterActivityWithOptions(ra.ListFailed, activity.RegisterOptions{Name: workflows.RecoverListActivityName})
	rw.RegisterActivityWithOptions(ra.ResendFailed, activity.RegisterOptions{Name: workflows.RecoverResendActivityName})
	return rw
}

// failedLister lists the log's failed deliveries for recoveries.
type failedLister struct{ log *deliverylog.Log }

func (l failedLister) ListFailed(ctx context.Context, accountID, endpointID string, since, until time.Time, limit int, cursor string) ([]string, string, error) {
	page, err := l.log.List(ctx, accountID, deliverylog.Filter{EndpointID: endpointID, Status: string(workflows.StatusFailed),
		Since: since, Until: until, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(page.Deliveries))
	for _, d := range page.Deliveries {
		ids = append(ids, d.DeliveryID)
	}
	return ids, page.Next, nil
}

// Start starts the circuit watcher, the SDK worker, then the delivery
// log's spool and reconciler.
func (w *Worker) Start() error {
	ctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	go w.watcher.Run(ctx)
	if err := w.health.Start(); err != nil {
		stop()
		return fmt.Errorf("health task queue: %w", err)
	}
	if w.recover != nil {
		if err := w.recover.Start(); err != nil {
			w.health.Stop()
			stop()
			return fmt.Errorf("recover task queue: %w", err)
		}
	}
	if err := w.Worker.Start(); err != nil {
		if w.recover != nil {
			w.recover.Stop()
		}
		w.health.Stop()
		stop()
		return err
	}
	if w.log != nil {
		w.log.start()
	}
	return nil
}

// Stop stops the SDK worker (in-flight attempts finish), then the watcher,
// then writes what it can of the delivery log's spool.
func (w *Worker) Stop() {
	w.Worker.Stop()
	w.health.Stop()
	if w.recover != nil {
		w.recover.Stop()
	}
	if w.stop != nil {
		w.stop()
	}
	if w.log != nil {
		w.log.close(min(max(w.drain, time.Second), 10*time.Second))
	}
}
