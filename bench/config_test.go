package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// fakeRoot is a repository with a Temporal CLI in bin/, so flags that need
// it validate without building it.
func fakeRoot(t *testing.T) string {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "temporal"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestParseFlagsDefaults(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "")
	t.Setenv(testenv.EnvServer, "")
	root := fakeRoot(t)
	c, err := parseFlags(nil, root)
	if err != nil {
		t.Fatal(err)
	}
	if c.mode != modeThroughput || c.events != 2000 || c.concurrency != 50 || c.workers != 1 || c.sample != 50 ||
		c.timeout != 15*time.Minute || c.out != filepath.Join(root, ".temporal", "bench", "results.json") || !c.baseline {
		t.Fatalf("throughput defaults: %+v", c)
	}
	p, err := parseFlags([]string{"--mode", "park"}, root)
	if err != nil {
		t.Fatal(err)
	}
	if p.events != 10000 || p.timeout != time.Hour || p.out != filepath.Join(root, ".temporal", "bench", "park.json") {
		t.Fatalf("park defaults: %+v", p)
	}
	d, err := parseFlags([]string{"--mode", "drain"}, root)
	if err != nil {
		t.Fatal(err)
	}
	if d.events != 10000 || d.openAfter != 5 || d.drainRate != 100 || d.timeout != 30*time.Minute || d.out != filepath.Join(root, ".temporal", "bench", "drain.json") {
		t.Fatalf("drain defaults: %+v", d)
	}
	a, err := parseFlags([]string{"--mode", "absorb", "--absorb-rates", "10, 20", "--signal-rates", ""}, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.absorbRates) != 2 || a.absorbRates[1] != 20 || len(a.signalRates) != 0 || a.absorbStep != 15*time.Second {
		t.Fatalf("absorb: %+v", a)
	}
	if r, err := parseFlags([]string{"--endpoints-db", "postgres"}, root); err != nil || r.endpointsDB != "postgres" || r.logDB != logNone {
		t.Fatalf("--endpoints-db postgres: %+v %v", r, err)
	}
	// The throughput mode measures with and without the log unless told
	// otherwise; no other mode does.
	for _, c := range []struct {
		args []string
		want string
	}{{nil, logPostgres}, {[]string{"--log-db", "sqlite"}, logSQLite}, {[]string{"--log-db", "none"}, logNone}, {[]string{"--mode", "park"}, logNone}} {
		if r, err := parseFlags(c.args, root); err != nil || r.logDB != c.want {
			t.Errorf("%q: --log-db %q, %v; want %q", c.args, r.logDB, err, c.want)
		}
	}
	pass, err := parseFlags([]string{"--worker-args", " --pollers 8  --max-concurrent-attempts 200 ", "--serve-args", "--max-in-flight 128"}, root)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pass.workerArgs, "|") != "--pollers|8|--max-concurrent-attempts|200" || strings.Join(pass.serveArgs, "|") != "--max-in-flight|128" {
		t.Fatalf("pass-through: %q %q", pass.workerArgs, pass.serveArgs)
	}
	// --profile gives every process a pprof listener of its own.
	prof, err := parseFlags([]string{"--profile", "prof", "--workers", "0", "--serve-args", "--worker --allow-cidr 127.0.0.0/8"}, root)
	if err != nil {
		t.Fatal(err)
	}
	pp := "--pprof-listen|127.0.0.1:0"
	if strings.Join(prof.serveArgs, "|") != "--worker|--allow-cidr|127.0.0.0/8|"+pp || strings.Join(prof.workerArgs, "|") != pp ||
		strings.Join(prof.baselineArgs, "|") != pp || !filepath.IsAbs(prof.profile) || prof.profileDuration != 20*time.Second {
		t.Fatalf("--profile: %q %q %q %q %s", prof.serveArgs, prof.workerArgs, prof.baselineArgs, prof.profile, prof.profileDuration)
	}
}

// Each bad flag is refused as a usage error naming the flag.
func TestParseFlagsRefuses(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "")
	t.Setenv(testenv.EnvServer, "")
	root := fakeRoot(t)
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{"--mode", "fast"}, "--mode"},
		{[]string{"--events", "0"}, "--events"},
		{[]string{"--events", "many"}, "--events"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--rate", "-1"}, "--rate"},
		{[]string{"--workers", "-1"}, "--workers"},
		{[]string{"--workers", "0"}, "--workers"},
		{[]string{"--workers", "0", "--serve-args", "--max-in-flight 9"}, "--workers"},
		{[]string{"--profile-duration", "0s"}, "--profile-duration"},
		{[]string{"--mode", "park", "--profile", "p"}, "--profile"},
		{[]string{"--batch", "101"}, "--batch"},
		{[]string{"--sample", "-1"}, "--sample"},
		{[]string{"--timeout", "0s"}, "--timeout"},
		{[]string{"--worker-args", `--pollers "8"`}, "--worker-args"},
		{[]string{"--retry-schedule", "soon"}, "--retry-schedule"},
		{[]string{"--retry-schedule", "1h,0s"}, "--retry-schedule"},
		{[]string{"--temporal-cli", filepath.Join(root, "missing")}, "--temporal-cli"},
		{[]string{"--mode", "drain", "--open-after", "0"}, "--open-after"},
		{[]string{"--mode", "drain", "--drain-rate", "0"}, "--drain-rate"},
		{[]string{"--mode", "absorb", "--absorb-rates", "10,fast"}, "--absorb-rates"},
		{[]string{"--mode", "absorb", "--signal-rates", "-5"}, "--signal-rates"},
		{[]string{"--mode", "absorb", "--absorb-rates", "", "--signal-rates", ""}, "--absorb-rates"},
		{[]string{"--mode", "absorb", "--absorb-step", "10ms"}, "--absorb-step"},
		{[]string{"--endpoints-db", "mysql"}, "--endpoints-db"},
		{[]string{"--mode", "park", "--endpoints-db", "sqlite"}, "--endpoints-db"},
		{[]string{"--log-db", "mysql"}, "--log-db"},
		{[]string{"--mode", "park", "--log-db", "sqlite"}, "--log-db"},
		{[]string{"--endpoints-db", "sqlite", "--log-db", "postgres"}, "--log-db"},
		{[]string{"--log-db", "none", "--log-first"}, "--log-first"},
		{[]string{"--no-such-flag"}, "--no-such-flag"},
		{[]string{"stray"}, "stray"},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, root)
		if !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("%q: error %v, want a usage error naming %s", tt.args, err, tt.flag)
		}
	}
}

// The server is chosen as the tests choose it, docker only when forced: a
// bad HOOKRELAY_TEST_SERVER is a usage error, and a mode that needs no
// bin/temporal does not ask for it.
func TestParseFlagsChoosesTheServer(t *testing.T) {
	root := t.TempDir() // no bin/temporal
	for _, c := range []struct {
		forced, address string
		args            []string
		want            testenv.Mode
		err             string
	}{
		{"", "", nil, "", "--temporal-cli"},
		{"", "temporal.internal:7233", nil, testenv.ModeCluster, ""},
		{"", "", []string{"--temporal-address", "temporal.internal:7233"}, testenv.ModeCluster, ""},
		{"docker", "", nil, testenv.ModeDocker, ""},
		{"postgres", "", nil, testenv.ModePostgres, ""},
		{"kubernetes", "", nil, "", testenv.EnvServer},
	} {
		t.Setenv("TEMPORAL_ADDRESS", c.address)
		t.Setenv(testenv.EnvServer, c.forced)
		cfg, err := parseFlags(c.args, root)
		if c.err != "" {
			if !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s=%q %v: err %v, want a usage error naming %s", testenv.EnvServer, c.forced, c.args, err, c.err)
			}
			continue
		}
		if err != nil || cfg.serverMode != c.want {
			t.Errorf("%s=%q %v: mode %q, %v; want %q", testenv.EnvServer, c.forced, c.args, cfg.serverMode, err, c.want)
		}
	}
}
