package cmdline

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestExitStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{pflag.ErrHelp, 0, ""},
		{Usagef("--pollers: %d must not be negative", -1), 2, "cmd: --pollers: -1 must not be negative\n"},
		{fmt.Errorf("wrapped: %w", Usagef("bad")), 2, "cmd: wrapped: bad\n"},
		{errors.New("connect to Temporal:\n refused"), 1, "cmd: connect to Temporal: refused\n"},
	} {
		var w bytes.Buffer
		if code := Exit(&w, "cmd", c.err); code != c.code || w.String() != c.out {
			t.Errorf("Exit(%v) = %d %q, want %d %q", c.err, code, w.String(), c.code, c.out)
		}
	}
}

// An environment fallback fills a flag's default; a bad one is a usage
// mistake unless the flag is given, which wins over the environment.
func TestEnvironmentFallbacks(t *testing.T) {
	t.Setenv("T_STRING", "from-env")
	t.Setenv("T_INT", "lots")
	t.Setenv("T_DURATION", "2m")
	t.Setenv("T_EMPTY", "")
	newFlags := func() (*pflag.FlagSet, *string, *int, *time.Duration, *string) {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		var s, empty string
		var n int
		var d time.Duration
		String(fs, &s, "s", "T_STRING", "default", "a string")
		Int(fs, &n, "n", "T_INT", 3, "a number")
		Duration(fs, &d, "d", "T_DURATION", time.Second, "a duration")
		String(fs, &empty, "e", "T_EMPTY", "kept", "empty env keeps the default")
		return fs, &s, &n, &d, &empty
	}
	fs, s, _, d, empty := newFlags()
	err := Parse(fs, nil, 0)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `T_INT: "lots" is not a whole number`) {
		t.Fatalf("bad T_INT: %v, want a usage error naming it", err)
	}
	if *s != "from-env" || *d != 2*time.Minute || *empty != "kept" {
		t.Fatalf("from the environment: %q %s %q", *s, *d, *empty)
	}
	if !strings.Contains(fs.Lookup("n").Usage, "(env T_INT)") {
		t.Fatalf("usage %q does not name the variable", fs.Lookup("n").Usage)
	}
	fs, s, n, _, _ := newFlags()
	if err := Parse(fs, []string{"--n", "7", "--s", "flag"}, 0); err != nil || *n != 7 || *s != "flag" {
		t.Fatalf("flags win over the environment: %v, n=%d s=%q", err, *n, *s)
	}
	if err := Parse(fs, []string{"--n", "7", "extra"}, 0); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `"extra"`) {
		t.Fatalf("an unexpected argument: %v", err)
	}
}

func TestSecretIsNotShownInHelp(t *testing.T) {
	t.Setenv("T_SECRET", "not-a-real-key-0123")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	var v string
	Secret(fs, &v, "api-key", "T_SECRET", "a key")
	if v != "not-a-real-key-0123" || strings.Contains(fs.FlagUsages(), "not-a-real-key") {
		t.Fatalf("value %q; usage %q", v, fs.FlagUsages())
	}
}

func TestDeprecatedAliasSharesTheValue(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	var cidrs []string
	var on bool
	fs.StringArrayVar(&cidrs, "allow-cidr", nil, "ranges")
	fs.BoolVar(&on, "https-only", false, "https only")
	Deprecated(fs, "worker-allow-cidr", "allow-cidr")
	Deprecated(fs, "worker-https-only", "https-only")
	var stderr bytes.Buffer
	fs.SetOutput(&stderr)
	if err := Parse(fs, []string{"--worker-allow-cidr", "10.0.0.0/8", "--allow-cidr", "127.0.0.0/8", "--worker-https-only"}, 0); err != nil {
		t.Fatal(err)
	}
	if len(cidrs) != 2 || !on {
		t.Fatalf("cidrs %v, https-only %t", cidrs, on)
	}
	if strings.Contains(fs.FlagUsages(), "worker-allow-cidr") {
		t.Fatal("--help lists the deprecated name")
	}
	if got := Changed(fs, "allow-cidr", "https-only", "pollers"); len(got) != 2 {
		t.Fatalf("Changed = %v, want both flags given through either name", got)
	}
}

// Endpoints come from a file or a registry: one or the other. A flag wins
// over the other's environment variable; both given is a usage mistake.
func TestOneEndpointsSource(t *testing.T) {
	for _, c := range []struct {
		name             string
		env              map[string]string
		args             []string
		required         bool
		wantFile, wantDB string
		usage            bool
	}{
		{name: "file", args: []string{"--endpoints", "e.yaml"}, required: true, wantFile: "e.yaml"},
		{name: "db", args: []string{"--endpoints-db", "sqlite:e.db"}, required: true, wantDB: "sqlite:e.db"},
		{name: "db from env", env: map[string]string{EnvEndpointsDB: "sqlite:e.db"}, required: true, wantDB: "sqlite:e.db"},
		{name: "neither", required: true, usage: true},
		{name: "neither, optional"},
		{name: "both flags", args: []string{"--endpoints", "e.yaml", "--endpoints-db", "sqlite:e.db"}, usage: true},
		{name: "both from env", env: map[string]string{EnvEndpoints: "e.yaml", EnvEndpointsDB: "sqlite:e.db"}, usage: true},
		{name: "db flag over file env", env: map[string]string{EnvEndpoints: "e.yaml"}, args: []string{"--endpoints-db", "sqlite:e.db"}, wantDB: "sqlite:e.db"},
		{name: "file flag over db env", env: map[string]string{EnvEndpointsDB: "sqlite:e.db"}, args: []string{"--endpoints", "e.yaml"}, wantFile: "e.yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvEndpoints, c.env[EnvEndpoints])
			t.Setenv(EnvEndpointsDB, c.env[EnvEndpointsDB])
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			var file, db string
			EndpointsFile(fs, &file)
			EndpointsDB(fs, &db)
			if err := Parse(fs, c.args, 0); err != nil {
				t.Fatal(err)
			}
			err := OneEndpointsSource(fs, &file, &db, c.required)
			if c.usage {
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("%v, want a usage mistake", err)
				}
				return
			}
			if err != nil || file != c.wantFile || db != c.wantDB {
				t.Fatalf("file %q db %q err %v; want %q %q", file, db, err, c.wantFile, c.wantDB)
			}
		})
	}
}
