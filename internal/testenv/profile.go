package testenv

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
)

// ProfileTarget is a process with a pprof listener, or one perf samples.
type ProfileTarget struct {
	Name string
	Addr string // host:port serving /debug/pprof/; "" for perf
	PID  int    // for perf
}

// Profile is one CPU profile taken during a measured phase.
type Profile struct {
	Process string `json:"process"`
	Tool    string `json:"tool"` // pprof, or perf for the dev server
	File    string `json:"file"`
	Seconds int    `json:"seconds"`
	// Top is `go tool pprof -top`'s first entries: flat and cumulative
	// share of the samples per function.
	Top   []string `json:"top,omitempty"`
	Error string   `json:"error,omitempty"`
}

// profileTopEntries is how many functions a report keeps per profile.
const profileTopEntries = 15

// PProfArgs give a worker, serve or the bench's lean worker a pprof
// listener on a free loopback port, which each logs.
var PProfArgs = []string{"--pprof-listen", "127.0.0.1:0"}

// ProfileTargets are the processes of ps that logged a pprof listener,
// and the Temporal server's processes: a cluster's four services serve
// pprof; the CLI's dev server has no flag for it (start-dev leaves the
// server's pprof port unset), so perf samples it when perf is installed.
func ProfileTargets(server Server, ps []*Process) []ProfileTarget {
	var out []ProfileTarget
	switch s := server.(type) {
	case *temporalcluster.Cluster:
		for _, svc := range temporalcluster.Services {
			if port := s.Ports(svc).PProf; port > 0 {
				out = append(out, ProfileTarget{Name: "temporal-" + string(svc), Addr: "127.0.0.1:" + strconv.Itoa(port)})
			}
		}
	case *DevServer:
		if _, err := exec.LookPath("perf"); err == nil && s.PID() > 0 {
			out = append(out, ProfileTarget{Name: "temporal", PID: s.PID()})
		}
	}
	for _, p := range ps {
		if addr, err := p.LoggedAddr(cmdline.PProfServing); err == nil {
			out = append(out, ProfileTarget{Name: p.Name(), Addr: addr})
		}
	}
	return out
}

// StartCPUProfiles starts a CPU profile of secs seconds of every target
// at once, each written to dir as <phase>-<process>.pprof (perf.data for
// perf) with its top entries read; the returned function waits for them.
func StartCPUProfiles(ctx context.Context, targets []ProfileTarget, secs int, dir, phase string) func() []Profile {
	results := make([]Profile, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			r := Profile{Process: t.Name, Tool: "pprof", File: filepath.Join(dir, phase+"-"+t.Name+".pprof"), Seconds: secs}
			var err error
			if t.Addr == "" {
				r.Tool, r.File = "perf", filepath.Join(dir, phase+"-"+t.Name+".perf.data")
				if err = perfRecord(ctx, t.PID, secs, r.File); err == nil {
					r.Top, err = perfTop(ctx, r.File, profileTopEntries)
				}
			} else if err = fetchProfile(ctx, t.Addr, secs, r.File); err == nil {
				r.Top, err = pprofTop(ctx, r.File, profileTopEntries)
			}
			if err != nil {
				r.Error = err.Error()
			}
			results[i] = r
		})
	}
	return func() []Profile {
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
		return fmt.Errorf("profile: %w", err)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
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

// perfRecord samples pid's CPU with perf for secs seconds into file: the
// dev server's profile, since it serves no pprof. Go binaries keep their
// symbols, so perf names Go functions.
func perfRecord(ctx context.Context, pid, secs int, file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	out, err := exec.CommandContext(ctx, "perf", "record", "-F", "99", "-g", "-p", strconv.Itoa(pid), "-o", file, "--", "sleep", strconv.Itoa(secs)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("perf record -p %d: %w: %s", pid, err, truncate(out, 300))
	}
	return nil
}

// perfTop is perf report's functions by their own share of the samples
// (pprof's flat%), the first n. The call graphs are in file too:
// perf report -i FILE --children shows cumulative shares.
func perfTop(ctx context.Context, file string, n int) ([]string, error) {
	out, err := exec.CommandContext(ctx, "perf", "report", "-i", file, "--stdio", "--no-children", "--sort", "symbol", "-g", "none").Output()
	if err != nil {
		return nil, fmt.Errorf("perf report %s: %w", file, err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "# Samples:"), strings.HasPrefix(l, "# Event count"):
			keep = append(keep, strings.TrimPrefix(l, "# "))
		case strings.TrimSpace(l) == "", strings.HasPrefix(l, "#"):
		case len(keep) < n+2:
			// perf pads each line with columns it leaves empty ("-").
			keep = append(keep, strings.TrimRight(strings.TrimRight(l, " -"), " "))
		}
	}
	return keep, nil
}

// PrintProfiles prints each profile's top entries.
func PrintProfiles(w io.Writer, phase string, ps []Profile) {
	for _, p := range ps {
		fmt.Fprintf(w, "\n-- %s: %s CPU profile (%s), %ds (%s)\n", phase, p.Process, p.Tool, p.Seconds, p.File)
		if p.Error != "" {
			fmt.Fprintf(w, "   failed: %s\n", p.Error)
			continue
		}
		for _, l := range p.Top {
			fmt.Fprintln(w, "  ", l)
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
