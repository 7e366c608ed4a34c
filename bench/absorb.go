package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// absorbRetrySchedule: a delivery that failed in one step retries after the
// steps are over and the receiver healed, so each step's failures are its own.
var absorbRetrySchedule = []time.Duration{time.Minute, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}

// absorbCircuit opens as late as the bounds allow (open_after 1000), so
// every failure up to then is reported.
const absorbCircuit = "open_after: 1000, probe_every: [1h], drain_per_second: 100"

// absorbStep is one rate held for --absorb-step.
type absorbStep struct {
	Offered float64 `json:"offered_per_second"` // the rate asked for
	Seconds float64 `json:"seconds"`
	// Deliveries: events accepted, the 503s the receiver answered in the
	// step (each a failure report), and the reports workers logged as
	// failed. Direct: signal calls made, and those that failed.
	Submitted     int     `json:"submitted"`
	Failures      int     `json:"failures"` // deliveries: 503s answered; direct: signal calls that returned ok
	FailuresPerS  float64 `json:"failures_per_second"`
	ReportErrors  int     `json:"report_errors"`
	CallP50Ms     float64 `json:"signal_call_p50_ms,omitempty"` // direct: SignalWithStart's round trip
	CallP99Ms     float64 `json:"signal_call_p99_ms,omitempty"`
	CallMaxMs     float64 `json:"signal_call_max_ms,omitempty"`
	Recorded      int     `json:"signals_recorded"` // failure signals in the health workflow's history, by event time in the step
	RecordedPerS  float64 `json:"signals_recorded_per_second"`
	WorkflowTasks int     `json:"workflow_tasks"` // started in the step
	SignalsPerWFT float64 `json:"signals_per_workflow_task"`
	// Lag: from a signal's event time to the start of the workflow task
	// that read it.
	LagP50Ms float64 `json:"lag_p50_ms"`
	LagMaxMs float64 `json:"lag_max_ms"`
	// Workflow tasks' schedule-to-start and start-to-complete.
	WFTWaitP50Ms float64 `json:"wft_schedule_to_start_p50_ms"`
	WFTWaitMaxMs float64 `json:"wft_schedule_to_start_max_ms"`
	WFTRunP50Ms  float64 `json:"wft_start_to_close_p50_ms"`
	Runs         int     `json:"runs_started"` // continue-as-new runs begun in the step
	begin, end   time.Time
}

// absorbPhase is one health workflow under failure reports.
type absorbPhase struct {
	Endpoint   string        `json:"endpoint"`
	Steps      []absorbStep  `json:"steps"`
	Sent       int           `json:"reports_sent"`     // deliveries: 503s; direct: signal calls
	Errors     int           `json:"report_errors"`    // logged by workers / returned to the bench
	Recorded   int           `json:"signals_recorded"` // failure signals in history, every run
	CatchUp    float64       `json:"catch_up_seconds"` // last report sent to the last signal recorded
	Health     healthFigures `json:"health_workflow"`
	State      string        `json:"state_at_end"`
	Failures   int           `json:"consecutive_failures_at_end"`
	Delivered  int           `json:"delivered,omitempty"`
	Lost       int           `json:"lost,omitempty"`
	Duplicates int           `json:"duplicates,omitempty"`
	// AllDelivered: from the heal to the last delivery's 2xx.
	AllDelivered float64 `json:"heal_to_all_delivered_seconds,omitempty"`
}

type absorbReport struct {
	header
	Circuit       string      `json:"circuit"`
	RetrySchedule string      `json:"retry_schedule"`
	StepSeconds   float64     `json:"step_seconds"`
	Deliveries    absorbPhase `json:"deliveries"`
	Direct        absorbPhase `json:"direct"`
}

// runAbsorb measures the failure reports one endpoint's health workflow
// takes, its circuit held closed as long as the bounds allow (open_after 1000) so every failure is
// reported. Deliveries: events at each --absorb-rates rate for
// --absorb-step through serve to an endpoint answering 503, each failure a
// worker's signal-with-start; then the receiver heals and every delivery
// must arrive on its retry. Direct: the bench itself sends failure reports
// to another endpoint's health workflow at each --signal-rates rate, past
// what the deliveries can produce on this machine. Each step reads, from
// the health workflow's histories (every run), the signals it recorded
// per second, the workflow tasks that read them and how long they waited.
func runAbsorb(ctx context.Context, h *harness, rep *absorbReport) error {
	cfg := h.cfg
	taskQueue := "bench-absorb-" + h.runID
	suffix := strings.ReplaceAll(h.runID, "-", "")
	rep.Circuit, rep.RetrySchedule, rep.StepSeconds = absorbCircuit, scheduleText(absorbRetrySchedule), cfg.absorbStep.Seconds()
	rep.Deliveries.Endpoint, rep.Direct.Endpoint = "absorb-"+suffix, "absorb-direct-"+suffix
	endpoints, err := h.writeEndpoints("endpoints-absorb.yaml", rep.Deliveries.Endpoint, absorbRetrySchedule, absorbCircuit)
	if err != nil {
		return err
	}
	fmt.Fprintf(h.out, "== absorb: failure reports to one health workflow; circuit {%s}; %d worker(s), task queue %s\n", absorbCircuit, cfg.workers, taskQueue)
	workers, _, sc, err := h.startHookrelay(ctx, cfg.workers, taskQueue, endpoints, cfg.concurrency)
	if err != nil {
		return err
	}
	if len(cfg.absorbRates) > 0 {
		if err := h.absorbDeliveries(ctx, sc, workers, &rep.Deliveries); err != nil {
			return err
		}
	}
	if len(cfg.signalRates) > 0 {
		if err := h.absorbDirect(ctx, taskQueue, &rep.Direct); err != nil {
			return err
		}
	}
	return nil
}

// absorbDeliveries submits failing deliveries at each rate, then heals the
// receiver and waits for every one.
func (h *harness) absorbDeliveries(ctx context.Context, sc *testenv.EventsClient, workers []*testenv.Process, ph *absorbPhase) error {
	cfg := h.cfg
	total := 0
	for _, r := range cfg.absorbRates {
		total += int(r * cfg.absorbStep.Seconds())
	}
	events, err := makeEvents("", total)
	if err != nil {
		return err
	}
	wid := func(ev testenv.Event) string { return workflows.WorkflowID(ph.Endpoint, ev.ID) }
	wids := ids(events, wid)
	next := 0
	for _, r := range cfg.absorbRates {
		n := int(r * cfg.absorbStep.Seconds())
		evs := events[next : next+n]
		next += n
		fmt.Fprintf(h.out, "   absorb: %g failing deliveries/s for %s\n", r, cfg.absorbStep)
		st := absorbStep{Offered: r, begin: time.Now()}
		before := h.rc.Stats().ByStatus[http.StatusServiceUnavailable]
		var accepted atomic.Int64
		started := make([]time.Time, n)
		stepCtx, cancel := context.WithTimeout(ctx, cfg.absorbStep+30*time.Second)
		err := submitAll(stepCtx, n, 1, cfg.concurrency, r, started, &accepted,
			func(ctx context.Context, idx []int) error { return postEvents(ctx, sc, evs, idx) })
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			fmt.Fprintf(h.out, "   absorb: submitting at %g/s: %v (step cut short)\n", r, err)
		}
		// The step lasts --absorb-step, however long submitting took.
		if err := testenv.Sleep(ctx, time.Until(st.begin.Add(cfg.absorbStep))); err != nil {
			return err
		}
		st.end = time.Now()
		st.Seconds = round(st.end.Sub(st.begin).Seconds(), 2)
		st.Submitted = int(accepted.Load())
		st.Failures = h.rc.Stats().ByStatus[http.StatusServiceUnavailable] - before
		st.FailuresPerS = round(float64(st.Failures)/st.Seconds, 1)
		ph.Steps = append(ph.Steps, st)
	}
	lastSent := time.Now()
	// Failures still in flight land in the next second or two.
	if err := testenv.Sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	ph.Sent = h.rc.Stats().ByStatus[http.StatusServiceUnavailable]
	healAt := h.heal()
	fmt.Fprintf(h.out, "   absorb: %d failures answered; the receiver answers 200 now; waiting for every delivery's retry (first after %s)\n", ph.Sent, absorbRetrySchedule[0])
	// Every delivery must arrive: none lost or wedged behind the reports.
	submitted := 0
	for _, st := range ph.Steps {
		submitted += st.Submitted
	}
	deadline := healAt.Add(absorbRetrySchedule[0] + 2*time.Minute)
	var delivered []time.Time
	for {
		var n int
		delivered, n = h.rc.Accepted(wids)
		ph.Delivered = n
		if n >= submitted || time.Now().After(deadline) {
			break
		}
		if err := testenv.Sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	var last time.Time
	for _, at := range delivered {
		if at.After(last) {
			last = at
		}
	}
	ph.AllDelivered = round(last.Sub(healAt).Seconds(), 1)
	ph.Lost = submitted - ph.Delivered
	ph.Duplicates = h.rc.Stats().Duplicates
	ph.Errors = countReportErrors(workers, ph.Steps)
	return h.readAbsorbed(ctx, ph, lastSent)
}

// reportFailedMsg is the worker's log line for a failure report that did not reach the health workflow.
const reportFailedMsg = "failure report to the endpoint's health workflow failed"

// countReportErrors counts the report failures workers logged, in total
// and per step (by the line's time).
func countReportErrors(workers []*testenv.Process, steps []absorbStep) int {
	total := 0
	for _, w := range workers {
		for _, l := range strings.Split(w.Log(), "\n") {
			if !strings.Contains(l, reportFailedMsg) {
				continue
			}
			total++
			var line struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal([]byte(l), &line) != nil {
				continue
			}
			for i := range steps {
				if !line.Time.Before(steps[i].begin) && line.Time.Before(steps[i].end) {
					steps[i].ReportErrors++
				}
			}
		}
	}
	return total
}

// absorbDirect sends failure reports straight to a health workflow at each
// rate, as workers do (signal-with-start, sealed), each carrying a success
// just before it so the circuit stays closed.
func (h *harness) absorbDirect(ctx context.Context, taskQueue string, ph *absorbPhase) error {
	cfg := h.cfg
	ep := endpoint.Endpoint{ID: ph.Endpoint, Circuit: endpoint.DefaultCircuit()}
	ep.Circuit.OpenAfter, ep.Circuit.ProbeEvery = 10000, []time.Duration{time.Hour}
	opts := workflows.HealthStartOptions(ep, taskQueue)
	id := workflows.HealthWorkflowID(ep.ID)
	var lastSent time.Time
	for _, r := range cfg.signalRates {
		n := int(r * cfg.absorbStep.Seconds())
		fmt.Fprintf(h.out, "   absorb: %g failure reports/s straight to %s for %s\n", r, id, cfg.absorbStep)
		st := absorbStep{Offered: r, begin: time.Now()}
		lat := make([]time.Duration, n)
		var ok, failed atomic.Int64
		var firstErr sync.Once
		started := make([]time.Time, n)
		var calls atomic.Int64
		stepCtx, cancel := context.WithTimeout(ctx, cfg.absorbStep+time.Minute)
		err := submitAll(stepCtx, n, 1, min(256, max(16, int(r/4))), r, started, &calls, func(ctx context.Context, idx []int) error {
			at := time.Now().UTC()
			report := workflows.FailureReport{EndpointID: ep.ID, DeliveryID: fmt.Sprintf("%s:bench-%d", ep.ID, idx[0]), Outcome: workflows.OutcomeHTTPError,
				At: at, LastSuccessAt: at.Add(-time.Millisecond), Circuit: ep.Circuit}
			begin := time.Now()
			_, err := h.client.SignalWithStartWorkflow(ctx, id, workflows.FailureSignal, report, opts, workflows.HealthWorkflowName,
				workflows.HealthInput{EndpointID: ep.ID, Circuit: ep.Circuit})
			lat[idx[0]] = time.Since(begin)
			if err != nil {
				failed.Add(1)
				firstErr.Do(func() { fmt.Fprintf(h.out, "   absorb: a report failed at %g/s: %v\n", r, err) })
				return nil // counted; the next report goes on, as a worker's would
			}
			ok.Add(1)
			return nil
		})
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		st.end = time.Now()
		lastSent = st.end
		st.Seconds = round(st.end.Sub(st.begin).Seconds(), 2)
		st.Submitted, st.Failures, st.ReportErrors = n, int(ok.Load()), int(failed.Load())
		st.FailuresPerS = round(float64(st.Failures)/st.Seconds, 1)
		l := testenv.Summarize(lat)
		st.CallP50Ms, st.CallP99Ms, st.CallMaxMs = l.P50, l.P99, l.Max
		ph.Sent += n // every call; Errors are those that failed
		ph.Errors += st.ReportErrors
		ph.Steps = append(ph.Steps, st)
		fmt.Fprintf(h.out, "   absorb: %d of %d calls ok in %.1fs (%.0f/s), round trip p50 %.1f ms, p99 %.1f ms\n",
			st.Failures, n, st.Seconds, st.FailuresPerS, l.P50, l.P99)
	}
	return h.readAbsorbed(ctx, ph, lastSent)
}

// readAbsorbed waits (up to two minutes) for the health workflow to record
// every report sent, then reads its histories into the steps' figures.
func (h *harness) readAbsorbed(ctx context.Context, ph *absorbPhase, lastSent time.Time) error {
	deadline := time.Now().Add(2 * time.Minute)
	var hist []testenv.SignalRun
	for {
		var err error
		if hist, err = h.healthHistories(ctx, ph.Endpoint); err != nil {
			return err
		}
		ph.Recorded = 0
		for _, r := range hist {
			ph.Recorded += len(r.Signals)
		}
		// Accepted reports are Sent-Errors; the newest run shows in
		// visibility a moment after it began, so read again until all are.
		if ph.Recorded >= ph.Sent-ph.Errors || time.Now().After(deadline) {
			break
		}
		if err := testenv.Sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
	var lastSignal time.Time
	for _, r := range hist {
		for _, s := range r.Signals {
			if s.After(lastSignal) {
				lastSignal = s
			}
		}
	}
	ph.CatchUp = round(lastSignal.Sub(lastSent).Seconds(), 2)
	for i := range ph.Steps {
		fillStep(&ph.Steps[i], hist)
	}
	o := h.outage(nil, ph.Endpoint, "")
	if st, err := o.HealthState(ctx); err == nil {
		ph.State, ph.Failures = string(st.State), st.ConsecutiveFailures
	} else {
		ph.State = "query failed: " + err.Error()
	}
	return h.healthRuns(ctx, o, &ph.Health)
}

// healthHistories reads every run of an endpoint's health workflow.
func (h *harness) healthHistories(ctx context.Context, endpointID string) ([]testenv.SignalRun, error) {
	runs, err := h.outage(nil, endpointID, "").HealthRuns(ctx)
	if err != nil {
		return nil, err
	}
	var out []testenv.SignalRun
	for _, r := range runs {
		events, err := testenv.History(ctx, h.client, workflows.HealthWorkflowID(endpointID), r.RunID)
		if err != nil {
			return nil, err
		}
		out = append(out, testenv.ReadSignals(r.Start, events, workflows.FailureSignal))
	}
	return out, nil
}

// fillStep reads the histories' figures for the step's window.
func fillStep(st *absorbStep, hist []testenv.SignalRun) {
	in := func(t time.Time) bool { return !t.Before(st.begin) && t.Before(st.end) }
	var lags, waits, runs []time.Duration
	signalsRead := 0
	for _, r := range hist {
		if in(r.Start) {
			st.Runs++
		}
		for _, s := range r.Signals {
			if in(s) {
				st.Recorded++
			}
		}
		for i, at := range r.LagAt {
			if in(at) {
				lags = append(lags, r.Lags[i])
			}
		}
		for i, at := range r.WFTStart {
			if in(at) {
				st.WorkflowTasks++
				waits = append(waits, r.WFTWait[i])
				signalsRead += r.WFTSignals[i]
				if i < len(r.WFTRun) {
					runs = append(runs, r.WFTRun[i])
				}
			}
		}
	}
	st.RecordedPerS = round(float64(st.Recorded)/st.Seconds, 1)
	if st.WorkflowTasks > 0 {
		st.SignalsPerWFT = round(float64(signalsRead)/float64(st.WorkflowTasks), 1)
	}
	l, w, x := testenv.Summarize(lags), testenv.Summarize(waits), testenv.Summarize(runs)
	st.LagP50Ms, st.LagMaxMs = l.P50, l.Max
	st.WFTWaitP50Ms, st.WFTWaitMaxMs, st.WFTRunP50Ms = w.P50, w.Max, x.P50
}

// printAbsorb prints both phases' steps.
func printAbsorb(w io.Writer, r *absorbReport) {
	fmt.Fprintf(w, "\n== results: failure reports to one endpoint's health workflow, circuit held closed {%s}, %g s per rate; %d worker(s)\n",
		r.Circuit, r.StepSeconds, r.Config.Workers)
	printMachine(w, r.header)
	for _, ph := range []struct {
		name  string
		p     absorbPhase
		calls bool
	}{{"failing deliveries through serve and the worker (each failure a worker's signal-with-start)", r.Deliveries, false},
		{"failure reports sent by the bench itself (signal-with-start, sealed)", r.Direct, true}} {
		if len(ph.p.Steps) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s, endpoint %s:\n", ph.name, ph.p.Endpoint)
		fmt.Fprintf(w, "%9s %9s %10s %7s %9s %10s %6s %9s %10s %10s %10s %5s", "offered/s", "submitted", "failures/s", "errors", "recorded", "recorded/s", "WFTs", "sig/WFT", "lag p50", "lag max", "WFT wait", "runs")
		if ph.calls {
			fmt.Fprintf(w, " %10s %10s", "call p50", "call p99")
		}
		fmt.Fprintln(w)
		for _, s := range ph.p.Steps {
			fmt.Fprintf(w, "%9g %9d %10.1f %7d %9d %10.1f %6d %9.1f %8.0fms %8.0fms %8.0fms %5d", s.Offered, s.Submitted, s.FailuresPerS, s.ReportErrors, s.Recorded,
				s.RecordedPerS, s.WorkflowTasks, s.SignalsPerWFT, s.LagP50Ms, s.LagMaxMs, s.WFTWaitP50Ms, s.Runs)
			if ph.calls {
				fmt.Fprintf(w, " %8.1fms %8.1fms", s.CallP50Ms, s.CallP99Ms)
			}
			fmt.Fprintln(w)
		}
		hf := ph.p.Health
		fmt.Fprintf(w, "reports sent %d, failed %d, recorded %d (last recorded %.1fs after the last sent); health workflow %s after: %d consecutive failures; %d run(s), %d continued as new, max history %d\n",
			ph.p.Sent, ph.p.Errors, ph.p.Recorded, ph.p.CatchUp, ph.p.State, ph.p.Failures, hf.Runs, hf.ContinuedAsNew, hf.MaxHistoryLength)
		if !ph.calls {
			fmt.Fprintf(w, "after the heal: %d delivered, %d lost, %d duplicates; the last %.1fs after the heal\n", ph.p.Delivered, ph.p.Lost, ph.p.Duplicates, ph.p.AllDelivered)
		}
	}
}
