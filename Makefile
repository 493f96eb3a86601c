# Volt — build, test, lint, demo. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= 0.1.0
LDFLAGS := -s -w -X github.com/volt-cli/volt/engine.Version=$(VERSION)
PLUGINS := $(notdir $(wildcard plugins/*))
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

.PHONY: help build plugins test lint fmt demo bench conformance proto man clean

help:
	@echo "make build   - build bin/volt, bin/volt-init and bin/volt-plugin-* "
	@echo "make test    - the whole test suite (scripts/test.sh: deps, build, lint, go test -race)"
	@echo "make lint    - gofmt, go vet, staticcheck"
	@echo "make demo    - the quick start: build, verify, deploy and show the hello example"
	@echo "make bench   - benchmarks against peer tools (bench/README.md)"
	@echo "make conformance - the OCI distribution-spec conformance suite against volt registry serve"
	@echo "make proto   - regenerate the plugin protocol's Go code"
	@echo "make man     - man pages for every command into bin/man (man -l bin/man/volt.1)"

build: $(BIN)/volt $(BIN)/volt-init plugins

# The containers' PID 1: static, so it runs in any image.
$(BIN)/volt-init: FORCE
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/volt-init

$(BIN)/volt: FORCE
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/volt

# Each plugins/<name> with a main package becomes bin/volt-plugin-<name>.
plugins:
	@mkdir -p $(BIN)
	@for p in $(PLUGINS); do \
	  if ls plugins/$$p/*.go >/dev/null 2>&1 && grep -qs '^package main' plugins/$$p/*.go; then \
	    $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/volt-plugin-$$p ./plugins/$$p || exit 1; \
	  fi; \
	done
	@if [ -d examples/plugin-runtime-exec ] && grep -qs '^package main' examples/plugin-runtime-exec/*.go; then \
	  $(GO) build -trimpath -o $(BIN)/volt-plugin-runtime-exec ./examples/plugin-runtime-exec; fi

test:
	bash scripts/test.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

demo:
	bash scripts/demo.sh

bench:
	bash bench/run.sh

conformance: build
	bash scripts/conformance.sh

proto:
	$(MAKE) -C sdk proto

man: $(BIN)/volt
	$(BIN)/volt __man $(BIN)/man

clean:
	rm -rf $(BIN)

FORCE:
