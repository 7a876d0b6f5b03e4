# vouch — build, test and demo. Only Go is needed; `make test` builds every tool the tests use.
GO       ?= go
BIN      := bin/vouch
FUZZTIME ?= 10s
# Real tools the integration tests run, built pinned by hack/tools.sh into $(TOOLS_DIR)/bin:
# the registry, the signing CLIs and an RFC 3161 timestamp authority, the control plane of the
# end-to-end webhook tests, and helm (the chart in charts/vouch is rendered, linted and installed
# against that control plane).
TOOLS_DIR := $(CURDIR)/.cache/tools
TOOLS     := registry cosign cosign3 notation timestamp-server etcd kube-apiserver kubectl helm

# Fuzz targets run for FUZZTIME each in `make test` (package:target).
FUZZ_TARGETS := \
	./api/kyverno/v1:FuzzDecodePolicy \
	./internal/imageref:FuzzParse \
	./internal/imageref:FuzzMatch \
	./internal/extract:FuzzImages \
	./internal/manifest:FuzzSplit \
	./internal/policy:FuzzCompile \
	./internal/engine:FuzzEvaluate \
	./internal/conditions:FuzzEvaluate \
	./internal/registry:FuzzChallengeRewrite \
	./internal/registry:FuzzCheckManifest \
	./internal/webhook:FuzzAdmissionReview \
	./internal/patch:FuzzApply \
	./internal/verify/cosign:FuzzSimpleSigning \
	./internal/verify/cosign:FuzzSignatureLayer \
	./internal/verify/cosign:FuzzAttestationEnvelope \
	./internal/verify/cosign:FuzzParseBundle \
	./internal/verify/notary:FuzzEnvelopeChain

.PHONY: all build demo test unit vet fmt-check fuzz bench soak tools clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/vouch

demo: build
	./$(BIN) demo

# tools: the real registry, signing and control-plane tools the integration tests use (cached;
# only a changed pin rebuilds; from a cold build cache kube-apiserver takes longest, ~10 minutes
# on 2 cores). The tests find them through VOUCH_TOOLS_DIR and fail, never skip, without them.
tools:
	@VOUCH_TOOLS_DIR=$(TOOLS_DIR) bash hack/tools.sh $(TOOLS)

test: tools fmt-check vet unit fuzz

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet -tags integration ./...

# unit: every test, the integration tests (build tag integration) included.
unit: tools
	VOUCH_TOOLS_DIR=$(TOOLS_DIR) $(GO) test -count=1 -tags integration ./...

# fuzz: each target for FUZZTIME; an input found fails (hack/fuzz.sh also says why Go 1.26's
# fuzz-coordinator race, golang/go#75804, is run again rather than counted as a finding).
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) bash hack/fuzz.sh $(FUZZ_TARGETS)

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/policy/ ./internal/imageref/

# soak: vouch serve at 200 req/s for 5 minutes while its registry cycles through healthy, slow,
# 429, 5xx and down (docs/SECURITY.md, "Soak under faults"); about 6 minutes.
soak:
	$(GO) test -run='^$$' -bench='^BenchmarkServeSoak$$' -benchtime=1x -timeout=20m -v ./cmd/vouch/

clean:
	rm -rf bin
