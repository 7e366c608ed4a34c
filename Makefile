# hookrelay: `make demo` to see it work, `make test` to check it.
GO       ?= go
BIN      := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal
TEMPORAL_CLI_VERSION := v1.5.1
# The Temporal server and temporal-sql-tool for the production-shaped cluster
# (internal/temporalcluster): a current server release, newer than the one the CLI's dev server
# embeds. Its go.mod asks for Go 1.26.10, which the Go command fetches for that install only.
TEMPORAL_SERVER_VERSION := v1.32.2
TEMPORAL_SERVER_GOTOOLCHAIN := go1.26.10
TEMPORAL_SERVER_BIN := $(BIN)/temporal-server-$(TEMPORAL_SERVER_VERSION)
SEARCH_ATTRIBUTES := --search-attribute HookrelayEndpoint=Keyword --search-attribute HookrelayEventName=Keyword \
	--search-attribute HookrelayMailLogID=Keyword --search-attribute HookrelayStatus=Keyword \
	--search-attribute HookrelayAttempts=Int --search-attribute HookrelayAccount=Keyword \
	--search-attribute HookrelayCircuit=Keyword --search-attribute HookrelayEventTime=Datetime

.PHONY: all tools tools-cluster build test test-cluster test-unit test-integration test-docker fuzz bench bench-park bench-drain bench-absorb bench-go bench-registry bench-log demo dev deploy-secrets fmt vet clean

all: build

## tools: the Temporal CLI (dev server and UI) from the Go module proxy, into bin/temporal
tools: $(TEMPORAL)
$(TEMPORAL):
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

## tools-cluster: the Temporal server and temporal-sql-tool from go.temporal.io/server (Go module
## proxy), into bin/temporal-server-v1.32.2/ as server and sql; the module cache keeps its schema
tools-cluster: $(TEMPORAL_SERVER_BIN)/server $(TEMPORAL_SERVER_BIN)/sql
$(TEMPORAL_SERVER_BIN)/server $(TEMPORAL_SERVER_BIN)/sql &:
	GOTOOLCHAIN=$(TEMPORAL_SERVER_GOTOOLCHAIN) GOBIN=$(TEMPORAL_SERVER_BIN) $(GO) install go.temporal.io/server/cmd/server@$(TEMPORAL_SERVER_VERSION) \
		go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VERSION)

## build: bin/worker, bin/starter and the example bin/receiver
build:
	$(GO) build -o $(BIN)/ ./worker ./starter ./examples/receiver

## test: vet, then unit and integration tests (race detector on) against a real dev server
test: tools vet
	$(GO) test -race -count=1 -timeout 40m ./...

test-unit: vet
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /tests)

test-integration: tools
	$(GO) test -race -count=1 -timeout 40m -v ./tests/

## test-docker: the integration tests against the dev server in a container (dockertest);
## without a Docker engine they skip, saying so. (TEMPORAL_ADDRESS=host:port make test-integration
## runs them against an existing cluster.)
test-docker: tools
	HOOKRELAY_TEST_SERVER=docker $(GO) test -race -count=1 -timeout 40m -v ./tests/

## test-cluster: a Temporal server on PostgreSQL, its four services as processes
## (internal/temporalcluster; docs/temporal-cluster.md): its own tests, then the whole
## integration suite against it, the server fault tests included (tests/faults_test.go)
test-cluster: tools tools-cluster
	HOOKRELAY_TEST_SERVER=postgres $(GO) test -race -count=1 -timeout 30m ./internal/temporalcluster/
	HOOKRELAY_TEST_SERVER=postgres $(GO) test -race -count=1 -timeout 45m -v ./tests/

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

## fuzz: each fuzz target for FUZZTIME (make test runs their seed corpora)
FUZZTIME ?= 15s
FUZZ_TARGETS := ./event:FuzzParse ./httpapi:FuzzParseEvents ./endpoint:FuzzParse ./internal/codec:FuzzParse \
	./webhookverify:FuzzParseSignatures ./webhookverify:FuzzVerify
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done

## bench: end to end on a dev server: hookrelay through starter serve beside a lean
## one-activity workflow; deliveries/s, latency, billable actions, worker RSS (bench/); hookrelay
## twice, without and then with the delivery log in a fresh PostgreSQL database (--log-db none: once).
## Flags in BENCH_FLAGS, e.g. make bench BENCH_FLAGS='--events 500 --worker-args "--pollers 8"'.
## BENCH_SERVER=postgres runs the same bench on a Temporal server on PostgreSQL, its four
## services as processes (what make test-cluster runs); it sets HOOKRELAY_TEST_SERVER.
## BENCH_COMPARE=REV (--compare REV) measures the working tree beside worker and starter built at
## git revision REV, in alternating phases on the same server.
BENCH_FLAGS ?=
BENCH_SERVER ?=
BENCH_COMPARE ?=
BENCH_ENV := $(if $(BENCH_SERVER),HOOKRELAY_TEST_SERVER=$(BENCH_SERVER))
BENCH_TOOLS := tools $(if $(filter postgres,$(BENCH_SERVER)),tools-cluster)
bench: $(BENCH_TOOLS)
	$(BENCH_ENV) $(GO) run ./bench $(if $(BENCH_COMPARE),--compare $(BENCH_COMPARE)) $(BENCH_FLAGS)

## bench-park: 10,000 deliveries parked in backoff: worker RSS, and the server holding the timers
bench-park: $(BENCH_TOOLS)
	$(BENCH_ENV) $(GO) run ./bench --mode park $(BENCH_FLAGS)

## bench-drain: 10,000 deliveries parked behind an endpoint's open circuit, then drained at 100/s:
## duration, order, duplicates and lost as figures, the health workflow's history, worker RSS (tests/ asserts none are lost)
bench-drain: $(BENCH_TOOLS)
	$(BENCH_ENV) $(GO) run ./bench --mode drain $(BENCH_FLAGS)

## bench-absorb: failure reports per second one endpoint's health workflow takes, from failing
## deliveries and straight from the bench, at rising rates; deliveries lost or duplicated as figures
bench-absorb: $(BENCH_TOOLS)
	$(BENCH_ENV) $(GO) run ./bench --mode absorb $(BENCH_FLAGS)

## bench-go: Go benchmarks (signing, event parsing)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./... | grep -v /tests)

## bench-registry: routing at scale in the endpoint registry: 100,000 endpoints over 50,000
## accounts in PostgreSQL (HOOKRELAY_TEST_POSTGRES, default the local server); p50 and p99 of one lookup
bench-registry:
	$(GO) test -run '^$$' -bench BenchmarkRoutePostgres -benchtime 20000x ./internal/registry/

## bench-log: the delivery log at scale: BENCH_LOG_ATTEMPTS (10 million) attempts over 10,000 accounts in a
## fresh PostgreSQL database (HOOKRELAY_TEST_POSTGRES, default the local server, dropped at the end); List's
## p50 and p99 with each filter, bytes per record, a day's retention run, a month's partition dropped
BENCH_LOG_ATTEMPTS ?= 10000000
bench-log:
	$(GO) test -count=1 -timeout 120m -run '^TestBenchLog$$' -v ./internal/deliverylog/ -args -bench-log.attempts=$(BENCH_LOG_ATTEMPTS)

## demo: dev server + UI, worker, example receiver, one event of each kind, outcomes
demo: tools build
	scripts/demo.sh

## dev: a dev server with the UI on :8233, a database under .temporal/, the search attributes,
## a payload key in .temporal/codec.key and a codec server the UI decrypts through
dev: tools build
	scripts/dev.sh $(SEARCH_ATTRIBUTES)

## deploy-secrets: secrets/ and .env for docker compose (generated once, git-ignored)
deploy-secrets:
	scripts/deploy-secrets.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf .temporal $(BIN)/worker $(BIN)/starter $(BIN)/receiver
