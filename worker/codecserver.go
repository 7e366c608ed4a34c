package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/codecserver"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/redact"
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
	pathToken := fs.Bool("accept-path-token", false, "DEV ONLY: also accept the token as the first path segment, for the dev server's UI, which cannot send headers (make dev)")
	var oidc codecserver.OIDC
	var algorithms string
	cmdline.String(fs, &oidc.Issuer, "oidc-issuer", "HOOKRELAY_OIDC_ISSUER", "", "also accept access tokens this OIDC issuer signed, passed by the Temporal UI's SSO (TEMPORAL_CODEC_PASS_ACCESS_TOKEN)")
	cmdline.String(fs, &oidc.Audience, "oidc-audience", "HOOKRELAY_OIDC_AUDIENCE", "", "the audience (aud) those access tokens must carry")
	cmdline.String(fs, &algorithms, "oidc-algorithms", "HOOKRELAY_OIDC_ALGORITHMS", strings.Join(codecserver.DefaultAlgorithms, ","), "signature algorithms accepted, comma-separated")
	cmdline.String(fs, &oidc.JWKSURL, "oidc-jwks-url", "HOOKRELAY_OIDC_JWKS_URL", "", "the issuer's key set (default: jwks_uri of its discovery document)")
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	oidc.Algorithms = strings.Split(algorithms, ",")
	switch {
	case oidc.Issuer != "":
		if err := oidc.Check(); err != nil {
			return cmdline.Usage(err)
		}
	case oidc.Audience != "" || oidc.JWKSURL != "":
		return cmdline.Usagef("--oidc-issuer: required with --oidc-audience and --oidc-jwks-url")
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
	c.Watch(metrics.KeyMonitor(logger, nil)) // /encode seals too
	token, err := codecserver.ReadToken(tokenFile)
	if err != nil {
		return err
	}
	opts := codecserver.Options{Origin: *origin, Token: token, PathToken: *pathToken, Logger: logger}
	if oidc.Issuer != "" {
		opts.OIDC = &oidc
	}
	if *pathToken {
		logger.Warn("--accept-path-token: the token travels in the codec URL and shows in the UI's settings to everyone who opens the UI; for the local dev UI only. Behind a production UI use its SSO: --oidc-issuer")
	}
	h, err := codecserver.Handler(c, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	logger.Info("codec server listening", "addr", ln.Addr().String(), "ui_origin", *origin, "encrypts_with", c.KeyID(), "path_token", *pathToken,
		"oidc_issuer", redact.URL(oidc.Issuer), "oidc_audience", oidc.Audience)

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
