# cairn build and test entry points. `make test` is what CI runs.

GO          ?= go
# The release version, from the newest v* tag ("0.4.0", or
# "0.4.0-3-gabc1234-dirty" between tags); empty without a tag, and then
# the binary says its devVersion (cmd/cairn/cmd_version.go). COMMIT is
# the commit, "-dirty" added for uncommitted changes: "cairn version"
# prints both, never a bare hash for a version.
VERSION     ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//')
COMMIT      ?= $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null || c=$$c-dirty; echo $$c; })
LDFLAGS     := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
# Fuzz time per target: a smoke run in `make test`, longer in `make fuzz`.
FUZZTIME_SMOKE ?= 2s
FUZZTIME       ?= 2m
# Tests that need sshd (backend/sftp, the CLI's sftp: tests), FUSE (the
# mount tests), zsh and fish (the generated completions), tmux (the
# progress line in a terminal) or restic 0.19.1 (the JSON comparison) fail
# rather than skip when it is missing; scripts/test-deps.sh installs them.
export CAIRN_TEST_REQUIRE ?= sftp fuse shells tmux restic schedule
# The build tag of the test-only code: the fault injector (backend/faulty)
# and the binary's CAIRN_TESTONLY_* seams (cmd/cairn/testonly.go). Every
# test target passes it; build and demo do not, so the release binary
# holds neither (cmd/cairn.TestReleaseBinaryHasNoTestSeams checks it).
export TESTTAGS := cairn_testonly
# Per test binary. go test's default of 10 minutes is too tight for the
# CLI package under -race on a loaded 2-core machine; a hung test still
# ends the run, with a stack dump, within this bound.
TESTTIMEOUT ?= 25m

.PHONY: build demo test deps fmt-check vet staticcheck unit race fuzz-smoke bench-compile fuzz clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/cairn ./cmd/cairn

# Builds cairn, then backs a sample folder up into a temporary repository,
# restores it and compares; exits non-zero on any mismatch.
demo: build
	scripts/demo.sh bin/cairn

# Every check CI runs. Installs what the tests need first; the quick
# static checks (format, vet, function length, import layering) before the
# slow ones. The plain test run comes last so that the run closes on its
# results.
test: deps fmt-check vet funclen layers staticcheck bench-compile fuzz-smoke race soak-ci unit

deps:
	scripts/test-deps.sh

# Tracked files only (all of them in CI): others' untracked work in
# progress in a shared tree is not this run's business.
fmt-check:
	@files="$$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')"; \
	out="$$(gofmt -l $$files)"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet -tags $(TESTTAGS) ./...

# With the tag and the tests, then cmd/cairn's release build alone (its
# inert seams, testonly_off.go; without the tests, which need the tag).
staticcheck:
	$(STATICCHECK) -tags $(TESTTAGS) ./...
	$(STATICCHECK) -tests=false ./cmd/cairn

unit:
	$(GO) test -tags $(TESTTAGS) -timeout $(TESTTIMEOUT) ./...

# The race detector on every package whose code or tests start goroutines
# or use sync primitives. -short: the long scenario tests (a simulated year,
# kill-and-resume runs) are about outcomes, not races; they run once, at
# full length, in `unit`.
race:
	@pkgs="$$(scripts/race-packages.sh)"; \
	if [ -n "$$pkgs" ]; then echo "go test -tags $(TESTTAGS) -race -short $$pkgs"; $(GO) test -tags $(TESTTAGS) -timeout $(TESTTIMEOUT) -race -short $$pkgs; fi

# Each Fuzz target briefly, so they keep running, not just compiling.
fuzz-smoke:
	scripts/fuzz.sh $(FUZZTIME_SMOKE)

# Benchmarks run once each so they keep compiling and working.
bench-compile:
	$(GO) test -tags $(TESTTAGS) -run='^$$' -bench=. -benchtime=1x ./...

# Longer fuzzing of every Fuzz target (FUZZTIME each).
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# cairn, restic and borg side by side (installs restic and borg if missing);
# writes docs/performance.md and docs/performance.csv. SCALE=0.1 RUNS=3
# make bench for a quicker run; see scripts/bench/run.sh.
.PHONY: bench
bench:
	scripts/bench/run.sh

# The soak test (scripts/soak, docs/reliability.md): the real binary
# through simulated weeks of cron from two hosts, with kill -9, a full
# disk, I/O faults, cut connections, a restarted peer and damaged copies;
# it fails if a snapshot is lost, damage goes unnoticed or anything
# panics. `make soak` runs SOAK_CYCLES cycles (a few minutes by default);
# `make test` runs a shorter one. Root gets a tmpfs for the full-disk
# fault; sshd is needed for the SFTP copy.
SOAK_CYCLES    ?= 60
SOAK_CYCLES_CI ?= 16
.PHONY: soak soak-ci
soak:
	$(GO) run ./scripts/soak -cycles $(SOAK_CYCLES)

soak-ci:
	$(GO) run ./scripts/soak -cycles $(SOAK_CYCLES_CI)

# Lists the functions over 120 lines outside tests and generated code
# (scripts/funclen) and fails if there are any.
.PHONY: funclen
funclen:
	$(GO) run ./scripts/funclen .

# Checks the import graph against docs/architecture.md (scripts/layers):
# each layer imports only its own or lower ones, test helpers only from
# tests, test infrastructure never from the product; and that the page
# names every package and only files and functions that exist.
.PHONY: layers
layers:
	$(GO) run ./scripts/layers .

clean:
	rm -rf bin
	$(GO) clean -testcache
