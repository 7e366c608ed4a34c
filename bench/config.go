package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// Modes.
const (
	modeThroughput = "throughput"
	modePark       = "park"
	modeDrain      = "drain"
	modeAbsorb     = "absorb"
)

// --log-db values.
const (
	logNone     = "none"
	logSQLite   = "sqlite"
	logPostgres = "postgres"
)

// modes, in the order --help names them.
var modes = []string{modeThroughput, modePark, modeDrain, modeAbsorb}

// config is the parsed command line.
type config struct {
	mode            string
	events          int
	concurrency     int
	rate            float64 // events per second; 0: unlimited
	workers         int
	batch           int
	sample          int
	warmup          int
	baseline        bool
	baselineWorkers int
	workerArgs      []string
	serveArgs       []string
	serverArgs      []string
	baselineArgs    []string
	temporalAddress string // empty: start a dev server from temporalCLI
	// serverMode is how the run gets its server: an existing cluster with
	// --temporal-address, else a dev server from temporalCLI, unless
	// HOOKRELAY_TEST_SERVER forces another (docker; postgres, a cluster on
	// PostgreSQL the bench starts: make bench BENCH_SERVER=postgres).
	serverMode  testenv.Mode
	namespace   string
	temporalCLI string
	out         string
	timeout     time.Duration
	// profile is a directory for CPU profiles of the measured phases ("": none),
	// each profileDuration long.
	profile         string
	profileDuration time.Duration
	// park mode
	retrySchedule string
	hold          time.Duration
	freshWatch    time.Duration
	timerSample   int
	// drain and absorb modes (drain.go, absorb.go)
	openAfter   int
	drainRate   float64
	absorbRates []float64 // failing deliveries per second, one step each
	signalRates []float64 // failure reports per second sent straight to a health workflow
	absorbStep  time.Duration
	// endpointsDB registers the throughput mode's endpoint in a fresh
	// registry database of this kind (sqlite, postgres) instead of the YAML file.
	endpointsDB string
	// logDB is where the throughput mode's second hookrelay phase keeps its
	// delivery log: a fresh database of this kind (sqlite, postgres); none:
	// one hookrelay phase, no log.
	logDB string
	// logFirst runs the phase with the log before the one without.
	logFirst bool
	// compare is a git revision of this repository (as given) whose worker
	// and starter the throughput mode measures beside the working tree's,
	// compareCommit the commit it names; compareRounds is how many pairs of
	// phases, each round in the other order from the one before.
	compare       string
	compareCommit string
	compareRounds int

	root string // the repository
}

var usagef = cmdline.Usagef

// parseFlags reads args; root is the repository, against which default paths resolve.
func parseFlags(args []string, root string) (config, error) {
	c := config{root: root}
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVar(&c.mode, "mode", modeThroughput, "throughput: hookrelay through starter serve against a lean one-activity workflow; park: deliveries parked in backoff, worker memory and who holds the timers; drain: an outage parks the deliveries behind an open circuit, then the drain; absorb: the failure reports one endpoint's health workflow takes")
	fs.IntVar(&c.events, "events", 0, "events to submit, one delivery each (default 2000; 10000 with --mode park)")
	fs.IntVar(&c.concurrency, "concurrency", 50, "concurrent submitters")
	fs.Float64Var(&c.rate, "rate", 0, "cap submissions at this many events per second (0: as fast as the submitters go); latency at a rate the system sustains, rather than behind a backlog")
	fs.IntVar(&c.workers, "workers", 1, "hookrelay worker processes (0 if --serve-args makes serve host one)")
	fs.IntVar(&c.batch, "batch", 1, "events per POST /v1/events (1 to 100)")
	fs.IntVar(&c.sample, "sample", 50, "histories to count billable actions from, per workflow kind")
	fs.IntVar(&c.warmup, "warmup", 20, "events delivered before each measured phase, not measured")
	fs.BoolVar(&c.baseline, "baseline", true, "also measure the lean baseline (--baseline=false skips it)")
	fs.IntVar(&c.baselineWorkers, "baseline-workers", 1, "lean baseline worker processes")
	workerArgs := fs.String("worker-args", "", "extra arguments for every worker process, split on whitespace, e.g. \"--pollers 8\"")
	serveArgs := fs.String("serve-args", "", "extra arguments for starter serve, split on whitespace")
	serverArgs := fs.String("server-args", "", "extra arguments for `temporal server start-dev`, e.g. \"--dynamic-config-value K=V\"")
	baselineArgs := fs.String("baseline-args", "", "extra arguments for the lean baseline workers: --pollers N, --max-concurrent-activities N")
	fs.StringVar(&c.temporalAddress, "temporal-address", os.Getenv("TEMPORAL_ADDRESS"), "use this Temporal frontend instead of starting a dev server (env TEMPORAL_ADDRESS)")
	fs.StringVar(&c.namespace, "namespace", "default", "Temporal namespace")
	fs.StringVar(&c.temporalCLI, "temporal-cli", filepath.Join(root, "bin", "temporal"), "the Temporal CLI that runs the dev server (make tools builds it)")
	fs.StringVar(&c.out, "out", "", "write the figures as JSON here (default .temporal/bench/results.json; park.json with --mode park)")
	fs.DurationVar(&c.timeout, "timeout", 0, "give up on a phase after this long (default 15m; 60m with --mode park)")
	fs.StringVar(&c.profile, "profile", "", "throughput: write CPU profiles of worker, serve, lean worker (and a PostgreSQL cluster's services) taken during each measured phase to this directory, and print their top entries")
	fs.DurationVar(&c.profileDuration, "profile-duration", 20*time.Second, "with --profile: how long each CPU profile runs, from the start of the measured phase")
	fs.StringVar(&c.retrySchedule, "retry-schedule", "1h", "park: the endpoint's retry_schedule, comma-separated")
	fs.DurationVar(&c.hold, "hold", 30*time.Second, "park: keep sampling worker memory this long after the last delivery parked")
	fs.DurationVar(&c.freshWatch, "fresh-watch", 15*time.Second, "park: how long to watch a fresh worker's memory once the parked workers stopped")
	fs.IntVar(&c.timerSample, "timer-sample", 20, "park: parked workflows to describe once the workers stopped")
	fs.IntVar(&c.openAfter, "open-after", 5, "drain: the endpoint's circuit.open_after")
	fs.Float64Var(&c.drainRate, "drain-rate", 100, "drain: the endpoint's circuit.drain_per_second")
	absorbRates := fs.String("absorb-rates", "25,50,100,200", "absorb: failing deliveries per second submitted, one --absorb-step each, comma-separated")
	signalRates := fs.String("signal-rates", "100,200,400,800,1600", "absorb: failure reports per second the bench sends straight to one health workflow, one --absorb-step each (empty: none)")
	fs.DurationVar(&c.absorbStep, "absorb-step", 15*time.Second, "absorb: how long each rate is held")
	fs.StringVar(&c.endpointsDB, "endpoints-db", "", "throughput: register the endpoint in a fresh endpoint registry, sqlite (a file) or postgres (a database on HOOKRELAY_TEST_POSTGRES, default 127.0.0.1:5432; dropped at the end), instead of the YAML endpoints file")
	fs.StringVar(&c.logDB, "log-db", logPostgres, "throughput: measure hookrelay twice in the run, without a delivery log and then with one in a fresh database, sqlite (a file) or postgres (a database on HOOKRELAY_TEST_POSTGRES, default 127.0.0.1:5432; dropped at the end); none: once, without (the default with --endpoints-db or another mode)")
	fs.BoolVar(&c.logFirst, "log-first", false, "throughput: with --log-db, measure the phase with the delivery log first, then the one without (the other order, to see what the order itself costs)")
	fs.StringVar(&c.compare, "compare", "", "throughput: also build worker and starter at this git revision (a commit, tag or branch of this repository) and measure it beside the working tree in alternating phases on the same server, without the baseline and the delivery log unless asked")
	fs.IntVar(&c.compareRounds, "compare-rounds", 2, "with --compare: rounds of two phases, the working tree's and the revision's, each round in the other order from the one before (2: ABBA)")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: go run ./bench [flags]   (make bench, make bench-park, make bench-drain, make bench-absorb)\n\n%s", fs.FlagUsages())
	}
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return c, err
	}
	var err error
	for _, f := range []struct {
		name string
		raw  string
		dst  *[]string
	}{{"worker-args", *workerArgs, &c.workerArgs}, {"serve-args", *serveArgs, &c.serveArgs}, {"server-args", *serverArgs, &c.serverArgs}, {"baseline-args", *baselineArgs, &c.baselineArgs}} {
		if *f.dst, err = splitArgs(f.name, f.raw); err != nil {
			return c, err
		}
	}
	for _, f := range []struct {
		name string
		raw  string
		dst  *[]float64
	}{{"absorb-rates", *absorbRates, &c.absorbRates}, {"signal-rates", *signalRates, &c.signalRates}} {
		if *f.dst, err = parseRates(f.name, f.raw); err != nil {
			return c, err
		}
	}
	if !fs.Changed("events") {
		c.events = map[string]int{modeThroughput: 2000, modePark: 10000, modeDrain: 10000, modeAbsorb: 1}[c.mode]
	}
	if !fs.Changed("log-db") && (c.mode != modeThroughput || c.endpointsDB != "" || c.compare != "") {
		c.logDB = logNone
	}
	if c.compare != "" && !fs.Changed("baseline") {
		c.baseline = false
	}
	if !fs.Changed("timeout") {
		c.timeout = map[string]time.Duration{modeThroughput: 15 * time.Minute, modePark: 60 * time.Minute, modeDrain: 30 * time.Minute, modeAbsorb: 15 * time.Minute}[c.mode]
	}
	if c.profile != "" {
		if c.profile, err = filepath.Abs(c.profile); err != nil {
			return c, usagef("--profile: %v", err)
		}
		// Every process the phases start serves pprof on a loopback port of its own.
		c.workerArgs = append(c.workerArgs, testenv.PProfArgs...)
		c.serveArgs = append(c.serveArgs, testenv.PProfArgs...)
		c.baselineArgs = append(c.baselineArgs, testenv.PProfArgs...)
	}
	if c.out == "" {
		c.out = filepath.Join(root, ".temporal", "bench", map[string]string{modeThroughput: "results.json", modePark: "park.json", modeDrain: "drain.json", modeAbsorb: "absorb.json"}[c.mode])
	}
	// Never docker unless forced: the figures include the dev server's CPU
	// and memory, read from /proc.
	if c.serverMode, err = testenv.ChooseMode(os.Getenv(testenv.EnvServer), c.temporalAddress, nil); err != nil {
		return c, cmdline.Usage(err)
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	if c.compare != "" {
		if c.compareCommit, err = resolveRevision(root, c.compare); err != nil {
			return c, err
		}
	}
	return c, nil
}

// validate names the first unusable flag.
func (c config) validate() error {
	switch {
	case !slices.Contains(modes, c.mode):
		return usagef("--mode: %q is not one of %s", c.mode, strings.Join(modes, ", "))
	case c.events < 1:
		return usagef("--events: must be at least 1, got %d", c.events)
	case c.concurrency < 1 || c.concurrency > 1000:
		return usagef("--concurrency: must be 1 to 1000, got %d", c.concurrency)
	case c.workers < 0 || c.workers > 32:
		return usagef("--workers: must be 0 to 32, got %d", c.workers)
	case c.workers == 0 && !slices.ContainsFunc(c.serveArgs, func(a string) bool { return a == "--worker" || strings.HasPrefix(a, "--worker=") }):
		return usagef("--workers: 0 leaves nothing to run deliveries unless --serve-args makes serve host a worker")
	case c.batch < 1 || c.batch > 100:
		return usagef("--batch: must be 1 to 100 (the API's limit), got %d", c.batch)
	case c.sample < 0:
		return usagef("--sample: must not be negative, got %d", c.sample)
	case c.warmup < 0:
		return usagef("--warmup: must not be negative, got %d", c.warmup)
	case c.baselineWorkers < 1 || c.baselineWorkers > 32:
		return usagef("--baseline-workers: must be 1 to 32, got %d", c.baselineWorkers)
	case c.profileDuration < time.Second || c.profileDuration > 5*time.Minute:
		return usagef("--profile-duration: must be 1s to 5m, got %s", c.profileDuration)
	case c.profile != "" && c.mode != modeThroughput:
		return usagef("--profile: profiles the throughput mode's measured phases only")
	case c.timeout <= 0:
		return usagef("--timeout: must be positive, got %s", c.timeout)
	case c.rate < 0:
		return usagef("--rate: must not be negative, got %g", c.rate)
	case c.hold < 0:
		return usagef("--hold: must not be negative, got %s", c.hold)
	case c.freshWatch < 0:
		return usagef("--fresh-watch: must not be negative, got %s", c.freshWatch)
	case c.timerSample < 0:
		return usagef("--timer-sample: must not be negative, got %d", c.timerSample)
	case strings.TrimSpace(c.namespace) == "":
		return usagef("--namespace: must not be empty")
	case c.openAfter < 1 || c.openAfter > 1000:
		return usagef("--open-after: must be 1 to 1000 (circuit.open_after), got %d", c.openAfter)
	case c.drainRate < 0.1 || c.drainRate > 10000:
		return usagef("--drain-rate: must be 0.1 to 10000 (circuit.drain_per_second), got %g", c.drainRate)
	case c.absorbStep < time.Second:
		return usagef("--absorb-step: must be at least 1s, got %s", c.absorbStep)
	case c.mode == modeAbsorb && len(c.absorbRates) == 0 && len(c.signalRates) == 0:
		return usagef("--absorb-rates: with --signal-rates empty too, absorb mode has nothing to measure")
	case c.endpointsDB != "" && c.endpointsDB != "sqlite" && c.endpointsDB != "postgres":
		return usagef("--endpoints-db: %q is neither sqlite nor postgres", c.endpointsDB)
	case c.logDB != logNone && c.logDB != logSQLite && c.logDB != logPostgres:
		return usagef("--log-db: %q is not none, sqlite or postgres", c.logDB)
	case c.logDB != logNone && c.mode != modeThroughput:
		return usagef("--log-db: only the throughput mode measures with and without the delivery log")
	case c.logFirst && c.logDB == logNone:
		return usagef("--log-first: needs a run with the delivery log (--log-db sqlite or postgres)")
	case c.logDB != logNone && c.endpointsDB != "":
		return usagef("--log-db: with --endpoints-db the workers keep their log in the registry's database in every phase, so there is no run without one: give --log-db none")
	case c.endpointsDB != "" && c.mode != modeThroughput:
		return usagef("--endpoints-db: only the throughput mode registers its endpoint in the registry")
	}
	if err := c.validateCompare(); err != nil {
		return err
	}
	if _, err := parseSchedule(c.retrySchedule); err != nil {
		return usagef("--retry-schedule: %v", err)
	}
	if c.serverMode == testenv.ModeDevServer {
		if _, err := os.Stat(c.temporalCLI); err != nil {
			return usagef("--temporal-cli: %s: %v (run `make tools`, or set --temporal-address)", c.temporalCLI, err)
		}
	}
	return nil
}

// splitArgs splits a pass-through flag's value on whitespace. Quoting is
// refused rather than half-supported.
func splitArgs(flag, raw string) ([]string, error) {
	if strings.ContainsAny(raw, `"'\`) {
		return nil, usagef("--%s: quotes and backslashes are not supported; arguments are split on whitespace", flag)
	}
	return strings.Fields(raw), nil
}

// parseRates reads "25,50,100" into rates per second; empty is none.
func parseRates(flag, raw string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" && strings.TrimSpace(raw) == "" {
			break
		}
		r, err := strconv.ParseFloat(part, 64)
		if err != nil || r <= 0 || math.IsInf(r, 0) {
			return nil, usagef("--%s: %q is not a comma-separated list of positive rates such as 25,50,100", flag, raw)
		}
		out = append(out, r)
	}
	return out, nil
}

// parseSchedule reads "1h" or "5s,1h" into durations, as the endpoints file would hold them.
func parseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("%q is not a comma-separated list of durations such as 1h or 5s,1h", s)
		}
		if d <= 0 {
			return nil, fmt.Errorf("%q: every delay must be positive", s)
		}
		out = append(out, d)
	}
	return out, nil
}
