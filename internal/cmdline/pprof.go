package cmdline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/spf13/pflag"
)

// PProfServing is the message of the log line that holds the pprof listener's address.
const PProfServing = "pprof serving"

// PProf is the opt-in profiling listener (--pprof-listen) of worker and
// starter serve: net/http/pprof's handlers at /debug/pprof/, off unless
// asked for. It binds loopback only: profiles and goroutine dumps describe
// the process's insides, so they are fetched from the host itself (or
// through an SSH or kubectl port-forward), never from a network.
type PProf struct {
	Listen string
}

// AddFlags adds --pprof-listen.
func (p *PProf) AddFlags(fs *pflag.FlagSet) {
	String(fs, &p.Listen, "pprof-listen", "HOOKRELAY_PPROF_LISTEN", "",
		"serve Go's pprof profiles at /debug/pprof/ on this loopback address, such as 127.0.0.1:6060 (off by default)")
}

// Check refuses an address that is not a loopback IP and port.
func (p PProf) Check() error {
	if p.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(p.Listen)
	if err != nil {
		return Usagef("--pprof-listen: %q is not host:port", p.Listen)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return Usagef("--pprof-listen: %q is not a loopback address; profiles are served to this host only (127.0.0.1:PORT or [::1]:PORT)", p.Listen)
	}
	return nil
}

// Serve listens when --pprof-listen is set and serves until ctx is done,
// logging PProfServing with the address. It returns once listening.
func (p PProf) Serve(ctx context.Context, logger *slog.Logger) error {
	if p.Listen == "" {
		return nil
	}
	if err := p.Check(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", p.Listen)
	if err != nil {
		return fmt.Errorf("--pprof-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace answers after its ?seconds=.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("pprof server stopped", "error", err.Error())
		}
	}()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	logger.Info(PProfServing, "addr", ln.Addr().String())
	return nil
}
