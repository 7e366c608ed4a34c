package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hookrelay/hookrelay/internal/testenv"
)

// workingTree names the working tree's build in the comparison.
const workingTree = "working tree"

// validateCompare names the first unusable flag of a comparison (--compare).
func (c config) validateCompare() error {
	switch {
	case c.compareRounds < 1 || c.compareRounds > 20:
		return usagef("--compare-rounds: must be 1 to 20, got %d", c.compareRounds)
	case c.compare == "":
		return nil
	case c.mode != modeThroughput:
		return usagef("--compare: only the throughput mode compares revisions")
	case c.logDB != logNone:
		return usagef("--log-db: with --compare every phase runs without the delivery log: give --log-db none")
	case c.endpointsDB != "":
		return usagef("--endpoints-db: with --compare both revisions read the endpoints file; a registry's schema may differ between them")
	case strings.HasPrefix(c.compare, "-") || strings.ContainsAny(c.compare, " \t\n"):
		return usagef("--compare: %q is not a git revision", c.compare)
	}
	return nil
}

// resolveRevision is the commit rev names in the repository at root, or a
// usage error naming --compare.
func resolveRevision(root, rev string) (string, error) {
	cmd := exec.Command("git", "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		detail := strings.TrimSpace(stderr.String())
		if detail == "" {
			detail = "git rev-parse: " + err.Error()
		}
		return "", usagef("--compare: %q is not a commit of the repository at %s (%s)", rev, root, detail)
	}
	return strings.TrimSpace(string(out)), nil
}

// buildRevision extracts commit's tree (git archive) into a directory under
// tmp and builds its worker, starter and receiver into another; it returns
// the binaries' directory.
func buildRevision(ctx context.Context, root, commit, tmp string) (string, error) {
	src := filepath.Join(tmp, "src-"+commit[:12])
	bin := filepath.Join(tmp, "bin-"+commit[:12])
	if err := os.MkdirAll(src, 0o700); err != nil {
		return "", fmt.Errorf("--compare: source dir: %w", err)
	}
	archive := exec.CommandContext(ctx, "git", "archive", "--format=tar", commit)
	archive.Dir = root
	extract := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("--compare: git archive: %w", err)
	}
	extract.Stdin = pipe
	var archiveErr, extractErr bytes.Buffer
	archive.Stderr, extract.Stderr = &archiveErr, &extractErr
	if err := extract.Start(); err != nil {
		return "", fmt.Errorf("--compare: tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		extract.Wait()
		return "", fmt.Errorf("--compare: git archive %s: %w: %s", commit, err, strings.TrimSpace(archiveErr.String()))
	}
	if err := extract.Wait(); err != nil {
		return "", fmt.Errorf("--compare: extract %s: %w: %s", commit, err, strings.TrimSpace(extractErr.String()))
	}
	if err := testenv.Build(ctx, src, bin); err != nil {
		return "", fmt.Errorf("--compare: build %s: %w", commit, err)
	}
	return bin, nil
}

// compareRound is one pair of phases, the working tree's and the revision's.
type compareRound struct {
	Round int `json:"round"`
	// Order is which ran first.
	Order    string      `json:"order"`
	Current  phaseResult `json:"current"`
	Previous phaseResult `json:"previous"`
	// ThroughputRatio is current's deliveries/s over previous's.
	ThroughputRatio float64 `json:"throughput_ratio"`
	// WorkerCPURatio is current's worker CPU per delivery over previous's.
	WorkerCPURatio float64 `json:"worker_cpu_ratio"`
}

// revisionCompare is the working tree measured beside another revision.
type revisionCompare struct {
	Revision string         `json:"revision"` // as given to --compare
	Commit   string         `json:"commit"`
	Rounds   []compareRound `json:"rounds"`
	// ThroughputRatio and WorkerCPURatio are the geometric means of the rounds' ratios.
	ThroughputRatio float64 `json:"throughput_ratio_geomean"`
	WorkerCPURatio  float64 `json:"worker_cpu_ratio_geomean"`
	// ActionsCurrent and ActionsPrevious are the highest billable actions per
	// first-try delivery of any round's sample.
	ActionsCurrent  float64 `json:"actions_per_delivery_current"`
	ActionsPrevious float64 `json:"actions_per_delivery_previous"`
}

// runCompare measures hookrelay from the working tree and from the
// revision --compare names in --compare-rounds rounds, the first phase of
// each round the second of the round before, every phase with new events
// on a task queue of its own; first is the working tree's first phase.
func runCompare(ctx context.Context, h *harness, rep *throughputReport, first hookrelayPhase, account string) error {
	cfg := h.cfg
	cmp := &revisionCompare{Revision: cfg.compare, Commit: cfg.compareCommit}
	short := cfg.compareCommit[:min(12, len(cfg.compareCommit))]
	defer func() { h.phaseBin, h.phaseTag = "", "" }()
	phases := 0
	runPhase := func(n int, previous bool) (phaseResult, error) {
		p := first
		h.phaseBin, h.phaseTag = "", fmt.Sprintf("r%d-current", n)
		p.name = fmt.Sprintf("round %d, %s", n, workingTree)
		if previous {
			h.phaseBin, h.phaseTag = h.compareBin, fmt.Sprintf("r%d-%s", n, short)
			p.name = fmt.Sprintf("round %d, %s", n, cfg.compare)
		}
		if phases > 0 { // the first phase is the working tree's, on first's events
			var err error
			p.taskQueue = fmt.Sprintf("bench-%s-%d", h.runID, phases+1)
			if p.events, err = makeEventsFrom(account, len(first.events), 3_000_000+phases*1_000_000); err != nil {
				return phaseResult{}, err
			}
		}
		phases++
		return p.run(ctx, h)
	}
	var throughputs, cpus []float64
	for n := 1; n <= cfg.compareRounds; n++ {
		r := compareRound{Round: n}
		previousFirst := n%2 == 0
		var err error
		if previousFirst {
			r.Order = cfg.compare + ", then " + workingTree
			if r.Previous, err = runPhase(n, true); err == nil {
				r.Current, err = runPhase(n, false)
			}
		} else {
			r.Order = workingTree + ", then " + cfg.compare
			if r.Current, err = runPhase(n, false); err == nil {
				r.Previous, err = runPhase(n, true)
			}
		}
		if err != nil {
			return err
		}
		r.ThroughputRatio = ratio(r.Current.DeliveriesPerSecond, r.Previous.DeliveriesPerSecond)
		throughputs = append(throughputs, r.Current.DeliveriesPerSecond/r.Previous.DeliveriesPerSecond)
		cpuCur, cpuPrev := cpuGroup(r.Current, "workers"), cpuGroup(r.Previous, "workers")
		r.WorkerCPURatio = ratio(cpuCur, cpuPrev)
		cpus = append(cpus, cpuCur/cpuPrev)
		cmp.ActionsCurrent = max(cmp.ActionsCurrent, r.Current.Actions.PerDelivery)
		cmp.ActionsPrevious = max(cmp.ActionsPrevious, r.Previous.Actions.PerDelivery)
		cmp.Rounds = append(cmp.Rounds, r)
	}
	cmp.ThroughputRatio, cmp.WorkerCPURatio = round(geoMean(throughputs), 3), round(geoMean(cpus), 3)
	rep.Hookrelay, rep.Compare = cmp.Rounds[0].Current, cmp
	return nil
}

// geoMean is the geometric mean of xs, leaving out what is not a positive
// number (a phase with no worker CPU read); 0 if nothing is left.
func geoMean(xs []float64) float64 {
	var sum float64
	n := 0
	for _, x := range xs {
		if x > 0 && !math.IsInf(x, 0) {
			sum += math.Log(x)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return math.Exp(sum / float64(n))
}

// printCompare prints each round's phases and the geometric mean of their ratios.
func printCompare(w io.Writer, r *throughputReport) {
	c := r.Compare
	if c == nil {
		return
	}
	fmt.Fprintf(w, "\n== %s against %s (%s): %d round(s), each in the other order from the one before\n", workingTree, c.Revision, c.Commit, len(c.Rounds))
	fmt.Fprintf(w, "(the hookrelay column above is round 1's %s phase)\n", workingTree)
	fmt.Fprintf(w, "%-6s %-34s %10s %10s %8s %8s %8s %8s %8s %8s\n", "round", "order", "current/s", "previous/s", "ratio",
		"actions", "actions", "wCPU ms", "wCPU ms", "ratio")
	fmt.Fprintf(w, "%-6s %-34s %10s %10s %8s %8s %8s %8s %8s %8s\n", "", "", "", "", "", "current", "previous", "current", "previous", "")
	for _, rd := range c.Rounds {
		fmt.Fprintf(w, "%-6d %-34s %10.1f %10.1f %7.3f× %8.2f %8.2f %8.2f %8.2f %7.3f×\n", rd.Round, rd.Order,
			rd.Current.DeliveriesPerSecond, rd.Previous.DeliveriesPerSecond, rd.ThroughputRatio,
			rd.Current.Actions.PerDelivery, rd.Previous.Actions.PerDelivery,
			cpuGroup(rd.Current, "workers"), cpuGroup(rd.Previous, "workers"), rd.WorkerCPURatio)
	}
	fmt.Fprintf(w, "throughput, current ÷ previous, geometric mean over the rounds: %.3f×\n", c.ThroughputRatio)
	fmt.Fprintf(w, "worker CPU per delivery (wCPU), current ÷ previous, geometric mean: %.3f×\n", c.WorkerCPURatio)
	fmt.Fprintf(w, "billable actions per first-try delivery, highest of any round: current %.2f, previous %.2f\n", c.ActionsCurrent, c.ActionsPrevious)
}
