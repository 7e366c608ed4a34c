// Package deliveryworker builds the worker that runs deliveries:
// DeliveryWorkflow and the attempt activity, with the endpoints file, the
// network guard and the worker's concurrency knobs. The worker command runs
// it; `starter serve --worker` hosts one too, so it can start workflows eagerly.
package deliveryworker

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/hookrelay/hookrelay/activities"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/workflows"
)

// Options are the worker's flags, except --endpoints, which its host defines.
type Options struct {
	ShutdownTimeout       time.Duration
	AllowCIDRs            []string
	HTTPSOnly             bool
	UseEnvProxy           bool
	MaxConcurrentAttempts int
	Pollers               int
	AttemptsPerSecond     float64
	WorkflowCacheSize     int
	// OnFatalError is called if the worker stops polling for good (say, its
	// namespace is deleted), so the host can exit rather than look healthy.
	OnFatalError func(error)

	envErr error  // an environment fallback that did not parse, reported by Validate
	prefix string // of the flag names, for messages
}

// AddFlags adds the worker's flags, each name prefixed with prefix ("" for
// the worker command, "worker-" where a worker is hosted beside other flags);
// the knobs fall back to their environment variables either way.
func (o *Options) AddFlags(fs *pflag.FlagSet, prefix string) {
	fs.DurationVar(&o.ShutdownTimeout, prefix+"shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long in-flight attempts may take to finish")
	fs.StringArrayVar(&o.AllowCIDRs, prefix+"allow-cidr", nil, "admit this otherwise refused range, such as 127.0.0.0/8 for local testing (repeatable)")
	fs.BoolVar(&o.HTTPSOnly, prefix+"https-only", false, "refuse endpoints with plain http URLs")
	fs.BoolVar(&o.UseEnvProxy, prefix+"use-env-proxy", false, "send attempts through the proxy in HTTPS_PROXY/HTTP_PROXY/NO_PROXY")
	fs.IntVar(&o.MaxConcurrentAttempts, prefix+"max-concurrent-attempts", o.envInt("HOOKRELAY_MAX_CONCURRENT_ATTEMPTS"),
		"attempts this worker runs at once, ordinary and local each (env HOOKRELAY_MAX_CONCURRENT_ATTEMPTS; 0: the SDK's 1000)")
	fs.IntVar(&o.Pollers, prefix+"pollers", o.envInt("HOOKRELAY_POLLERS"),
		"concurrent long polls for workflow tasks and for activity tasks each (env HOOKRELAY_POLLERS; 0: the SDK's 2)")
	fs.Float64Var(&o.AttemptsPerSecond, prefix+"attempts-per-second", o.envFloat("HOOKRELAY_ATTEMPTS_PER_SECOND"),
		"at most this many attempts a second from this worker (env HOOKRELAY_ATTEMPTS_PER_SECOND; 0: unlimited)")
	fs.IntVar(&o.WorkflowCacheSize, prefix+"workflow-cache-size", o.envIntOr("HOOKRELAY_WORKFLOW_CACHE_SIZE", DefaultWorkflowCacheSize),
		"workflows kept in memory between tasks (env HOOKRELAY_WORKFLOW_CACHE_SIZE); deliveries parked in backoff beyond it are evicted and replayed when their timer fires")
	o.prefix = prefix
}

// DefaultWorkflowCacheSize bounds the sticky cache well below the SDK's
// 10,000, so tens of thousands of deliveries parked in backoff cost the
// worker little memory: the server holds their timers, and an evicted
// delivery is replayed from history (a few events) when its timer fires.
const DefaultWorkflowCacheSize = 1000

func (o *Options) envInt(name string) int { return o.envIntOr(name, 0) }

func (o *Options) envIntOr(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil && o.envErr == nil {
		o.envErr = fmt.Errorf("%s: %q is not a whole number", name, v)
	}
	return n
}

func (o *Options) envFloat(name string) float64 {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil && o.envErr == nil {
		o.envErr = fmt.Errorf("%s: %q is not a number", name, v)
	}
	return f
}

// Validate names the first unusable option.
func (o Options) Validate() error {
	switch {
	case o.envErr != nil:
		return o.envErr
	case o.ShutdownTimeout <= 0:
		return fmt.Errorf("--%sshutdown-timeout: must be positive", o.prefix)
	case o.MaxConcurrentAttempts < 0:
		return fmt.Errorf("--%smax-concurrent-attempts: %d must not be negative", o.prefix, o.MaxConcurrentAttempts)
	case o.Pollers < 0:
		return fmt.Errorf("--%spollers: %d must not be negative", o.prefix, o.Pollers)
	case o.WorkflowCacheSize < 1:
		return fmt.Errorf("--%sworkflow-cache-size: %d must be at least 1", o.prefix, o.WorkflowCacheSize)
	case o.AttemptsPerSecond < 0:
		return fmt.Errorf("--%sattempts-per-second: %g must not be negative", o.prefix, o.AttemptsPerSecond)
	}
	if _, err := netguard.ParseCIDRs(o.AllowCIDRs); err != nil {
		return fmt.Errorf("--%sallow-cidr: %w", o.prefix, err)
	}
	return nil
}

// OpenEndpoints opens the endpoints file under the options' rules and checks
// every enabled endpoint's secret resolves, so a worker never starts unable to sign.
func (o Options) OpenEndpoints(path string, logger *slog.Logger) (*endpoint.File, error) {
	var rules []endpoint.Option
	if o.HTTPSOnly {
		rules = append(rules, endpoint.HTTPSOnly())
	}
	endpoints, err := endpoint.OpenFile(path, rules...)
	if err != nil {
		return nil, err
	}
	if err := endpoints.Config().CheckSecrets(); err != nil {
		return nil, fmt.Errorf("endpoints file %s: %w", path, err)
	}
	endpoints.OnError = func(err error) { logger.Error("endpoints file reload failed", "error", err.Error()) }
	return endpoints, nil
}

// New builds (but does not start) a worker on taskQueue running
// DeliveryWorkflow and the attempt activity against endpoints.
func New(c client.Client, taskQueue string, endpoints activities.Endpoints, o Options) (worker.Worker, error) {
	allow, err := netguard.ParseCIDRs(o.AllowCIDRs)
	if err != nil {
		return nil, fmt.Errorf("--%sallow-cidr: %w", o.prefix, err)
	}
	// The SDK's cache is per process; set it before this process's first worker.
	worker.SetStickyWorkflowCacheSize(o.WorkflowCacheSize)
	httpClient := activities.NewHTTPClient(activities.HTTPOptions{Guard: netguard.New(allow...), UseEnvProxy: o.UseEnvProxy})
	w := worker.New(c, taskQueue, worker.Options{
		WorkerStopTimeout:                       o.ShutdownTimeout,
		MaxConcurrentActivityExecutionSize:      o.MaxConcurrentAttempts,
		MaxConcurrentLocalActivityExecutionSize: o.MaxConcurrentAttempts,
		MaxConcurrentActivityTaskPollers:        o.Pollers,
		MaxConcurrentWorkflowTaskPollers:        o.Pollers,
		WorkerActivitiesPerSecond:               o.AttemptsPerSecond,
		WorkerLocalActivitiesPerSecond:          o.AttemptsPerSecond,
		OnFatalError:                            o.OnFatalError,
	})
	workflows.Register(w)
	w.RegisterActivityWithOptions(activities.New(endpoints, httpClient).Attempt, activity.RegisterOptions{Name: workflows.AttemptActivityName})
	return w, nil
}
