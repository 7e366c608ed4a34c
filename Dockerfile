# syntax=docker/dockerfile:1
# hookrelay's container images, one target each:
#   worker    the worker; also the codec server (`worker codec-server`)
#   starter   the command line and the HTTP ingestion API (`starter serve`)
#   receiver  the example receiver, a stand-in customer endpoint
# Each holds one static binary and the healthcheck probe on an empty (scratch)
# base, with only the CA bundle added, and runs as an unprivileged user.
#   docker build --target worker -t hookrelay/worker:dev .     (docker compose build does all)

# The Go of go.mod's `go` line (deploy/ checks they agree).
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO off: static binaries, nothing to resolve at run time on an empty base.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/hookrelay/hookrelay/internal/version.Version=${VERSION}" \
      -o /out/ ./worker ./starter ./examples/receiver ./deploy/healthcheck \
 && for b in /out/*; do if ldd "$b" 2>&1 | grep -q '=>'; then echo "$b is dynamically linked" >&2; exit 1; fi; done

# scratch rather than a distroless tag: nothing here but what this file pins.
FROM scratch AS runtime
# TLS to customer endpoints and to Temporal Cloud verifies against these roots.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
# Unprivileged, with no entry in an /etc/passwd that scratch does not have.
USER 65532:65532

FROM runtime AS worker
COPY --from=build /out/worker /usr/local/bin/worker
# 9090: --metrics-listen (GET /metrics, /healthz); 8081: `worker codec-server`.
EXPOSE 9090 8081
ENTRYPOINT ["/usr/local/bin/worker"]

FROM runtime AS starter
COPY --from=build /out/starter /usr/local/bin/starter
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/starter"]

FROM runtime AS receiver
COPY --from=build /out/receiver /usr/local/bin/receiver
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/receiver"]
