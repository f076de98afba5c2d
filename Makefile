# kubecc: build the four peer hooks and the CLI into bin/.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# grpcnotrace drops grpc's x/net/trace (and html/template): run is one process per
# chaincode, and its memory is mostly its own executable (docs/benchmarks.md, P5).
TAGS    := grpcnotrace
HOOKS   := detect build release run run-serverless

.PHONY: all hooks cli image test unit fuzz e2e e2e-up e2e-down demo bench soak lint clean

all: hooks cli

# run-serverless: run with the serverless relay (gRPC), which run hands job-mode launches to.
hooks:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./,$(HOOKS))

cli:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/kubecc ./cmd/kubecc-install

# kubecc's own image (hooks, CLI, installer), pushed to IMAGE_REPO:VERSION; the last
# line is name@digest. Dated by the commit, so the same commit gives the same digest.
IMAGE_REPO ?= 127.0.0.1:5000/kubecc/kubecc
IMAGE_FLAGS ?= --insecure
image: all
	@SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) bin/kubecc image self --bin bin --to $(IMAGE_REPO):$(VERSION) --revision $$(git rev-parse HEAD 2>/dev/null || echo unknown) $(IMAGE_FLAGS)

# -race on every package: the relay, the job loop and the launcher run goroutines.
unit:
	$(GO) vet ./...
	$(GO) test -race ./...

# Every parser of package input, fuzzed for FUZZTIME (default 15s) each.
fuzz:
	bash e2e/fuzz.sh

# The README's test command: lint, unit tests, fuzzing, then the e2e suites on the real harness.
test: all lint unit fuzz e2e

e2e: all
	bash e2e/run-e2e.sh

e2e-up: all
	bash e2e/up.sh

e2e-down:
	bash e2e/down.sh

demo: all
	bash e2e/demo.sh

bench: all
	bash e2e/bench.sh

# Not part of bench or CI: SOAK_DURATION (default 10m) of writes under injected faults
# (pods deleted, API server and peer restarted), then every committed write read back
# (docs/benchmarks.md, S1). It breaks the harness on purpose while it runs.
soak: all
	BENCH_ONLY=S1 BENCH_MAKE=soak bash e2e/bench.sh

lint:
	bash e2e/lint.sh

clean:
	rm -rf bin
