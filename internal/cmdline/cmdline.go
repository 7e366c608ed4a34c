// Package cmdline is the prologue every hookrelay command shares: flags that
// fall back to an environment variable (each flag and its variable defined
// once, where its options live), the exit codes (2 for a command-line
// mistake, 1 for anything else), deprecated flag aliases, and signal
// handling. Commands parse and check every flag before they dial Temporal.
package cmdline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// ErrUsage marks a mistake in the command line: exit status 2.
var ErrUsage = errors.New("usage")

// Usage wraps err as a command-line mistake.
func Usage(err error) error {
	if err == nil || errors.Is(err, ErrUsage) || errors.Is(err, pflag.ErrHelp) {
		return err
	}
	return &usageError{err}
}

// Usagef is Usage(fmt.Errorf(format, args...)).
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

type usageError struct{ err error }

func (e *usageError) Error() string   { return e.err.Error() }
func (e *usageError) Unwrap() []error { return []error{e.err, ErrUsage} }

// Main runs a command with a context that SIGINT and SIGTERM cancel, then
// exits: 0 on success or --help, 2 on a usage mistake, 1 otherwise, printing
// the error on one line after the command's name.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	os.Exit(Exit(os.Stderr, name, err))
}

// Exit reports err on w and returns the exit status Main exits with.
func Exit(w io.Writer, name string, err error) int {
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintln(w, name+":", OneLine(err))
		return 2
	default:
		fmt.Fprintln(w, name+":", OneLine(err))
		return 1
	}
}

// OneLine keeps an error to one line, as a command-line answer should be.
func OneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// Parse parses args into fs. A flag it does not know, a malformed value, an
// environment fallback that does not parse (unless the flag is given), or a
// positional argument when maxArgs is 0 is a usage mistake.
func Parse(fs *pflag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		return Usage(err)
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if msg := f.Annotations[envErrorAnnotation]; len(msg) > 0 && !f.Changed {
			errs = append(errs, errors.New(msg[0]))
		}
	})
	if len(errs) > 0 {
		return Usage(errors.Join(errs...))
	}
	if maxArgs >= 0 && fs.NArg() > maxArgs {
		return Usagef("unexpected argument %q", fs.Arg(maxArgs))
	}
	return nil
}

// Deprecated adds old as another name of the flag name, sharing its value,
// hidden from --help; using it prints a deprecation notice on stderr.
func Deprecated(fs *pflag.FlagSet, old, name string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("cmdline: deprecated alias " + old + " of unknown flag " + name)
	}
	alias := fs.VarPF(f.Value, old, "", f.Usage)
	alias.NoOptDefVal = f.NoOptDefVal
	fs.MarkDeprecated(old, "use --"+name)
}

// Changed lists the flags among names given on the command line, by their
// name or a Deprecated alias.
func Changed(fs *pflag.FlagSet, names ...string) []string {
	var out []string
	for _, n := range names {
		f := fs.Lookup(n)
		if f == nil {
			continue
		}
		changed := false
		fs.Visit(func(g *pflag.Flag) { changed = changed || g.Value == f.Value })
		if changed {
			out = append(out, "--"+n)
		}
	}
	return out
}
