# firebreak — build and test. `make test` is what CI runs (.ci/run).
GO      ?= go
FUZZTIME ?= 10s

.PHONY: build test unit playbooks fuzz vet bench demo

build:
	$(GO) build -o bin/firebreak ./cmd/firebreak

## test: everything CI checks — vet, unit and script tests with the race
## detector, the shipped playbooks validated and tested as a user's repo,
## and a short run of every fuzz test.
test: vet unit playbooks fuzz

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 ./...

playbooks: build
	./bin/firebreak validate .
	./bin/firebreak test .

# Each fuzz target for FUZZTIME; go test -fuzz takes one target at a time.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=10x $$pkg; \
	  done; \
	done

bench:
	./bench/run.sh
