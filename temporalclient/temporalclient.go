// Package temporalclient is the one place worker and starter connect to
// Temporal: connection flags with environment fallbacks (address, namespace,
// TLS, mutual TLS, Temporal Cloud API keys), the data converter (payloads
// encrypted by the codec package), the SDK logger, and registration of
// hookrelay's search attributes.
package temporalclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/secretfile"
	"github.com/hookrelay/hookrelay/internal/tracing"
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

// EnvCodecKeyFile is the environment fallback of --codec-key-file.
const EnvCodecKeyFile = "HOOKRELAY_CODEC_KEY_FILE"

// Options says where Temporal is, how to reach it securely, which task queue
// deliveries use, and how payloads are encrypted.
type Options struct {
	Address   string
	Namespace string
	TaskQueue string
	// CodecKeyFile holds the payload encryption keys (see package codec).
	CodecKeyFile string
	// InsecurePlaintext stores payloads unencrypted. It must be asked for
	// explicitly: health information must not reach Temporal in plain text
	// by accident of a missing flag.
	InsecurePlaintext bool
	// MetricsHandler receives the SDK's metrics, and hookrelay's own that
	// workflows and activities record through it; nil records none.
	MetricsHandler client.MetricsHandler
	// TracerProvider, when not nil, traces through the Temporal SDK's
	// OpenTelemetry interceptor: workflow starts, signals and queries of
	// this client, and the workflows and activities of workers built on
	// it. Nil (tracing off) adds no interceptor.
	TracerProvider trace.TracerProvider
	// Security is how the connection is protected: TLS, mutual TLS, an API key.
	Security

	codec *codec.Codec // loaded by Codec, reused by DataConverter
}

// AddFlags adds --temporal-address, --namespace, --task-queue and
// --codec-key-file, each defaulting to its environment variable when set,
// --insecure-plaintext, and the TLS and API key flags (see Security).
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	cmdline.String(fs, &o.Address, "temporal-address", "TEMPORAL_ADDRESS", DefaultAddress, "Temporal frontend host:port")
	cmdline.String(fs, &o.Namespace, "namespace", "TEMPORAL_NAMESPACE", DefaultNamespace, "Temporal namespace")
	cmdline.String(fs, &o.TaskQueue, "task-queue", "HOOKRELAY_TASK_QUEUE", DefaultTaskQueue, "task queue deliveries run on")
	AddCodecKeyFileFlag(fs, &o.CodecKeyFile)
	fs.BoolVar(&o.InsecurePlaintext, "insecure-plaintext", false, "store payloads in Temporal unencrypted (local experiments only)")
	o.Security.addFlags(fs)
}

// AddCodecKeyFileFlag defines --codec-key-file, for clients and the codec server alike.
func AddCodecKeyFileFlag(fs *pflag.FlagSet, p *string) {
	cmdline.String(fs, p, "codec-key-file", EnvCodecKeyFile, "", "payload encryption keys, one KEY_ID:BASE64 per line; the last encrypts")
}

// Validate names the first unusable option. It reads no files: the TLS
// files and the key file are read, and their errors named, when dialling.
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
	switch {
	case o.CodecKeyFile == "" && !o.InsecurePlaintext:
		return fmt.Errorf("--codec-key-file: required (or set %s): payloads hold health information and are stored encrypted; pass --insecure-plaintext only for local experiments", EnvCodecKeyFile)
	case o.CodecKeyFile != "" && o.InsecurePlaintext:
		return errors.New("--insecure-plaintext: conflicts with --codec-key-file (or " + EnvCodecKeyFile + "); choose one")
	}
	return o.Security.validate()
}

// DataConverter is the converter every client uses: JSON, then encrypted by
// the codec loaded from o.CodecKeyFile (plain JSON only with
// --insecure-plaintext), marking what arrived unsealed (provenance.go).
// Worker and starter get it only through Dial.
func (o Options) DataConverter() (converter.DataConverter, error) {
	if o.InsecurePlaintext {
		return converter.GetDefaultDataConverter(), nil
	}
	c, err := o.Codec()
	if err != nil {
		return nil, err
	}
	return NewDataConverter(c), nil
}

// PayloadKeys are the payload keys loaded from --codec-key-file: the
// payload codec, which also seals other data under the same keys (the
// endpoint registry's secrets), so a key's every use is counted together.
type PayloadKeys interface {
	converter.PayloadCodec
	// Seal encrypts plain under the current key, bound to additionalData.
	Seal(plain, additionalData []byte) ([]byte, error)
	// Open decrypts what Seal sealed with the same additionalData.
	Open(sealed, additionalData []byte) ([]byte, error)
}

// Codec loads the payload keys from CodecKeyFile once: later calls on o,
// and the data converter of connections made with o after, reuse them. The
// endpoint registry seals endpoint secrets with them.
func (o *Options) Codec() (PayloadKeys, error) {
	return o.loadCodec()
}

func (o *Options) loadCodec() (*codec.Codec, error) {
	if o.codec != nil {
		return o.codec, nil
	}
	if o.CodecKeyFile == "" {
		return nil, fmt.Errorf("--codec-key-file: required (or set %s)", EnvCodecKeyFile)
	}
	c, err := codec.Load(o.CodecKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--codec-key-file: %w", err)
	}
	o.codec = c
	return c, nil
}

// dataConverter is DataConverter with the key's use watched: encryptions
// counted per key in metrics, and a warning (log and metric) once a key has
// sealed codec.WarnEncryptions payloads.
func (o Options) dataConverter(logger *slog.Logger) (converter.DataConverter, error) {
	if o.InsecurePlaintext {
		return converter.GetDefaultDataConverter(), nil
	}
	c, err := o.loadCodec() // the keys the registry seals with too, read once
	if err != nil {
		return nil, err
	}
	c.Watch(metrics.KeyMonitor(logger, o.MetricsHandler))
	return newSealingConverter(c), nil
}

// NewDataConverter wraps the default JSON converter in c; with hookrelay's
// codec it also marks what arrived unsealed, as every client's converter does.
func NewDataConverter(c converter.PayloadCodec) converter.DataConverter {
	if hc, ok := c.(*codec.Codec); ok {
		return newSealingConverter(hc)
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// failureConverter also encrypts failure messages and stack traces, which
// may quote data (a panic's value, a decode error) and which
// NewCodecDataConverter alone leaves in plain text.
func failureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}

// Dial connects and checks the server answers.
func Dial(ctx context.Context, o Options, logger *slog.Logger) (client.Client, error) {
	c, err := Connect(ctx, o, logger)
	return c.Client, err
}

// DialLazy builds a client that connects on first use. A long-running server
// (starter serve) uses it so it can start, and report itself not ready, while
// Temporal is down; gRPC reconnects by itself when the server is back.
func DialLazy(o Options, logger *slog.Logger) (client.Client, error) {
	c, err := ConnectLazy(o, logger)
	return c.Client, err
}

// Conn is a client and the data converter it was built with, for callers
// that also decode payloads themselves (histories, say): the key file is
// read once.
type Conn struct {
	client.Client
	DataConverter converter.DataConverter
}

// Connect is Dial, keeping the data converter.
func Connect(ctx context.Context, o Options, logger *slog.Logger) (Conn, error) {
	if err := o.Validate(); err != nil {
		return Conn{}, err
	}
	copts, err := clientOptions(o, logger)
	if err != nil {
		return Conn{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := client.DialContext(ctx, copts)
	if err != nil {
		return Conn{}, fmt.Errorf("connect to Temporal at %s: %w", o.Address, err)
	}
	return Conn{Client: c, DataConverter: copts.DataConverter}, nil
}

// ConnectLazy is DialLazy, keeping the data converter.
func ConnectLazy(o Options, logger *slog.Logger) (Conn, error) {
	if err := o.Validate(); err != nil {
		return Conn{}, err
	}
	copts, err := clientOptions(o, logger)
	if err != nil {
		return Conn{}, err
	}
	c, err := client.NewLazyClient(copts)
	if err != nil {
		return Conn{}, fmt.Errorf("Temporal client for %s: %w", o.Address, err)
	}
	return Conn{Client: c, DataConverter: copts.DataConverter}, nil
}

// clientOptions is the one place client options are set, for both dial
// styles: TLS and credentials, the data converter (encrypting unless
// --insecure-plaintext), with encryption a failure converter that seals
// failure messages too, and with tracing on the tracing interceptor.
func clientOptions(o Options, logger *slog.Logger) (client.Options, error) {
	secretfile.Warn(logger, "--codec-key-file", o.CodecKeyFile)
	secretfile.Warn(logger, "--api-key-file", o.APIKeyFile)
	secretfile.Warn(logger, "--tls-key", o.TLSKey)
	tlsConfig, err := o.Security.TLSConfig()
	if err != nil {
		return client.Options{}, err
	}
	credentials, err := o.Security.credentials()
	if err != nil {
		return client.Options{}, err
	}
	dc, err := o.dataConverter(logger)
	if err != nil {
		return client.Options{}, err
	}
	// No gzip, the SDK's default: payloads are encrypted, so compression
	// finds little to shrink and cost serve and workers a fifth of their CPU.
	copts := client.Options{
		HostPort:          o.Address,
		Namespace:         o.Namespace,
		ConnectionOptions: client.ConnectionOptions{TLS: tlsConfig, GrpcCompression: &client.GrpcCompressionNone{}},
		Credentials:       credentials,
		DataConverter:     dc,
		Logger:            sdklog.NewStructuredLogger(logger),
		MetricsHandler:    o.MetricsHandler,
	}
	if !o.InsecurePlaintext {
		copts.FailureConverter = failureConverter(dc)
	}
	if o.TracerProvider != nil {
		i, err := tracing.Interceptor(o.TracerProvider)
		if err != nil {
			return client.Options{}, err
		}
		copts.Interceptors = append(copts.Interceptors, i)
	}
	return copts, nil
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
