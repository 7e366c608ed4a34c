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

	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/codecserver"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/redact"
	"github.com/hookrelay/hookrelay/internal/secretfile"
	"github.com/hookrelay/hookrelay/internal/sqldb"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// envCodecTokenFile is the environment fallback of --token-file.
const envCodecTokenFile = "HOOKRELAY_CODEC_TOKEN_FILE"

// codecFlags are codec-server's flags.
type codecFlags struct {
	listen, keyFile, tokenFile, origin, auditDB string
	pathToken, migrate                          bool
	oidc                                        codecserver.OIDC
}

// parse reads and checks the flags, before anything is opened.
func (f *codecFlags) parse(args []string) error {
	fs := pflag.NewFlagSet("worker codec-server", pflag.ContinueOnError)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8081", "address to serve on")
	temporalclient.AddCodecKeyFileFlag(fs, &f.keyFile)
	fs.StringVar(&f.origin, "ui-origin", "http://127.0.0.1:8233", "the Temporal UI's origin: the only one browsers may call from")
	cmdline.String(fs, &f.tokenFile, "token-file", envCodecTokenFile, "", "file holding the token callers send as \"Authorization: Bearer <token>\"")
	fs.BoolVar(&f.pathToken, "accept-path-token", false, "DEV ONLY: also accept the token as the first path segment, for the dev server's UI, which cannot send headers (make dev)")
	oidc := &f.oidc
	var algorithms, requiredClaim string
	cmdline.String(fs, &oidc.Issuer, "oidc-issuer", "HOOKRELAY_OIDC_ISSUER", "", "also accept access tokens this OIDC issuer signed, passed by the Temporal UI's SSO (TEMPORAL_CODEC_PASS_ACCESS_TOKEN), for /decode only")
	cmdline.String(fs, &oidc.Audience, "oidc-audience", "HOOKRELAY_OIDC_AUDIENCE", "", "the audience (aud) those access tokens must carry")
	cmdline.String(fs, &requiredClaim, "oidc-required-claim", "HOOKRELAY_OIDC_REQUIRED_CLAIM", "", "NAME=VALUE every access token must carry, as a string or among a list (groups=hookrelay-codec, realm_access.roles=codec-reader); required with --oidc-issuer")
	cmdline.String(fs, &algorithms, "oidc-algorithms", "HOOKRELAY_OIDC_ALGORITHMS", strings.Join(codecserver.DefaultAlgorithms, ","), "signature algorithms accepted, comma-separated")
	cmdline.String(fs, &oidc.JWKSURL, "oidc-jwks-url", "HOOKRELAY_OIDC_JWKS_URL", "", "the issuer's key set (default: jwks_uri of its discovery document)")
	cmdline.String(fs, &f.auditDB, "audit-db", "HOOKRELAY_AUDIT_DB", "", "record every decode in the audit trail in this database (postgres://... or sqlite:PATH, the endpoint registry's); default: a log line per decode")
	cmdline.Migrate(fs, &f.migrate)
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	oidc.Algorithms = strings.Split(algorithms, ",")
	if requiredClaim != "" {
		claim, err := codecserver.ParseClaim(requiredClaim)
		if err != nil {
			return cmdline.Usage(err)
		}
		oidc.RequiredClaim = claim
	}
	switch {
	case oidc.Issuer != "":
		if err := oidc.Check(); err != nil {
			return cmdline.Usage(err)
		}
	case oidc.Audience != "" || oidc.JWKSURL != "" || requiredClaim != "":
		return cmdline.Usagef("--oidc-issuer: required with --oidc-audience, --oidc-jwks-url and --oidc-required-claim")
	}
	if f.keyFile == "" {
		return cmdline.Usagef("--codec-key-file: required (or set %s)", temporalclient.EnvCodecKeyFile)
	}
	if f.tokenFile == "" {
		return cmdline.Usagef("--token-file: required (or set %s): the codec server decrypts health information for whoever may call it", envCodecTokenFile)
	}
	return nil
}

// runCodecServer serves /encode and /decode for the Temporal UI and CLI
// until SIGINT/SIGTERM.
func runCodecServer(ctx context.Context, args []string) error {
	var f codecFlags
	if err := f.parse(args); err != nil {
		return err
	}
	oidc, keyFile, tokenFile, auditDB, pathToken, origin := &f.oidc, f.keyFile, f.tokenFile, f.auditDB, &f.pathToken, &f.origin
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
		opts.OIDC = oidc
	}
	if auditDB != "" {
		trail, err := auditstore.Open(ctx, auditDB, auditstore.Options{NoMigrate: !f.migrate})
		if err != nil {
			return fmt.Errorf("--audit-db: %w", err)
		}
		defer trail.Close()
		opts.Audit = trail
	}
	if *pathToken {
		logger.Warn("--accept-path-token: the token travels in the codec URL and shows in the UI's settings to everyone who opens the UI; for the local dev UI only. Behind a production UI use its SSO: --oidc-issuer")
	}
	h, err := codecserver.Handler(c, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	logger.Info("codec server listening", "addr", ln.Addr().String(), "ui_origin", *origin, "encrypts_with", c.KeyID(), "path_token", *pathToken,
		"oidc_issuer", redact.URL(oidc.Issuer), "oidc_audience", oidc.Audience, "oidc_required_claim", oidc.RequiredClaim.Name,
		"decodes_recorded_in", auditWhere(auditDB))

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

// auditWhere says where decodes are recorded, the password redacted.
func auditWhere(dsn string) string {
	if dsn == "" {
		return "log"
	}
	return "audit trail " + sqldb.Redact(dsn)
}
