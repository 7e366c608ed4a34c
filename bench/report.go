package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookrelay/hookrelay/internal/billable"
	"github.com/hookrelay/hookrelay/internal/temporalcluster"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// configJSON is the run's settings as the report records them.
type configJSON struct {
	Events          int      `json:"events"`
	Concurrency     int      `json:"concurrency"`
	Rate            float64  `json:"rate_per_second"` // 0: unlimited
	Workers         int      `json:"workers"`
	Batch           int      `json:"batch"`
	Sample          int      `json:"sample"`
	Warmup          int      `json:"warmup"`
	Baseline        bool     `json:"baseline"`
	BaselineWorkers int      `json:"baseline_workers"`
	WorkerArgs      []string `json:"worker_args"`
	ServeArgs       []string `json:"serve_args"`
	ServerArgs      []string `json:"server_args"`
	BaselineArgs    []string `json:"baseline_args"`
	Namespace       string   `json:"namespace"`
	Timeout         string   `json:"timeout"`
	Hold            string   `json:"hold,omitempty"`
	LogDB           string   `json:"log_db,omitempty"`  // throughput: the with-log phase's store; "": none
	Compare         string   `json:"compare,omitempty"` // throughput: the revision measured beside the working tree
	CompareRounds   int      `json:"compare_rounds,omitempty"`
}

// header is what every report starts with.
type header struct {
	Mode        string            `json:"mode"`
	Command     string            `json:"command"`
	Machine     testenv.Machine   `json:"machine"`
	Config      configJSON        `json:"config"`
	Temporal    string            `json:"temporal"`
	LogDir      string            `json:"log_dir"`
	Definitions map[string]string `json:"definitions"`
}

var definitions = map[string]string{
	"latency":               "from just before an event's first POST /v1/events (baseline: client.ExecuteWorkflow) to the receiver's verified 2xx for it; 503 waits included",
	"deliveries_per_second": "measured events / (last verified 2xx - first request)",
	"accepted_per_second":   "measured events / (last 202 or start - first request)",
	"actions":               "Temporal Cloud billable actions counted from the histories of an evenly spread sample: workflow start, activity scheduled, timer started, signal, update accepted, search-attribute upsert, each workflow task recording LocalActivity markers once; heartbeats and queries are not in history and not counted",
	"peak_rss":              "VmHWM from /proc/PID/status; workers_peak_rss_sum is the sum over worker processes, _max the largest",
	"cpu_seconds":           "utime+stime from /proc/PID/stat over the measured phase (warm-up excluded); cpu_ms_per_delivery is also CPU seconds per 1,000 deliveries",
	"latency_stages":        "the latency of the history sample split where its history records time: request to the WorkflowExecutionStarted event, to the first WorkflowTaskStarted (matching handed the task to a worker), to the receiver's verified 2xx; one machine's clock",
	"history":               "from the same sample as actions: events per history, bytes as the sum of proto.Size of each HistoryEvent, visibility writes as the events after which the server writes visibility (workflow started, search attributes upserted, properties modified, and the close event)",
	"park":                  "parked = visibility counts the retrying deliveries (workflows.StatusRetrying) on the run's task queue; worker RSS is VmRSS summed over worker processes, sampled every second",
}

// finish records the machine's load at the end of the run.
func (hd *header) finish() { hd.Machine.LoadAvgEnd = testenv.LoadAvg() }

func newHeader(cfg config, h *harness, args []string) header {
	temporal := "dev server (" + rel(cfg.root, cfg.temporalCLI) + ", in memory) at " + h.hr.Address
	switch cfg.serverMode {
	case testenv.ModeCluster:
		temporal = cfg.temporalAddress
	case testenv.ModeDocker:
		temporal = "dev server container (" + testenv.DockerImageRepository + ":" + testenv.DockerImageTag + ") at " + h.hr.Address
	case testenv.ModePostgres:
		temporal = "Temporal server " + temporalcluster.ServerVersion + " on PostgreSQL, frontend, history, matching and worker as four processes (bin/temporal-server-" +
			temporalcluster.ServerVersion + "), at " + h.hr.Address
	}
	cli := cfg.temporalCLI // its version is in the figures when it runs the server
	if cfg.temporalAddress != "" {
		cli = ""
	}
	c := configJSON{Events: cfg.events, Concurrency: cfg.concurrency, Rate: cfg.rate, Workers: cfg.workers, Batch: cfg.batch, Sample: cfg.sample,
		Warmup: cfg.warmup, Baseline: cfg.baseline, BaselineWorkers: cfg.baselineWorkers, WorkerArgs: cfg.workerArgs,
		ServeArgs: cfg.serveArgs, ServerArgs: cfg.serverArgs, BaselineArgs: cfg.baselineArgs, Namespace: h.hr.Namespace, Timeout: cfg.timeout.String()}
	if cfg.logDB != logNone {
		c.LogDB = cfg.logDB
	}
	if cfg.compare != "" {
		c.Compare, c.CompareRounds = cfg.compare+" ("+cfg.compareCommit+")", cfg.compareRounds
	}
	if cfg.mode == modePark {
		c.Hold, c.Warmup, c.Baseline, c.BaselineWorkers = cfg.hold.String(), 0, false, 0
	}
	return header{
		Mode:        cfg.mode,
		Command:     commandLine(args),
		Machine:     testenv.DescribeMachine(cfg.root, cli),
		Config:      c,
		Temporal:    temporal,
		LogDir:      rel(cfg.root, h.logDir),
		Definitions: definitions,
	}
}

// commandLine is how to run this again.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t\"'$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// writeJSON writes v to path, creating its directory.
func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func printMachine(w io.Writer, hd header) {
	m := hd.Machine
	fmt.Fprintf(w, "machine: %s, %d cores, %s, %s, %s; load average %s at start, %s at end\n",
		m.CPU, m.Cores, mb(m.MemoryBytes), m.OS, m.GoVersion, m.LoadAvgStart, m.LoadAvgEnd)
	fmt.Fprintf(w, "temporal: %s\ncommit: %s   date: %s\n", hd.Temporal, m.GitCommit, m.Date)
}

// printThroughput prints hookrelay and the baseline side by side.
func printThroughput(w io.Writer, r *throughputReport) {
	hk, base := r.Hookrelay, r.Baseline
	cfg := r.Config
	fmt.Fprintf(w, "\n== results: %d deliveries each, %d concurrent submitters, %d hookrelay worker(s), %d baseline worker(s), batch %d\n",
		hk.Deliveries, cfg.Concurrency, cfg.Workers, cfg.BaselineWorkers, cfg.Batch)
	printMachine(w, r.header)
	fmt.Fprintf(w, "\n%-38s %14s %14s %10s\n", "", "hookrelay", "baseline", "ratio")
	row := func(label string, a, b float64, format string, withRatio bool) {
		bs, rs := "-", ""
		if base != nil {
			bs = fmt.Sprintf(format, b)
			if withRatio && a != 0 && b != 0 {
				rs = fmt.Sprintf("%.2f×", ratio(a, b))
			}
		}
		fmt.Fprintf(w, "%-38s %14s %14s %10s\n", label, fmt.Sprintf(format, a), bs, rs)
	}
	var b phaseResult
	if base != nil {
		b = *base
	}
	row("deliveries/s (first request→last 2xx)", hk.DeliveriesPerSecond, b.DeliveriesPerSecond, "%.1f", true)
	row("accepted/s", hk.AcceptedPerSecond, b.AcceptedPerSecond, "%.1f", true)
	row("latency p50 (ms)", hk.Latency.P50, b.Latency.P50, "%.1f", true)
	row("latency p95 (ms)", hk.Latency.P95, b.Latency.P95, "%.1f", true)
	row("latency p99 (ms)", hk.Latency.P99, b.Latency.P99, "%.1f", true)
	row("latency max (ms)", hk.Latency.Max, b.Latency.Max, "%.1f", false)
	row(fmt.Sprintf("  p50 request→start (%d sampled)", hk.Stages.Sampled), hk.Stages.RequestToStart.P50, b.Stages.RequestToStart.P50, "%.1f", false)
	row("  p50 start→first workflow task", hk.Stages.StartToTask.P50, b.Stages.StartToTask.P50, "%.1f", false)
	row("  p50 first workflow task→2xx", hk.Stages.TaskTo2xx.P50, b.Stages.TaskTo2xx.P50, "%.1f", false)
	row(fmt.Sprintf("billable actions/delivery (%d sampled)", hk.Actions.Sampled), hk.Actions.PerDelivery, b.Actions.PerDelivery, "%.2f", true)
	for _, c := range billable.Categories {
		if hk.Actions.Breakdown[c] != 0 || b.Actions.Breakdown[c] != 0 {
			row("  "+string(c), hk.Actions.Breakdown[c], b.Actions.Breakdown[c], "%.2f", false)
		}
	}
	row(fmt.Sprintf("history events/delivery (%d sampled)", hk.History.Sampled), hk.History.Events, b.History.Events, "%.2f", true)
	row("history bytes/delivery (proto.Size)", hk.History.Bytes, b.History.Bytes, "%.0f", true)
	row("visibility writes/delivery", hk.History.VisibilityWrites, b.History.VisibilityWrites, "%.2f", true)
	mbRow := func(label string, a, b int64) {
		bs := "-"
		if base != nil && b > 0 {
			bs = mb(b)
		}
		as := "-"
		if a > 0 {
			as = mb(a)
		}
		fmt.Fprintf(w, "%-38s %14s %14s\n", label, as, bs)
	}
	mbRow("peak RSS, workers (sum of VmHWM)", hk.WorkersPeakRSSSum, b.WorkersPeakRSSSum)
	mbRow("peak RSS, largest worker (VmHWM)", hk.WorkersPeakRSSMax, b.WorkersPeakRSSMax)
	mbRow("peak RSS, starter serve (VmHWM)", hk.ServePeakRSS, 0)
	// CPU ms per delivery is CPU seconds per 1,000 deliveries. A worker
	// serve hosts counts as serve's.
	for _, group := range []string{"temporal", "serve", "workers", "bench"} {
		row("CPU-s/1000 deliveries, "+group, cpuGroup(hk, group), cpuGroup(b, group), "%.2f", group == "workers" || group == "temporal")
	}
	row("503 refusals (retried)", float64(hk.Refused503), 0, "%.0f", false)
	row("duplicate deliveries", float64(hk.Duplicates), float64(b.Duplicates), "%.0f", false)
	printWithLog(w, r)
	printCompare(w, r)
	testenv.PrintProfiles(w, "hookrelay", hk.Profiles)
	if r.HookrelayWithLog != nil {
		testenv.PrintProfiles(w, "hookrelay+log", r.HookrelayWithLog.Profiles)
	}
	testenv.PrintProfiles(w, "baseline", b.Profiles)
}

// printWithLog prints hookrelay without and with the delivery log, and
// what the log held after.
func printWithLog(w io.Writer, r *throughputReport) {
	lg, wo := r.DeliveryLog, r.Hookrelay
	if lg == nil || r.HookrelayWithLog == nil {
		return
	}
	wi := *r.HookrelayWithLog
	fmt.Fprintf(w, "\n== delivery log (%s, a fresh database): hookrelay %s it, one after the other\n", lg.Store, lg.Order)
	fmt.Fprintf(w, "%-38s %14s %14s %10s\n", "", "without log", "with log", "ratio")
	row := func(label string, a, b float64, format string, withRatio bool) {
		rs := ""
		if withRatio && a != 0 && b != 0 {
			rs = fmt.Sprintf("%.2f×", ratio(b, a))
		}
		fmt.Fprintf(w, "%-38s %14s %14s %10s\n", label, fmt.Sprintf(format, a), fmt.Sprintf(format, b), rs)
	}
	row("deliveries/s (first request→last 2xx)", wo.DeliveriesPerSecond, wi.DeliveriesPerSecond, "%.1f", true)
	row("accepted/s", wo.AcceptedPerSecond, wi.AcceptedPerSecond, "%.1f", true)
	row("latency p50 (ms)", wo.Latency.P50, wi.Latency.P50, "%.1f", true)
	row("latency p99 (ms)", wo.Latency.P99, wi.Latency.P99, "%.1f", true)
	row(fmt.Sprintf("billable actions/delivery (%d sampled)", wi.Actions.Sampled), wo.Actions.PerDelivery, wi.Actions.PerDelivery, "%.2f", true)
	for _, c := range billable.Categories {
		if wo.Actions.Breakdown[c] != 0 || wi.Actions.Breakdown[c] != 0 {
			row("  "+string(c), wo.Actions.Breakdown[c], wi.Actions.Breakdown[c], "%.2f", false)
		}
	}
	for _, group := range []string{"temporal", "serve", "workers", "bench"} {
		row("CPU-s/1000 deliveries, "+group, cpuGroup(wo, group), cpuGroup(wi, group), "%.2f", true)
	}
	row("peak RSS, workers (sum, MB)", float64(wo.WorkersPeakRSSSum)/(1<<20), float64(wi.WorkersPeakRSSSum)/(1<<20), "%.1f", true)
	row("duplicate deliveries", float64(wo.Duplicates), float64(wi.Duplicates), "%.0f", false)
	c := lg.Records
	fmt.Fprintf(w, "log after the run (%s): %d delivery records (%d delivered), %d attempt records (%d first-try 200) over %d deliveries;\n",
		lg.Where, c.Deliveries, c.Delivered, c.Attempts, c.FirstTry200, c.DistinctDeliveries)
	fmt.Fprintf(w, "  %d deliveries made (warm-up included): %d missing, %d extra; writes missed %d, written by the reconciler %d\n",
		c.Expected, c.Missing, c.Extra, c.MissedWrites, c.ReconciledWrites)
}

// cpuGroup sums the CPU per delivery of a phase's processes in one group.
func cpuGroup(r phaseResult, group string) float64 {
	var sum float64
	for _, p := range r.Processes {
		name := p.Name
		switch {
		case strings.HasPrefix(name, "worker"), strings.HasPrefix(name, "lean-worker"):
			name = "workers"
		case strings.HasPrefix(name, "bench"):
			name = "bench"
		case strings.HasPrefix(name, "temporal"): // the dev server, or a cluster's four processes
			name = "temporal"
		case strings.HasPrefix(name, "serve"): // serve-log: the with-log phase's
			name = "serve"
		}
		if name == group {
			sum += p.CPUMsPerDelivery
		}
	}
	return sum
}

// printPark prints the park run's figures.
func printPark(w io.Writer, r *parkReport) {
	fmt.Fprintf(w, "\n== results: %d deliveries parked (endpoint answers 503, retry_schedule [%s]), %d worker(s), %d concurrent submitters\n",
		r.Events, r.RetrySchedule, r.Config.Workers, r.Config.Concurrency)
	printMachine(w, r.header)
	m, tc := r.Workers, r.ServerHoldsTimers
	fmt.Fprintf(w, "\naccepted in %.1fs (%.1f/s, %d refused with 503 and retried); all parked after %.1fs; %d attempts\n",
		r.AcceptSeconds, r.AcceptedPerSecond, r.Refused503, r.ParkSeconds, r.Attempts)
	fmt.Fprintf(w, "worker RSS (VmRSS summed over %d worker(s)):\n", r.Config.Workers)
	fmt.Fprintf(w, "  idle before submitting   %10s\n", mb(m.Idle))
	fmt.Fprintf(w, "  peak (1 s samples)       %10s   (VmHWM %s)\n", mb(m.Peak), mb(m.PeakHWM))
	fmt.Fprintf(w, "  when all had parked      %10s\n", mb(m.AtPark))
	fmt.Fprintf(w, "  %-24s %10s   drift %+.1f MB (%+.1f%%)\n", r.Config.Hold+" later", mb(m.AtEnd), float64(m.Drift)/(1<<20), m.DriftPercent)
	fmt.Fprintf(w, "starter serve peak RSS (VmHWM) %s\n", mb(m.ServePeakHWM))
	fmt.Fprintf(w, "billable actions per parked delivery so far: %.2f (%d sampled)", r.Actions.PerDelivery, r.Actions.Sampled)
	for _, c := range billable.Categories {
		if v := r.Actions.Breakdown[c]; v != 0 {
			fmt.Fprintf(w, "; %s %.2f", c, v)
		}
	}
	fmt.Fprintf(w, "\nserver holds the timers: with serve and every worker stopped, %d of %d still Running; %d of %d described are Running with no\n",
		tc.RunningAfterStop, tc.RunningBefore, tc.WithPendingTimer, tc.Described)
	fmt.Fprintf(w, "  activity or workflow task pending and an unfired timer (fires in %.0f–%.0f s); a fresh worker over %.0f s: RSS peak %s, end %s,\n",
		tc.TimerFiresInMin, tc.TimerFiresInMax, tc.FreshWatchSeconds, mb(tc.FreshPeakRSS), mb(tc.FreshEndRSS))
	fmt.Fprintf(w, "  %d attempts, %d still parked\n", tc.AttemptsDuring, tc.ParkedAfter)
}
