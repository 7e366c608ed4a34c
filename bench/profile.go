package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/temporalcluster"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// profileTarget is a process with a pprof listener.
type profileTarget struct {
	name string
	addr string // host:port serving /debug/pprof/
}

// profileResult is one CPU profile taken during a measured phase.
type profileResult struct {
	Process string `json:"process"`
	File    string `json:"file"`
	Seconds int    `json:"seconds"`
	// Top is `go tool pprof -top`'s first entries: flat and cumulative
	// share of the samples per function.
	Top   []string `json:"top,omitempty"`
	Error string   `json:"error,omitempty"`
}

// profileTopEntries is how many functions a report keeps per profile.
const profileTopEntries = 15

// pprofArgs are what --profile adds to worker, serve and lean worker
// command lines: a pprof listener on a free loopback port, which each logs.
var pprofArgs = []string{"--pprof-listen", "127.0.0.1:0"}

// profileTargets are the processes of ps that logged a pprof listener,
// and the Temporal server's processes when they serve pprof: a cluster's
// four services do; the CLI's dev server has no flag for it.
func (h *harness) profileTargets(ps []*testenv.Process) []profileTarget {
	var out []profileTarget
	if c, ok := h.server.(*temporalcluster.Cluster); ok {
		for _, svc := range temporalcluster.Services {
			if port := c.Ports(svc).PProf; port > 0 {
				out = append(out, profileTarget{"temporal-" + string(svc), "127.0.0.1:" + strconv.Itoa(port)})
			}
		}
	}
	for _, p := range ps {
		if addr, err := p.LoggedAddr(cmdline.PProfServing); err == nil {
			out = append(out, profileTarget{p.Name(), addr})
		}
	}
	return out
}

// startProfiles starts a CPU profile of --profile-seconds on every target
// at once, when --profile is set; the returned function waits for them,
// writes each to --profile's directory as <phase>-<process>.pprof and
// reads its top entries.
func (h *harness) startProfiles(ctx context.Context, phase string, targets []profileTarget) func() []profileResult {
	if h.cfg.profile == "" {
		return func() []profileResult { return nil }
	}
	secs := int(h.cfg.profileDuration / time.Second)
	if len(targets) == 0 {
		fmt.Fprintf(h.out, "   %s: no process serves pprof; no profile\n", phase)
	} else {
		names := make([]string, len(targets))
		for i, t := range targets {
			names[i] = t.name
		}
		fmt.Fprintf(h.out, "   %s: profiling %s for %ds\n", phase, strings.Join(names, ", "), secs)
	}
	results := make([]profileResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := filepath.Join(h.cfg.profile, phase+"-"+t.name+".pprof")
			r := profileResult{Process: t.name, File: rel(h.cfg.root, file), Seconds: secs}
			if err := fetchProfile(ctx, t.addr, secs, file); err != nil {
				r.Error = err.Error()
			} else if r.Top, err = pprofTop(ctx, file, profileTopEntries); err != nil {
				r.Error = err.Error()
			}
			results[i] = r
		}()
	}
	return func() []profileResult {
		wg.Wait()
		return results
	}
}

// fetchProfile saves a CPU profile of secs seconds from addr's pprof listener to file.
func fetchProfile(ctx context.Context, addr string, secs int, file string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("profile: %s answered %d: %s", url, resp.StatusCode, b)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile from %s: %w", addr, err)
	}
	return f.Close()
}

// pprofTop runs `go tool pprof -top` on file and keeps its header's
// sample line and the first n entries. Go profiles carry their symbols,
// so no binary is needed.
func pprofTop(ctx context.Context, file string, n int) ([]string, error) {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount="+strconv.Itoa(n), file).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -top %s: %w: %s", file, err, truncate(out, 300))
	}
	return parsePprofTop(string(out)), nil
}

// parsePprofTop keeps the "Duration: ..., Total samples = ..." line and
// the table from its column header on.
func parsePprofTop(out string) []string {
	var keep []string
	table := false
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "Duration:"):
			keep = append(keep, strings.TrimSpace(l))
		case strings.Contains(l, "flat%") && strings.Contains(l, "cum%"):
			table = true
			keep = append(keep, l)
		case table:
			keep = append(keep, l)
		}
	}
	return keep
}

// printProfiles prints each profile's top entries.
func printProfiles(w io.Writer, phase string, ps []profileResult) {
	for _, p := range ps {
		fmt.Fprintf(w, "\n-- %s: %s CPU profile, %ds (%s)\n", phase, p.Process, p.Seconds, p.File)
		if p.Error != "" {
			fmt.Fprintf(w, "   failed: %s\n", p.Error)
			continue
		}
		for _, l := range p.Top {
			fmt.Fprintln(w, "  ", l)
		}
	}
}
