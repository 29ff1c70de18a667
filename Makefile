# firebreak — build and test. `make test` is what CI runs (.ci/run).
GO      ?= go
FUZZTIME ?= 10s

.PHONY: build test unit playbooks actionlint install-actionlint fuzz vet bench demo

# actionlint checks the GitHub workflows; CI installs this version (.ci/run).
ACTIONLINT_VERSION ?= v1.7.12

build:
	$(GO) build -o bin/firebreak ./cmd/firebreak

## test: everything CI checks — vet, unit and script tests with the race
## detector, the shipped playbooks validated and tested as a user's repo,
## the GitHub workflows linted, and a short run of every fuzz test.
test: vet unit playbooks actionlint fuzz

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 ./...

playbooks: build
	./bin/firebreak validate .
	./bin/firebreak test .

## actionlint: this repository's workflows (with action.yml, which actionlint
## reads where a workflow uses it as ./; TestAction in engine/scaffold checks
## its keys) and the ones `firebreak init` writes. actionlint is bin/actionlint
## (make install-actionlint), or found on PATH or in GOPATH/bin. Without it
## the lint fails when CI is set, and is skipped with a hint otherwise.
actionlint: build
	@lint=$$(for c in "$(CURDIR)/bin/actionlint" actionlint "$$($(GO) env GOPATH)/bin/actionlint"; do command -v "$$c" && break; done); \
	if [ -z "$$lint" ]; then \
	  if [ -n "$$CI" ]; then echo "actionlint: not installed, and CI is set: run make install-actionlint" >&2; exit 1; fi; \
	  echo "actionlint: not installed, workflows not linted; install it with: make install-actionlint"; \
	  echo "  (go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION) into bin/)"; exit 0; \
	fi; \
	set -e; echo "actionlint $$($$lint -version | head -n 1) ($$lint)"; \
	echo "actionlint .github/workflows"; $$lint .github/workflows/*.yml; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	out=$$(./bin/firebreak init "$$tmp" 2>&1) || { echo "$$out"; exit 1; }; \
	echo "actionlint on what firebreak init writes"; cd "$$tmp" && $$lint .github/workflows/*.yml

install-actionlint:
	GOBIN=$(CURDIR)/bin GOFLAGS= $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# Each fuzz target for FUZZTIME; go test -fuzz takes one target at a time.
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" as -fuzztime ends while a worker is busy (golang/go#75804, fixed
# in Go 1.27): that, with no failing input written, is not a finding.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    out=$$($(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=10x $$pkg 2>&1) && rc=0 || rc=$$?; \
	    echo "$$out"; \
	    if [ $$rc -ne 0 ]; then \
	      if echo "$$out" | grep -q 'Failing input written to' || ! echo "$$out" | grep -qx '    context deadline exceeded'; then exit $$rc; fi; \
	      echo "fuzz $$f: the fuzztime deadline race of golang/go#75804, no failing input: not a finding"; \
	    fi; \
	  done; \
	done

bench:
	./bench/run.sh
