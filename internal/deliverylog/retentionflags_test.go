package deliverylog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/cmdline"
)

const day = 24 * time.Hour

// The retention flags: days ("2190d") or a Go duration ("720h"), at least
// a day, content no longer than records; a mistake is a usage error that
// names the flag (or the variable that fed it).
func TestRetentionFlags(t *testing.T) {
	for _, c := range []struct {
		name             string
		args             []string
		env              map[string]string
		records, content time.Duration
		err              string // a substring; "" for none
	}{
		{name: "defaults", records: 2190 * day, content: 30 * day},
		{name: "days", args: []string{"--log-retention", "365d", "--log-content-retention", "7d"}, records: 365 * day, content: 7 * day},
		{name: "durations", args: []string{"--log-retention=8760h", "--log-content-retention=36h"}, records: 365 * day, content: 36 * time.Hour},
		{name: "equal", args: []string{"--log-retention=30d", "--log-content-retention=720h"}, records: 30 * day, content: 30 * day},
		{name: "from the environment", env: map[string]string{EnvLogRetention: "400d", EnvLogContentRetention: "10d"}, records: 400 * day, content: 10 * day},
		{name: "the flag wins over the environment", args: []string{"--log-retention=500d"},
			env: map[string]string{EnvLogRetention: "400d"}, records: 500 * day, content: 30 * day},
		{name: "the flag wins over a bad variable", args: []string{"--log-retention=500d"},
			env: map[string]string{EnvLogRetention: "forever"}, records: 500 * day, content: 30 * day},
		{name: "bad variable", env: map[string]string{EnvLogRetention: "forever"}, err: "--log-retention: HOOKRELAY_LOG_RETENTION"},
		{name: "bad content variable", env: map[string]string{EnvLogContentRetention: "-3d"}, err: "--log-content-retention: HOOKRELAY_LOG_CONTENT_RETENTION"},
		{name: "not a retention", args: []string{"--log-retention=six years"}, err: "log-retention"},
		{name: "days with a fraction", args: []string{"--log-retention=1.5d"}, err: "log-retention"},
		{name: "negative days", args: []string{"--log-retention=-1d"}, err: "log-retention"},
		{name: "no unit", args: []string{"--log-retention=2190"}, err: "log-retention"},
		{name: "under a day", args: []string{"--log-retention=23h"}, err: "--log-retention: 23h0m0s is shorter than a day"},
		{name: "zero", args: []string{"--log-retention=0d"}, err: "--log-retention: 0s is shorter than a day"},
		{name: "content under a day", args: []string{"--log-content-retention=12h"}, err: "--log-content-retention: 12h0m0s is shorter than a day"},
		{name: "content past records", args: []string{"--log-retention=30d", "--log-content-retention=31d"},
			err: "--log-content-retention: 31d is longer than --log-retention 30d"},
		{name: "content past the default records", args: []string{"--log-content-retention=2191d"}, err: "--log-content-retention: 2191d is longer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvLogRetention, c.env[EnvLogRetention])
			t.Setenv(EnvLogContentRetention, c.env[EnvLogContentRetention])
			fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
			fs.SetOutput(&strings.Builder{})
			var o RetentionOptions
			o.AddFlags(fs)
			err := cmdline.Parse(fs, c.args, 0)
			if err == nil {
				err = o.Check(fs)
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, cmdline.ErrUsage) {
					t.Fatalf("got %v, want a usage error containing %q", err, c.err)
				}
				return
			}
			if err != nil || o.Records != c.records || o.Content != c.content {
				t.Fatalf("got records %s content %s (%v), want %s and %s", o.Records, o.Content, err, c.records, c.content)
			}
		})
	}
}

// --help shows the defaults in the form the flags take.
func TestRetentionFlagsHelp(t *testing.T) {
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	var o RetentionOptions
	o.AddFlags(fs)
	usage := fs.FlagUsages()
	for _, want := range []string{"--log-retention days", "(default 2190d)", "--log-content-retention days", "(default 30d)"} {
		if !strings.Contains(usage, want) {
			t.Errorf("--help lacks %q:\n%s", want, usage)
		}
	}
}
