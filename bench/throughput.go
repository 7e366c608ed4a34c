package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	historypb "go.temporal.io/api/history/v1"

	"github.com/hookrelay/hookrelay/internal/billable"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// Endpoint ids: the workflow ID prefixes on the receiver.
const (
	benchEndpoint = "bench"
	leanPrefix    = "lean"
	parkEndpoint  = "parked"
)

// procFigures is one process's cost over a measured phase.
type procFigures struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// PeakRSS is VmHWM at the end of the phase: the most it ever held resident.
	PeakRSS          int64   `json:"peak_rss_bytes"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUMsPerDelivery float64 `json:"cpu_ms_per_delivery"`
}

// phaseResult is one workflow kind's figures.
type phaseResult struct {
	Name       string `json:"name"`
	Deliveries int    `json:"deliveries"`
	// AcceptSeconds runs from the first request to the last accepted one.
	AcceptSeconds     float64 `json:"accept_seconds"`
	AcceptedPerSecond float64 `json:"accepted_per_second"`
	// Seconds runs from the first request to the last verified 2xx.
	Seconds             float64                `json:"seconds"`
	DeliveriesPerSecond float64                `json:"deliveries_per_second"`
	Latency             testenv.Latency        `json:"latency"`
	Refused503          int64                  `json:"refused_503"`
	Duplicates          int                    `json:"duplicate_deliveries"`
	Actions             billable.Summary       `json:"actions"`
	History             testenv.HistoryFigures `json:"history"`
	// Stages split the latency of the sampled deliveries.
	Stages testenv.Stages `json:"latency_stages"`
	// Worker memory: the sum and the largest of the worker processes' VmHWM.
	WorkersPeakRSSSum int64         `json:"workers_peak_rss_sum_bytes"`
	WorkersPeakRSSMax int64         `json:"workers_peak_rss_max_bytes"`
	ServePeakRSS      int64         `json:"serve_peak_rss_bytes,omitempty"`
	Processes         []procFigures `json:"processes"`
	// Profiles are the CPU profiles taken during the phase (--profile).
	Profiles []testenv.Profile `json:"profiles,omitempty"`
}

// ratios compare hookrelay with the baseline: hookrelay's figure divided by the baseline's.
type ratios struct {
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50"`
	P95        float64 `json:"p95"`
	P99        float64 `json:"p99"`
	Actions    float64 `json:"actions"`
}

type throughputReport struct {
	header
	Hookrelay phaseResult `json:"hookrelay"`
	// HookrelayWithLog is hookrelay measured again in the same run, its
	// workers keeping the delivery log (--log-db); DeliveryLog compares.
	HookrelayWithLog *phaseResult     `json:"hookrelay_with_log,omitempty"`
	DeliveryLog      *deliveryLogCost `json:"delivery_log,omitempty"`
	Baseline         *phaseResult     `json:"baseline,omitempty"`
	Ratio            *ratios          `json:"ratio,omitempty"`
	// Compare is the working tree against another revision (--compare);
	// Hookrelay is then its first round's working-tree phase.
	Compare *revisionCompare `json:"compare,omitempty"`
}

// runThroughput measures hookrelay (events through starter serve to worker
// processes), with --log-db again keeping a delivery log (before it with
// --log-first), and then, on the same server and receiver, the lean baseline.
func runThroughput(ctx context.Context, h *harness, rep *throughputReport) error {
	cfg := h.cfg
	if cfg.logDB != logNone {
		h.endpointAccount = benchAccount // the log records deliveries of events with an account
	}
	file, err := h.writeEndpoints("endpoints.yaml", benchEndpoint, []time.Duration{5 * time.Second, time.Minute}, "")
	if err != nil {
		return err
	}
	endpoints, endpointID, account := h.endpointsOf(file, benchEndpoint) // --endpoints-db: the registry's
	if h.endpointAccount != "" {
		account = h.endpointAccount
	}
	events, err := makeEvents(account, cfg.warmup+cfg.events)
	if err != nil {
		return err
	}
	hookPhase := hookrelayPhase{name: "hookrelay", taskQueue: "bench-" + h.runID, endpoints: endpoints, endpointID: endpointID, events: events}
	measureHookrelay := runHookrelay
	if cfg.compareCommit != "" {
		measureHookrelay = runCompare
	}
	if err := measureHookrelay(ctx, h, rep, hookPhase, account); err != nil {
		return err
	}
	if !cfg.baseline {
		return nil
	}
	warm, measured := events[:cfg.warmup], events[cfg.warmup:]

	// the lean baseline
	leanQueue := "bench-lean-" + h.runID
	fmt.Fprintf(h.out, "== lean baseline: %d worker(s), client.ExecuteWorkflow, task queue %s\n", cfg.baselineWorkers, leanQueue)
	var leanWorkers []*testenv.Process
	for i := range cfg.baselineWorkers {
		w, err := h.startLeanWorker(ctx, fmt.Sprintf("lean-worker-%d", i+1), leanQueue)
		if err != nil {
			return err
		}
		leanWorkers = append(leanWorkers, w)
	}
	leanID := func(ev testenv.Event) string { return workflows.WorkflowID(leanPrefix, ev.ID) }
	direct := func(evs []testenv.Event) sendFunc {
		return func(ctx context.Context, idx []int) error {
			return startLean(ctx, h.client, leanQueue, leanID(evs[idx[0]]), evs[idx[0]])
		}
	}
	if err := h.warmUp(ctx, "baseline", warm, leanID, 1, direct(warm)); err != nil {
		return err
	}
	noRefusals := func() int64 { return 0 }
	profiled := h.startProfiles(ctx, "baseline", testenv.ProfileTargets(h.server, leanWorkers))
	base, err := h.measure(ctx, "baseline", ids(measured, leanID), 1, direct(measured), noRefusals, h.members(leanWorkers))
	base.Profiles = profiled()
	if err != nil {
		return err
	}
	h.stopAll(leanWorkers)
	rep.Baseline = &base
	rep.Ratio = &ratios{
		Throughput: ratio(rep.Hookrelay.DeliveriesPerSecond, base.DeliveriesPerSecond),
		P50:        ratio(rep.Hookrelay.Latency.P50, base.Latency.P50),
		P95:        ratio(rep.Hookrelay.Latency.P95, base.Latency.P95),
		P99:        ratio(rep.Hookrelay.Latency.P99, base.Latency.P99),
		Actions:    ratio(rep.Hookrelay.Actions.PerDelivery, base.Actions.PerDelivery),
	}
	return nil
}

// runHookrelay measures hookrelay without the delivery log and, with
// --log-db, with it, in the order --log-first says, and compares them.
func runHookrelay(ctx context.Context, h *harness, rep *throughputReport, without hookrelayPhase, account string) error {
	var (
		records logCount
		err     error
	)
	withLog := func() error {
		records, err = runWithLog(ctx, h, rep, without, account)
		return err
	}
	if h.cfg.logDB != logNone && h.cfg.logFirst {
		if err := withLog(); err != nil {
			return err
		}
	}
	if rep.Hookrelay, err = without.run(ctx, h); err != nil {
		return err
	}
	if h.cfg.logDB != logNone && !h.cfg.logFirst {
		if err := withLog(); err != nil {
			return err
		}
	}
	if h.cfg.logDB != logNone {
		rep.DeliveryLog = compareLog(h.cfg, h.log.where, rep.Hookrelay, *rep.HookrelayWithLog, records)
	}
	return nil
}

func ids(evs []testenv.Event, id func(testenv.Event) string) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = id(ev)
	}
	return out
}

// warmUp delivers a few events first, unmeasured: connections, task queues
// and caches are then as they are in steady state.
func (h *harness) warmUp(ctx context.Context, name string, evs []testenv.Event, id func(testenv.Event) string, batch int, send sendFunc) error {
	if len(evs) == 0 {
		return nil
	}
	fmt.Fprintf(h.out, "   %s: warming up with %d events\n", name, len(evs))
	_, _, _, err := h.deliver(ctx, name+" warm-up", ids(evs, id), batch, 0, send)
	return err
}

// stopAll stops ps, reporting (not failing on) an unclean exit.
func (h *harness) stopAll(ps []*testenv.Process) {
	for _, p := range ps {
		if err := p.Stop(30 * time.Second); err != nil {
			fmt.Fprintf(h.out, "   warning: %v\n", err)
		}
	}
}

// deliver submits every event and waits until the receiver has verified a
// 2xx for each of ids. It returns when each event's first request started,
// when each was delivered, and when the last was accepted.
func (h *harness) deliver(ctx context.Context, name string, ids []string, batch int, rate float64, send sendFunc) (started, delivered []time.Time, lastAccepted time.Time, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started = make([]time.Time, len(ids))
	var accepted atomic.Int64
	submitted := make(chan error, 1)
	begin := time.Now()
	go func() {
		submitted <- submitAll(ctx, len(ids), batch, h.cfg.concurrency, rate, started, &accepted, send)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastProgress := begin
	for {
		select {
		case err := <-submitted:
			if err != nil {
				return nil, nil, time.Time{}, fmt.Errorf("%s: submit: %w", name, err)
			}
			lastAccepted, submitted = time.Now(), nil
		case <-tick.C:
		case <-ctx.Done():
			return nil, nil, time.Time{}, ctx.Err()
		}
		at, n := h.rc.Accepted(ids)
		if n == len(ids) && submitted == nil {
			return started, at, lastAccepted, nil
		}
		if time.Since(begin) > h.cfg.timeout {
			return nil, nil, time.Time{}, fmt.Errorf("%s: %d of %d delivered after --timeout %s: %w", name, n, len(ids), h.cfg.timeout, errIncomplete)
		}
		if time.Since(lastProgress) >= 5*time.Second {
			lastProgress = time.Now()
			fmt.Fprintf(h.out, "   %s: %5.0fs  accepted %d/%d, delivered %d\n", name, time.Since(begin).Seconds(), accepted.Load(), len(ids), n)
		}
	}
}

// member is a process whose CPU and memory a phase reports.
type member struct {
	name string
	pid  int
}

// members are the server's processes (when the bench runs it), ps, and
// this process (the receiver and the submitters).
func (h *harness) members(ps []*testenv.Process) []member {
	out := append([]member(nil), h.serverProcs...)
	for _, p := range ps {
		out = append(out, member{p.Name(), p.PID()})
	}
	return append(out, member{"bench (receiver, submitters)", os.Getpid()})
}

// measure delivers ids and computes the phase's figures; ms are the
// processes whose memory and CPU it reports.
func (h *harness) measure(ctx context.Context, name string, ids []string, batch int, send sendFunc, refused func() int64, ms []member) (phaseResult, error) {
	fmt.Fprintf(h.out, "   %s: %d events, %d concurrent submitters%s\n", name, len(ids), h.cfg.concurrency, rateNote(h.cfg.rate))
	cpuBefore := cpuOf(ms)
	dupBefore := h.rc.Stats().Duplicates
	refusedBefore := refused()
	started, delivered, lastAccepted, err := h.deliver(ctx, name, ids, batch, h.cfg.rate, send)
	if err != nil {
		return phaseResult{}, err
	}
	cpuAfter := cpuOf(ms)
	dupAfter := h.rc.Stats().Duplicates

	first, last := started[0], delivered[0]
	lat := make([]time.Duration, len(ids))
	for i := range ids {
		lat[i] = delivered[i].Sub(started[i])
		if started[i].Before(first) {
			first = started[i]
		}
		if delivered[i].After(last) {
			last = delivered[i]
		}
	}
	r := phaseResult{
		Name:          name,
		Deliveries:    len(ids),
		AcceptSeconds: round(lastAccepted.Sub(first).Seconds(), 3),
		Seconds:       round(last.Sub(first).Seconds(), 3),
		Latency:       testenv.Summarize(lat),
		Refused503:    refused() - refusedBefore,
		Duplicates:    dupAfter - dupBefore,
	}
	r.AcceptedPerSecond = round(float64(len(ids))/lastAccepted.Sub(first).Seconds(), 1)
	r.DeliveriesPerSecond = round(float64(len(ids))/last.Sub(first).Seconds(), 1)

	fmt.Fprintf(h.out, "   %s: delivered all %d in %.1fs; counting actions in %d histories\n", name, len(ids), r.Seconds, min(h.cfg.sample, len(ids)))
	sample, err := h.sampleHistories(ctx, ids, true)
	if err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	r.Actions, r.History = sample.actions, testenv.SummarizeHistories(sample.histories)
	var sampleStarted, sampleDelivered []time.Time
	for _, i := range sample.indexes {
		sampleStarted, sampleDelivered = append(sampleStarted, started[i]), append(sampleDelivered, delivered[i])
	}
	r.Stages = testenv.SplitLatency(sample.histories, sampleStarted, sampleDelivered)
	for _, m := range ms {
		mem, err := testenv.ReadMemory(m.pid)
		if err != nil {
			return r, err
		}
		cpu := round(cpuAfter[m.pid]-cpuBefore[m.pid], 2)
		r.Processes = append(r.Processes, procFigures{Name: m.name, PID: m.pid, PeakRSS: mem.Peak, CPUSeconds: cpu,
			CPUMsPerDelivery: round(cpu*1000/float64(len(ids)), 3)})
		switch {
		case strings.HasPrefix(m.name, "worker") || strings.HasPrefix(m.name, "lean-worker"):
			r.WorkersPeakRSSSum += mem.Peak
			r.WorkersPeakRSSMax = max(r.WorkersPeakRSSMax, mem.Peak)
		case strings.HasPrefix(m.name, "serve"):
			r.ServePeakRSS = mem.Peak
		}
	}
	return r, nil
}

// cpuOf reads the CPU seconds of ms, by pid. A process that has exited
// reads as missing (zero).
func cpuOf(ms []member) map[int]float64 {
	out := map[int]float64{}
	for _, m := range ms {
		if s, err := testenv.CPUSeconds(m.pid); err == nil {
			out[m.pid] = s
		}
	}
	return out
}

// sampleActions counts billable actions in the histories of a sample of
// ids, spread over the run; waitClosed first waits for each to close.
func (h *harness) sampleActions(ctx context.Context, ids []string, waitClosed bool) (billable.Summary, error) {
	s, err := h.sampleHistories(ctx, ids, waitClosed)
	return s.actions, err
}

// historySample is the histories of a sample of a run's deliveries.
type historySample struct {
	indexes   []int // into the run's ids
	histories [][]*historypb.HistoryEvent
	actions   billable.Summary
}

// sampleHistories reads the histories of a sample of ids, spread over the
// run, and counts their billable actions; waitClosed first waits for each
// to close (closed, failed or canceled alike).
func (h *harness) sampleHistories(ctx context.Context, ids []string, waitClosed bool) (historySample, error) {
	var (
		s       historySample
		actions []billable.Actions
	)
	for _, i := range testenv.Spread(len(ids), h.cfg.sample) {
		if waitClosed {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			err := h.client.GetWorkflow(wctx, ids[i], "").Get(wctx, nil)
			cancel()
			if err != nil {
				return historySample{}, fmt.Errorf("workflow %s did not complete: %w", ids[i], err)
			}
		}
		events, err := testenv.History(ctx, h.client, ids[i], "")
		if err != nil {
			return historySample{}, err
		}
		actions = append(actions, billable.Count(events))
		s.indexes, s.histories = append(s.indexes, i), append(s.histories, events)
	}
	s.actions = billable.Summarize(actions)
	return s, nil
}

func rateNote(rate float64) string {
	if rate == 0 {
		return ""
	}
	return fmt.Sprintf(", at most %g events/s", rate)
}

// startProfiles starts a CPU profile of every target when --profile is set;
// the returned function waits for them.
func (h *harness) startProfiles(ctx context.Context, phase string, targets []testenv.ProfileTarget) func() []testenv.Profile {
	if h.cfg.profile == "" {
		return func() []testenv.Profile { return nil }
	}
	secs := int(h.cfg.profileDuration / time.Second)
	fmt.Fprintf(h.out, "   %s: profiling %d process(es) for %ds\n", phase, len(targets), secs)
	wait := testenv.StartCPUProfiles(ctx, targets, secs, h.cfg.profile, phase)
	return func() []testenv.Profile {
		ps := wait()
		for i := range ps {
			ps[i].File = rel(h.cfg.root, ps[i].File)
		}
		return ps
	}
}

// hookrelayPhase is one measured run of hookrelay: workers and serve on a
// task queue of their own, warm-up events then the measured ones.
type hookrelayPhase struct {
	name       string
	taskQueue  string
	endpoints  string
	endpointID string
	events     []testenv.Event // warm-up first
	// workerLogs are the workers' logs once run has stopped them.
	workerLogs []string
}

// run starts the phase's workers and serve, measures, and stops them.
func (p *hookrelayPhase) run(ctx context.Context, h *harness) (phaseResult, error) {
	cfg := h.cfg
	warm, measured := p.events[:cfg.warmup], p.events[cfg.warmup:]
	logNote := ""
	if h.logOn {
		logNote = ", delivery log in " + h.log.where
	}
	fmt.Fprintf(h.out, "== %s: %d worker(s), starter serve, task queue %s%s\n", p.name, cfg.workers, p.taskQueue, logNote)
	workers, serve, sc, err := h.startHookrelay(ctx, cfg.workers, p.taskQueue, p.endpoints, cfg.concurrency)
	if err != nil {
		return phaseResult{}, err
	}
	hookID := func(ev testenv.Event) string { return workflows.WorkflowID(p.endpointID, ev.ID) }
	viaServe := func(evs []testenv.Event) sendFunc {
		return func(ctx context.Context, idx []int) error { return postEvents(ctx, sc, evs, idx) }
	}
	if err := h.warmUp(ctx, p.name, warm, hookID, cfg.batch, viaServe(warm)); err != nil {
		return phaseResult{}, err
	}
	hookProcs := slices.Concat([]*testenv.Process{serve.Process}, workers)
	profiled := h.startProfiles(ctx, p.name, testenv.ProfileTargets(h.server, hookProcs))
	r, err := h.measure(ctx, p.name, ids(measured, hookID), cfg.batch, viaServe(measured), sc.Refused.Load, h.members(hookProcs))
	r.Profiles = profiled()
	if err != nil {
		return r, err
	}
	// The next phase runs alone: stop what served this one. A worker
	// stopping writes what its delivery log spool still holds.
	h.stopAll(hookProcs)
	for _, w := range workers {
		p.workerLogs = append(p.workerLogs, w.Log())
	}
	return r, nil
}

// deliveryLogCost compares hookrelay with the delivery log and without it,
// measured one after the other in one run.
type deliveryLogCost struct {
	Store string `json:"store"` // sqlite or postgres
	Where string `json:"database"`
	// Order is which phase ran first (--log-first).
	Order string `json:"order"`
	// ThroughputRatio is deliveries/s with the log over deliveries/s without.
	ThroughputRatio float64 `json:"throughput_ratio"`
	P50Ratio        float64 `json:"p50_ratio"`
	// ActionsWithout and ActionsWith are billable actions per first-try delivery.
	ActionsWithout float64 `json:"actions_per_delivery_without"`
	ActionsWith    float64 `json:"actions_per_delivery_with"`
	// WorkerCPUMsWithout and With are the workers' CPU ms per delivery.
	WorkerCPUMsWithout float64 `json:"worker_cpu_ms_per_delivery_without"`
	WorkerCPUMsWith    float64 `json:"worker_cpu_ms_per_delivery_with"`
	// Records is what the log held after the phase: one attempt per delivery.
	Records logCount `json:"records"`
}

// runWithLog measures hookrelay again, as without, but with the workers
// (and serve) keeping the delivery log in a fresh database, then counts
// the log's records.
func runWithLog(ctx context.Context, h *harness, rep *throughputReport, without hookrelayPhase, account string) (logCount, error) {
	var err error
	if h.log, err = newBenchLog(ctx, h.cfg.logDB, h.tmp); err != nil {
		return logCount{}, err
	}
	h.logOn = true
	defer func() { h.logOn = false }()
	p := without
	p.name, p.taskQueue = "hookrelay+log", "bench-log-"+h.runID
	if p.events, err = makeEventsFrom(account, len(without.events), 2_000_000); err != nil {
		return logCount{}, err
	}
	r, err := p.run(ctx, h)
	if err != nil {
		return logCount{}, err
	}
	rep.HookrelayWithLog = &r
	// The workers have stopped: what they wrote is in. The wait is for a
	// count that falls short, to show it is short for good.
	records, err := h.log.count(ctx, len(p.events), 10*time.Second)
	if err != nil {
		return records, err
	}
	records.MissedWrites, records.ReconciledWrites = logWriteFigures(p.workerLogs)
	return records, nil
}

// compareLog is the cost of the log: phase r with it against w without.
func compareLog(cfg config, where string, w, r phaseResult, records logCount) *deliveryLogCost {
	order := "without, then with"
	if cfg.logFirst {
		order = "with, then without"
	}
	return &deliveryLogCost{
		Store: cfg.logDB, Where: where, Order: order,
		ThroughputRatio:    ratio(r.DeliveriesPerSecond, w.DeliveriesPerSecond),
		P50Ratio:           ratio(r.Latency.P50, w.Latency.P50),
		ActionsWithout:     w.Actions.PerDelivery,
		ActionsWith:        r.Actions.PerDelivery,
		WorkerCPUMsWithout: cpuGroup(w, "workers"),
		WorkerCPUMsWith:    cpuGroup(r, "workers"),
		Records:            records,
	}
}
