// Package testenv is the one test environment of the integration tests
// (tests/) and the benchmarks (bench/): a Temporal server in the mode the
// run asks for (an existing cluster, a dev server container, or
// bin/temporal), the project's programs built once and run as processes
// that are waited on until they say they are ready, a receiver that
// verifies every signature, free loopback addresses, endpoints files and a
// payload key generated per run.
//
// Its core takes no *testing.T, since bench is a program: functions return
// errors. The few helpers that take a testing.TB (testing.go) fail the test
// and register its cleanup instead.
package testenv
