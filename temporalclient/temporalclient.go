// Package temporalclient is the one place worker and starter connect to
// Temporal: connection flags with environment fallbacks, the data converter,
// the SDK logger, and registration of hookrelay's search attributes.
package temporalclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
)

// Defaults for the connection flags.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
	DefaultTaskQueue = "webhooks"
)

// dialTimeout bounds the first contact with the server, so an unreachable
// server is a prompt, clear error rather than a hang.
const dialTimeout = 10 * time.Second

// Options says where Temporal is and which task queue deliveries use.
type Options struct {
	Address   string
	Namespace string
	TaskQueue string
}

// AddFlags adds --temporal-address, --namespace and --task-queue, each
// defaulting to its environment variable when set.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Address, "temporal-address", envOr("TEMPORAL_ADDRESS", DefaultAddress), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	fs.StringVar(&o.Namespace, "namespace", envOr("TEMPORAL_NAMESPACE", DefaultNamespace), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	fs.StringVar(&o.TaskQueue, "task-queue", envOr("HOOKRELAY_TASK_QUEUE", DefaultTaskQueue), "task queue deliveries run on (env HOOKRELAY_TASK_QUEUE)")
}

// Validate names the first unusable option.
func (o Options) Validate() error {
	if _, port, err := net.SplitHostPort(o.Address); err != nil || port == "" {
		return fmt.Errorf("--temporal-address: %q is not host:port", o.Address)
	}
	if strings.TrimSpace(o.Namespace) == "" {
		return errors.New("--namespace: must not be empty")
	}
	if strings.TrimSpace(o.TaskQueue) == "" {
		return errors.New("--task-queue: must not be empty")
	}
	return nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// DataConverter is the converter every client uses. Worker and starter get it
// only through Dial, so encryption, once added, covers both.
func DataConverter() converter.DataConverter {
	return converter.GetDefaultDataConverter()
}

// Dial connects and checks the server answers.
func Dial(ctx context.Context, o Options, logger *slog.Logger) (client.Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := client.DialContext(ctx, clientOptions(o, logger))
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", o.Address, err)
	}
	return c, nil
}

// DialLazy builds a client that connects on first use. A long-running server
// (starter serve) uses it so it can start, and report itself not ready, while
// Temporal is down; gRPC reconnects by itself when the server is back.
func DialLazy(o Options, logger *slog.Logger) (client.Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c, err := client.NewLazyClient(clientOptions(o, logger))
	if err != nil {
		return nil, fmt.Errorf("Temporal client for %s: %w", o.Address, err)
	}
	return c, nil
}

// clientOptions is the one place client options are set, for both dial styles.
func clientOptions(o Options, logger *slog.Logger) client.Options {
	return client.Options{
		HostPort:      o.Address,
		Namespace:     o.Namespace,
		DataConverter: DataConverter(),
		Logger:        sdklog.NewStructuredLogger(logger),
	}
}

// EnsureSearchAttributes registers any of keys the namespace lacks, so a bare
// `temporal server start-dev` works. Several workers starting at once may
// race to add them; an attribute that appears meanwhile is fine.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string, keys []temporal.SearchAttributeKey) error {
	missing, err := missingSearchAttributes(ctx, c, namespace, keys)
	if err != nil || len(missing) == 0 {
		return err
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register search attributes %v: %w", names(missing), err)
	}
	if missing, err = missingSearchAttributes(ctx, c, namespace, keys); err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("search attributes %v are still missing after registration", names(missing))
	}
	return nil
}

func missingSearchAttributes(ctx context.Context, c client.Client, namespace string, keys []temporal.SearchAttributeKey) (map[string]enumspb.IndexedValueType, error) {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, k := range keys {
		have, ok := resp.GetCustomAttributes()[k.GetName()]
		switch {
		case !ok:
			missing[k.GetName()] = k.GetValueType()
		case have != k.GetValueType():
			return nil, fmt.Errorf("search attribute %s is registered as %s, want %s", k.GetName(), have, k.GetValueType())
		}
	}
	return missing, nil
}

func names(m map[string]enumspb.IndexedValueType) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	return out
}
