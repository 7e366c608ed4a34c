// Package testenv is the one test environment of the integration tests
// (tests/) and the benchmarks (bench/): a Temporal server in the mode the
// run asks for (an existing cluster, a dev server container, bin/temporal,
// or a Temporal server on PostgreSQL with its services as processes), a
// PostgreSQL server of a test's own, the project's programs built once and
// run as processes that are waited on until they say they are ready, a
// receiver that verifies every signature (one that is down until healed,
// too), free loopback addresses, endpoints files and a payload key
// generated per run. What both need to drive and read a run lives here
// once: fake events, a client of serve that honours Retry-After, a pacer,
// the outage-and-drain scenario (Outage) with its log readers and order
// check, and the readings a benchmark reports (process memory and CPU,
// latency percentiles, history costs, CPU profiles, the machine). Tests
// assert on the readings; the bench reports them.
//
// Its core takes no *testing.T, since bench is a program: functions return
// errors. The few helpers that take a testing.TB (testing.go) fail the test
// and register its cleanup instead.
package testenv
