# vouch — build, test and demo. Only Go is needed; `make test` builds every tool the tests use.
GO       ?= go
BIN      := bin/vouch
FUZZTIME ?= 10s

# Fuzz targets run for FUZZTIME each in `make test` (package:target).
FUZZ_TARGETS := \
	./api/kyverno/v1:FuzzDecodePolicy \
	./internal/imageref:FuzzParse \
	./internal/imageref:FuzzMatch \
	./internal/extract:FuzzImages \
	./internal/manifest:FuzzSplit \
	./internal/engine:FuzzEvaluate

.PHONY: all build demo test unit vet fmt-check fuzz bench tools clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/vouch

demo: build
	./$(BIN) demo

# tools: real signing tools, registry and API server used by integration tests (none yet).
tools:
	@true

test: tools fmt-check vet unit fuzz

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/policy/ ./internal/imageref/

clean:
	rm -rf bin
