package testenv

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/temporalclient"
)

// Ready lines: the log messages that say a program is ready.
const (
	WorkerReady = `"msg":"worker started"`
	ServeReady  = `"msg":"ingest serving"`
	// ServeListening is the message of serve's ready line, which holds its address.
	ServeListening = "ingest serving"
)

// Hookrelay is how to run the project's programs against one Temporal
// server: where Build put them, where they connect, with which payload key,
// and where they log. Each setting reaches them as the environment variable
// their flag falls back to, so a caller's arguments hold only what it means
// to vary (and a flag it passes wins).
type Hookrelay struct {
	Bin          string // the directory Build wrote the programs to
	Address      string
	Namespace    string
	TaskQueue    string
	CodecKeyFile string
	// Security is how they reach Temporal: TLS and API key settings, passed
	// as the TEMPORAL_TLS_* and TEMPORAL_API_KEY* variables.
	Security temporalclient.Security
	// LogDir holds each process's log, LogDir/<name>.log.
	LogDir string
	// ReadyTimeout bounds the wait for a ready line (DefaultReadyTimeout if zero).
	ReadyTimeout time.Duration
}

// ChildEnv is this process's environment without hookrelay's, Temporal's
// and OpenTelemetry's variables: a setting a child gets is one its parent
// chose, not one left in the shell.
func ChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKRELAY_") && !strings.HasPrefix(kv, "TEMPORAL_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// Env is a child's environment: ChildEnv and the connection settings.
func (h Hookrelay) Env() []string {
	env := ChildEnv()
	add := func(name, value string) {
		if value != "" {
			env = append(env, name+"="+value)
		}
	}
	add("TEMPORAL_ADDRESS", h.Address)
	add("TEMPORAL_NAMESPACE", h.Namespace)
	add("HOOKRELAY_TASK_QUEUE", h.TaskQueue)
	add(temporalclient.EnvCodecKeyFile, h.CodecKeyFile)
	s := h.Security
	if s.TLS {
		add(temporalclient.EnvTLS, strconv.FormatBool(s.TLS))
	}
	add(temporalclient.EnvTLSCert, s.TLSCert)
	add(temporalclient.EnvTLSKey, s.TLSKey)
	add(temporalclient.EnvTLSCA, s.TLSCA)
	add(temporalclient.EnvTLSServerName, s.TLSServerName)
	add(temporalclient.EnvAPIKey, s.APIKey)
	add(temporalclient.EnvAPIKeyFile, s.APIKeyFile)
	return env
}

// path is program in Bin, or program itself when it is an absolute path.
func (h Hookrelay) path(program string) string {
	if filepath.IsAbs(program) {
		return program
	}
	return filepath.Join(h.Bin, program)
}

// Command is a run of program (worker, starter, receiver, or an absolute
// path) with h's environment, for a caller that runs it to the end.
func (h Hookrelay) Command(program string, args ...string) *exec.Cmd {
	cmd := exec.Command(h.path(program), args...)
	cmd.Env = h.Env()
	return cmd
}

// Spec is program as a process to Start, logging to LogDir/name.log.
func (h Hookrelay) Spec(name, program string, args ...string) Spec {
	return Spec{Name: name, Path: h.path(program), Args: args, Env: h.Env(), LogDir: h.LogDir, ReadyTimeout: h.ReadyTimeout}
}

// Worker is bin/worker with args, ready once it polls.
func (h Hookrelay) Worker(name string, args ...string) Spec {
	s := h.Spec(name, "worker", args...)
	s.Ready = WorkerReady
	return s
}

// Serve is `starter serve` on a free port of 127.0.0.1 with the API token in
// tokenFile, and args; ready once it listens (LoggedAddr(ServeListening)
// then says where).
func (h Hookrelay) Serve(name, tokenFile string, args ...string) Spec {
	s := h.Spec(name, "starter", append([]string{"serve", "--listen", "127.0.0.1:0", "--api-token-file", tokenFile}, args...)...)
	s.Ready = ServeReady
	return s
}

// Options are the client options the programs use.
func (h Hookrelay) Options() temporalclient.Options {
	return temporalclient.Options{Address: h.Address, Namespace: h.Namespace, TaskQueue: h.TaskQueue, CodecKeyFile: h.CodecKeyFile, Security: h.Security}
}

// Dial connects as the programs do, decrypting payloads with CodecKeyFile;
// the client logs to logger, or nowhere if it is nil.
func (h Hookrelay) Dial(ctx context.Context, logger *slog.Logger) (client.Client, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o := h.Options()
	if o.TaskQueue == "" {
		o.TaskQueue = "unused"
	}
	return temporalclient.Dial(ctx, o, logger)
}
