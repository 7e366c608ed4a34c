package deliverylog

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/cmdline"
)

// MinRetention is the shortest retention either flag takes: retention runs
// once a day.
const MinRetention = 24 * time.Hour

// ParseRetention reads a retention: whole days as "2190d", or a Go
// duration such as "720h" or "36h30m".
func ParseRetention(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > int64(1<<63-1)/int64(24*time.Hour) {
			return 0, fmt.Errorf("%q is not a count of days such as 2190d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither days such as 2190d nor a duration such as 720h", s)
	}
	return d, nil
}

// FormatRetention writes d as ParseRetention reads it: whole days as "30d".
func FormatRetention(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

type retentionValue struct{ p *time.Duration }

func (v retentionValue) String() string { return FormatRetention(*v.p) }
func (v retentionValue) Type() string   { return "days" }
func (v retentionValue) Set(s string) error {
	d, err := ParseRetention(s)
	if err != nil {
		return err
	}
	*v.p = d
	return nil
}

// The retention flags and their environment fallbacks.
const (
	FlagRetention          = "log-retention"
	FlagContentRetention   = "log-content-retention"
	EnvLogRetention        = "HOOKRELAY_LOG_RETENTION"
	EnvLogContentRetention = "HOOKRELAY_LOG_CONTENT_RETENTION"
	retentionUsage         = "keep the delivery log's records this long: days as 2190d, or a duration as 720h; at least 1d"
	contentRetentionUsage  = "blank the log's response excerpts after this long: days as 30d, or a duration; 1d to --log-retention"
)

// AddFlags defines --log-retention and --log-content-retention for a
// process that runs retention (the worker), defaulting to their variables.
func (o *RetentionOptions) AddFlags(fs *pflag.FlagSet) {
	o.envBad = map[string]string{}
	for _, f := range []struct {
		p               *time.Duration
		name, env, help string
		def             time.Duration
	}{
		{&o.Records, FlagRetention, EnvLogRetention, retentionUsage, DefaultRetention},
		{&o.Content, FlagContentRetention, EnvLogContentRetention, contentRetentionUsage, DefaultContentRetention},
	} {
		*f.p = f.def
		if v, ok := cmdline.Env(f.env); ok {
			if d, err := ParseRetention(v); err != nil {
				o.envBad[f.name] = fmt.Sprintf("--%s: %s: %v", f.name, f.env, err)
			} else {
				*f.p = d
			}
		}
		fs.Var(retentionValue{f.p}, f.name, f.help+" (env "+f.env+")")
	}
}

// Check refuses a retention flag out of bounds, or a variable that did
// not parse when its flag was not given, naming the flag: a usage mistake.
func (o *RetentionOptions) Check(fs *pflag.FlagSet) error {
	for _, name := range []string{FlagRetention, FlagContentRetention} {
		if bad := o.envBad[name]; bad != "" && !fs.Changed(name) {
			return cmdline.Usagef("%s", bad)
		}
	}
	switch {
	case o.Records < MinRetention:
		return cmdline.Usagef("--%s: %s is shorter than a day", FlagRetention, FormatRetention(o.Records))
	case o.Content < MinRetention:
		return cmdline.Usagef("--%s: %s is shorter than a day", FlagContentRetention, FormatRetention(o.Content))
	case o.Content > o.Records:
		return cmdline.Usagef("--%s: %s is longer than --%s %s", FlagContentRetention,
			FormatRetention(o.Content), FlagRetention, FormatRetention(o.Records))
	}
	return nil
}
