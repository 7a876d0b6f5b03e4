package engine

import (
	"context"
	"crypto"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/patch"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// world is an in-process registry with a signed and an unsigned image, two keys, and an
// engine wired with the real registry client and cosign verifier.
type world struct {
	reg              *fixture.Registry
	k1, k2           *fixture.Key
	signed, unsigned string // digests
	counter          *registry.Counter
	served           atomic.Int64
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{counter: &registry.Counter{}}
	w.reg = fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.served.Add(1)
			h.ServeHTTP(rw, r)
		})
	})
	t.Cleanup(w.reg.Close)
	var err error
	if w.k1, err = fixture.NewKey(); err != nil {
		t.Fatal(err)
	}
	if w.k2, err = fixture.NewKey(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if w.signed, err = w.reg.Push(ctx, "app:signed"); err != nil {
		t.Fatal(err)
	}
	if w.unsigned, err = w.reg.Push(ctx, "app:unsigned"); err != nil {
		t.Fatal(err)
	}
	if err := w.reg.Sign(ctx, "app", w.signed, w.k1.Private, map[string]string{"env": "prod"}, ""); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) engine(t *testing.T, entry string) *Engine {
	t.Helper()
	return w.engineFor(t, policyYAML("  validationFailureAction: Enforce\n", entry))
}

// engineFor is an engine for the given policy documents on the world's registry.
func (w *world) engineFor(t *testing.T, docs string) *Engine {
	t.Helper()
	e := newEngine(t, docs)
	regs, err := registry.NewPair(registry.Options{Metrics: w.counter})
	if err != nil {
		t.Fatal(err)
	}
	cv, err := cosign.New(cosign.Options{Remote: regs.RemoteOptions})
	if err != nil {
		t.Fatal(err)
	}
	e.registry, e.verifiers = regs, map[string]verify.Verifier{"Cosign": cv}
	return e
}

func keyEntry(pems ...string) string {
	var b strings.Builder
	b.WriteString("    - imageReferences: [\"*\"]\n      attestors:\n      - entries:\n")
	for _, p := range pems {
		b.WriteString("        - keys:\n            rekor: {ignoreTlog: true}\n            ctlog: {ignoreSCT: true}\n            publicKeys: |-\n")
		for _, l := range strings.Split(strings.TrimSpace(p), "\n") {
			b.WriteString("              " + l + "\n")
		}
	}
	return b.String()
}

func TestVerifySignedImageIsPinnedAndAnnotated(t *testing.T) {
	w := newWorld(t)
	e := w.engine(t, keyEntry(w.k1.PEM))
	img := w.reg.Host + "/app:signed"
	resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "default", img)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Status != Pass || resp.Results[0].Message != "verified image signatures for "+img {
		t.Fatalf("results = %+v", resp.Results)
	}
	pinned := img + "@" + w.signed
	got := resp.Object["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]
	if got != pinned {
		t.Errorf("image = %v, want %s", got, pinned)
	}
	ann := resp.Object["metadata"].(map[string]any)["annotations"].(map[string]any)
	key := w.reg.Host + "/app@" + w.signed
	if want := `{"` + key + `":"pass"}`; ann[patch.AnnotationVerified] != want {
		t.Errorf("%s = %v, want %s", patch.AnnotationVerified, ann[patch.AnnotationVerified], want)
	}
	if want := `{"version":1,"policies":{"/pol":{"r":{"` + key + `":"pass"}}}}`; ann[patch.AnnotationScoped] != want {
		t.Errorf("%s = %v, want %s", patch.AnnotationScoped, ann[patch.AnnotationScoped], want)
	}
	if len(resp.Patches) != 4 || resp.Patches[3].Op != "replace" || resp.Patches[3].Path != "/spec/containers/0/image" {
		t.Errorf("patches = %+v", resp.Patches)
	}
}

func TestVerifyOutcomes(t *testing.T) {
	w := newWorld(t)
	signed, unsigned := w.reg.Host+"/app:signed", w.reg.Host+"/app:unsigned"
	annotated := func(v string) string {
		return strings.Replace(keyEntry(w.k1.PEM), "        - keys:", "        - annotations: {env: "+v+"}\n          keys:", 1)
	}
	tests := []struct {
		name   string
		entry  string
		image  string
		status Status
		msg    string
	}{
		{"unsigned", keyEntry(w.k1.PEM), unsigned, Fail, "failed to verify image " + unsigned + ": .attestors[0].entries[0].keys: no signatures found"},
		{"wrong key", keyEntry(w.k2.PEM), signed, Fail, "failed to verify image " + signed + ": .attestors[0].entries[0].keys: no matching signatures: "},
		{"count absent means all", keyEntry(w.k1.PEM, w.k2.PEM), signed, Fail, ".attestors[0].entries[1].keys: no matching signatures"},
		{"count 1 of 2", strings.Replace(keyEntry(w.k2.PEM, w.k1.PEM), "      - entries:", "      - count: 1\n        entries:", 1), signed, Pass, "verified image signatures for " + signed},
		{"multi-key PEM, count 1", strings.Replace(keyEntry(w.k2.PEM+"\n"+w.k1.PEM), "      - entries:", "      - count: 1\n        entries:", 1), signed, Pass, "verified image signatures for " + signed},
		{"annotations match", annotated("prod"), signed, Pass, "verified image signatures for " + signed},
		{"annotations mismatch", annotated("dev"), signed, Fail, ".attestors[0].entries[0].keys: no signature matched the required annotations"},
		{"missing tag", keyEntry(w.k1.PEM), w.reg.Host + "/app:nope", Fail, "image tag not found"},
		{"by digest, signed", keyEntry(w.k1.PEM), w.reg.Host + "/app@" + w.signed, Pass, "verified image signatures for " + w.reg.Host + "/app@" + w.signed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := w.engine(t, tt.entry)
			resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "default", tt.image)})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Results) != 1 {
				t.Fatalf("results = %+v", resp.Results)
			}
			r := resp.Results[0]
			if r.Status != tt.status || !strings.Contains(r.Message, tt.msg) {
				t.Errorf("got %s %q, want %s containing %q", r.Status, r.Message, tt.status, tt.msg)
			}
		})
	}
}

// TestRegistryDownIsErrorNotFail: an unreachable registry is "could not verify" (error; the
// failurePolicy decides), never "unsigned" (fail).
func TestRegistryDownIsErrorNotFail(t *testing.T) {
	w := newWorld(t)
	e := w.engine(t, keyEntry(w.k1.PEM))
	img := w.reg.Host + "/app:signed"
	w.reg.Close()
	resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "default", img)})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0]
	if r.Status != Error || !strings.HasPrefix(r.Message, "could not verify image "+img+": ") {
		t.Errorf("got %s %q, want error", r.Status, r.Message)
	}
	for _, op := range resp.Patches { // the annotations record fail; nothing is pinned
		if op.Op == "replace" {
			t.Errorf("an image was pinned although its digest is unknown: %+v", op)
		}
	}
}

// TestRequestBudget: after the tag is resolved once, a cold verification of one keyed image
// costs at most 3 registry requests; one image used by 3 containers is resolved and verified
// once.
func TestRequestBudget(t *testing.T) {
	w := newWorld(t)
	e := w.engine(t, keyEntry(w.k1.PEM))
	img := w.reg.Host + "/app:signed"
	before := w.served.Load()
	resp, err := e.Evaluate(context.Background(), Request{Object: pod(t, "default", img, img, img)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Status != Pass {
		t.Fatalf("results = %+v", resp.Results)
	}
	counts := w.counter.Snapshot()
	var heads, manifests, blobs, other int
	for k, n := range counts {
		switch {
		case k.Method == http.MethodHead && k.Kind == registry.KindManifest:
			heads += n
		case k.Kind == registry.KindManifest:
			manifests += n
		case k.Kind == registry.KindBlob:
			blobs += n
		case k.Kind == registry.KindPing:
		default:
			other += n
		}
	}
	t.Logf("requests: %v", counts)
	if heads != 1 {
		t.Errorf("the tag was resolved %d times, want once (counts %v)", heads, counts)
	}
	if after := manifests + blobs + other; after > 3 {
		t.Errorf("verification after the resolve cost %d requests, want at most 3 (counts %v)", after, counts)
	}
	if served := w.served.Load() - before; int(served) != w.counter.Total()-countStatus0(counts) {
		t.Errorf("registry served %d requests, client counted %d", served, w.counter.Total())
	}
	for i := 0; i < 3; i++ {
		got := resp.Object["spec"].(map[string]any)["containers"].([]any)[i].(map[string]any)["image"]
		if got != img+"@"+w.signed {
			t.Errorf("container %d image = %v", i, got)
		}
	}
}

// countStatus0 counts requests that never reached a server (ggcr's HTTPS probe of a
// plain-HTTP loopback registry).
func countStatus0(counts map[registry.RequestKey]int) int {
	n := 0
	for k, c := range counts {
		if k.Status == 0 {
			n += c
		}
	}
	return n
}

// TestRegistryErrorsAreUndecided: 401, 403, 429 and 5xx while fetching signatures are "could not
// verify" (error), never "no signatures" (fail) — Kyverno reports them as failures.
func TestRegistryErrorsAreUndecided(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			w := newWorld(t)
			var broken atomic.Bool
			broken.Store(true)
			reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
					if broken.Load() && strings.Contains(r.URL.Path, ".sig") {
						http.Error(rw, `{"errors":[{"code":"DENIED"}]}`, status)
						return
					}
					h.ServeHTTP(rw, r)
				})
			})
			defer reg.Close()
			ctx := context.Background()
			d, err := reg.Push(ctx, "app:signed")
			if err != nil {
				t.Fatal(err)
			}
			broken.Store(false)
			if err := reg.Sign(ctx, "app", d, w.k1.Private, nil, ""); err != nil {
				t.Fatal(err)
			}
			broken.Store(true)
			e := w.engine(t, keyEntry(w.k1.PEM))
			resp, err := e.Evaluate(ctx, Request{Object: pod(t, "default", reg.Host+"/app:signed")})
			if err != nil {
				t.Fatal(err)
			}
			if r := resp.Results[0]; r.Status != Error {
				t.Errorf("status %d: got %s %q, want error", status, r.Status, r.Message)
			}
		})
	}
}

// TestCosignOCI11: with cosignOCI11 the signature is found as an OCI 1.1 referrer first;
// without it vouch's type Cosign finds it too, after the legacy tag (Kyverno's does not:
// docs/COMPATIBILITY.md B1).
func TestCosignOCI11(t *testing.T) {
	w := newWorld(t)
	reg := fixture.StartRegistry(true, nil)
	defer reg.Close()
	ctx := context.Background()
	d, err := reg.Push(ctx, "app:referrer")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.SignOCI11(ctx, "app", d, w.k1.Private); err != nil {
		t.Fatal(err)
	}
	img := reg.Host + "/app:referrer"
	for _, tt := range []struct {
		entry string
		want  Status
	}{
		{strings.Replace(keyEntry(w.k1.PEM), "      attestors:", "      cosignOCI11: true\n      attestors:", 1), Pass},
		{keyEntry(w.k1.PEM), Pass},
	} {
		resp, err := w.engine(t, tt.entry).Evaluate(ctx, Request{Object: pod(t, "default", img)})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Results[0]; r.Status != tt.want {
			t.Errorf("got %s %q, want %s", r.Status, r.Message, tt.want)
		}
	}
}

// TestPinSatisfiesAnotherRulesVerifyDigest: the validation phase sees the object after every
// rule's mutation, as Kyverno's validating webhook does: a digest pinned by one policy
// satisfies another policy's verifyDigest, whatever their order.
func TestPinSatisfiesAnotherRulesVerifyDigest(t *testing.T) {
	w := newWorld(t)
	digestOnly := `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: a-digest}
spec:
  validationFailureAction: Enforce
  rules:
  - name: d
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false, required: false}]
---
`
	e := w.engine(t, keyEntry(w.k1.PEM))
	docs := digestOnly + policyYAML("  validationFailureAction: Enforce\n", keyEntry(w.k1.PEM))
	withBoth := newEngine(t, docs)
	withBoth.registry, withBoth.verifiers = e.registry, e.verifiers
	resp, err := withBoth.Evaluate(context.Background(), Request{Object: pod(t, "default", w.reg.Host+"/app:signed")})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 2 {
		t.Fatalf("results = %+v", resp.Results)
	}
	for _, r := range resp.Results {
		if r.Status != Pass {
			t.Errorf("%s/%s: %s %q, want pass", r.Policy.Name, r.Rule.Name, r.Status, r.Message)
		}
	}
}

// TestSignatureAlgorithm: a signature made over a SHA-512 digest verifies only with
// signatureAlgorithm sha512.
func TestSignatureAlgorithm(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d, err := w.reg.Push(ctx, "app:sha512")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(w.reg.Host + "/app@" + d)
	if err != nil {
		t.Fatal(err)
	}
	if err := cosign.Sign(ctx, ref, w.k1.Private, cosign.SignOptions{Hash: crypto.SHA512}); err != nil {
		t.Fatal(err)
	}
	for alg, want := range map[string]Status{"sha512": Pass, "sha256": Fail} {
		entry := strings.Replace(keyEntry(w.k1.PEM), "        - keys:", "        - signatureAlgorithm: "+alg+"\n          keys:", 1)
		resp, err := w.engine(t, entry).Evaluate(ctx, Request{Object: pod(t, "default", w.reg.Host+"/app:sha512")})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Results[0]; r.Status != want {
			t.Errorf("%s: got %s %q, want %s", alg, r.Status, r.Message, want)
		}
	}
}

// TestCachedPerRepository: the same digest in two repositories is verified in each (its
// signatures live next to it): a failure cached for the repository without a signature does
// not deny the one with a signature, and a pass does not admit the digest from a repository
// that holds none (as Kyverno, whose cache is keyed by the image reference).
func TestCachedPerRepository(t *testing.T) {
	w := newWorld(t)
	e := w.engine(t, keyEntry(w.k1.PEM))
	c, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	e.cache = c
	src, err := name.ParseReference(w.reg.Host + "/app@" + w.signed)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.ParseReference(w.reg.Host + "/mirror:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
	mirror, signed := w.reg.Host+"/mirror:v1", w.reg.Host+"/app:signed"
	for i, step := range []struct {
		image string
		want  Status
	}{{mirror, Fail}, {signed, Pass}, {mirror, Fail}, {signed, Pass}} {
		got := evaluate(t, e, pod(t, "default", step.image), nil)
		if len(got) != 1 || got[0].Status != step.want {
			t.Fatalf("step %d, %s: %+v, want %s", i, step.image, got, step.want)
		}
	}
	if st := c.Stats(); st.Misses != 2 || st.Hits != 2 {
		t.Errorf("cache stats %+v, want 2 misses (one per repository) and 2 hits", st)
	}
}
