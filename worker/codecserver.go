package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/codecserver"
	"github.com/hookrelay/hookrelay/internal/secretfile"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// envCodecTokenFile is the environment fallback of --token-file.
const envCodecTokenFile = "HOOKRELAY_CODEC_TOKEN_FILE"

// runCodecServer serves /encode and /decode for the Temporal UI and CLI
// until SIGINT/SIGTERM.
func runCodecServer(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("worker codec-server", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve on")
	var keyFile, tokenFile string
	temporalclient.AddCodecKeyFileFlag(fs, &keyFile)
	origin := fs.String("ui-origin", "http://127.0.0.1:8233", "the Temporal UI's origin: the only one browsers may call from")
	cmdline.String(fs, &tokenFile, "token-file", envCodecTokenFile, "", "file holding the token callers send as \"Authorization: Bearer <token>\"")
	pathToken := fs.Bool("accept-path-token", false, "also accept the token as the first path segment, for a UI that cannot send headers (make dev)")
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	if keyFile == "" {
		return cmdline.Usagef("--codec-key-file: required (or set %s)", temporalclient.EnvCodecKeyFile)
	}
	if tokenFile == "" {
		return cmdline.Usagef("--token-file: required (or set %s): the codec server decrypts health information for whoever may call it", envCodecTokenFile)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	secretfile.Warn(logger, "--codec-key-file", keyFile)
	secretfile.Warn(logger, "--token-file", tokenFile)
	c, err := codec.Load(keyFile)
	if err != nil {
		return fmt.Errorf("--codec-key-file: %w", err)
	}
	c.Watch(temporalclient.KeyMonitor(logger, nil)) // /encode seals too
	token, err := codecserver.ReadToken(tokenFile)
	if err != nil {
		return err
	}
	h, err := codecserver.Handler(c, codecserver.Options{Origin: *origin, Token: token, PathToken: *pathToken})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	logger.Info("codec server listening", "addr", ln.Addr().String(), "ui_origin", *origin, "encrypts_with", c.KeyID(), "path_token", *pathToken)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("codec server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("codec server shutdown: %w", err)
	}
	logger.Info("codec server stopped")
	return nil
}
