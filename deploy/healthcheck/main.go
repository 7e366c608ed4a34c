// Command healthcheck is the probe hookrelay's container images run for
// their health checks, since a distroless image has no shell, curl or wget:
//
//	healthcheck [--timeout 3s] URL
//
// It exits 0 if GET URL answers 2xx within the timeout, and 1 otherwise,
// with one line on stderr saying why. It never prints the response body.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/redact"
)

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := pflag.NewFlagSet("healthcheck", pflag.ContinueOnError)
	timeout := fs.Duration("timeout", 3*time.Second, "how long the whole request may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one URL, such as http://127.0.0.1:8080/healthz")
	}
	if *timeout <= 0 {
		return errors.New("--timeout: must be positive")
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", redact.URL(fs.Arg(0)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	// No proxy: the probe checks the process in this container.
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	shown := redact.URL(u.String())
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // its text repeats the whole URL
		}
		return fmt.Errorf("GET %s: %w", shown, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", shown, resp.Status)
	}
	return nil
}
