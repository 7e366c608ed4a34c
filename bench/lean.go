package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/signing"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// The lean baseline: the least a durable webhook on Temporal can be, one
// workflow running one ordinary activity that signs and POSTs the body,
// with no status, search attributes, timers or attempt record. It runs in
// worker processes of its own (this program's lean-worker subcommand), with
// the same payload encryption as hookrelay's.
const (
	leanWorkerCommand = "lean-worker"
	leanWorkerReady   = "lean worker started"
	leanWorkflowName  = "LeanDelivery"
	leanActivityName  = "LeanPost"
)

// leanInput is the body to POST; the workflow ID is the webhook-id.
type leanInput struct {
	Body json.RawMessage `json:"body"`
}

// leanWorkflow runs the POST once as an activity, with the SDK's default
// retry policy.
func leanWorkflow(ctx workflow.Context, in leanInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	return workflow.ExecuteActivity(ctx, leanActivityName, in).Get(ctx, nil)
}

// leanPoster is the activity: sign like hookrelay (so the receiver verifies
// both alike) and POST.
type leanPoster struct {
	url    string
	secret signing.Secret
	http   *http.Client
}

func (p *leanPoster) post(ctx context.Context, in leanInput) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(in.Body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	signing.Headers(req.Header, activity.GetInfo(ctx).WorkflowExecution.ID, time.Now(), in.Body, p.secret)
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post: status %d", resp.StatusCode)
	}
	return nil
}

// runLeanWorker is the lean-worker subcommand: a worker for the baseline
// until SIGINT/SIGTERM.
func runLeanWorker(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("bench "+leanWorkerCommand, pflag.ContinueOnError)
	var conn temporalclient.Options
	conn.AddFlags(fs)
	secretFile := fs.String("secret-file", "", "file holding the whsec_ signing secret")
	url := fs.String("url", "", "the receiver's URL")
	pollers := fs.Int("pollers", 0, "workflow and activity task pollers each (0: the SDK's default)")
	maxActivities := fs.Int("max-concurrent-activities", 0, "activities running at once (0: the SDK's default)")
	var pprof cmdline.PProf
	pprof.AddFlags(fs)
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	switch {
	case *secretFile == "" || *url == "":
		return usagef("%s: --secret-file and --url are required", leanWorkerCommand)
	case *pollers < 0 || *maxActivities < 0:
		return usagef("%s: --pollers and --max-concurrent-activities must not be negative", leanWorkerCommand)
	case pprof.Check() != nil:
		return cmdline.Usage(pprof.Check())
	}
	raw, err := os.ReadFile(*secretFile)
	if err != nil {
		return fmt.Errorf("--secret-file: %w", err)
	}
	secret, err := signing.ParseSecret(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("--secret-file %s: %w", *secretFile, err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := pprof.Serve(ctx, logger); err != nil {
		return err
	}
	c, err := temporalclient.Dial(ctx, conn, logger)
	if err != nil {
		return err
	}
	defer c.Close()

	// The same connection pooling as hookrelay's attempt client.
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	poster := &leanPoster{url: *url, secret: secret, http: &http.Client{Transport: transport, Timeout: 15 * time.Second}}
	opts := worker.Options{MaxConcurrentWorkflowTaskPollers: *pollers, MaxConcurrentActivityTaskPollers: *pollers, MaxConcurrentActivityExecutionSize: *maxActivities}
	w := worker.New(c, conn.TaskQueue, opts)
	w.RegisterWorkflowWithOptions(leanWorkflow, workflow.RegisterOptions{Name: leanWorkflowName})
	w.RegisterActivityWithOptions(poster.post, activity.RegisterOptions{Name: leanActivityName})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start lean worker: %w", err)
	}
	logger.Info(leanWorkerReady, "task_queue", conn.TaskQueue, "pid", os.Getpid())
	<-ctx.Done()
	w.Stop()
	return nil
}
