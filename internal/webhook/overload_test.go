package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/verify"
)

// holdingRegistry resolves every tag to a digest derived from the reference, except that it
// holds the resolution of repositories named "held" until release is closed.
type holdingRegistry struct {
	resolves atomic.Int64
	holding  chan struct{} // receives when a held resolution starts
	release  chan struct{}
}

func (r *holdingRegistry) Resolve(ctx context.Context, ref imageref.Ref, _ bool) (string, error) {
	r.resolves.Add(1)
	if strings.HasSuffix(ref.Repository(), "/held") {
		r.holding <- struct{}{}
		select {
		case <-r.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return fakeDigest(ref.Repository()), nil
}

func fakeDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// passingVerifier verifies every subject: the test is about admission control, not signatures.
type passingVerifier struct{ calls atomic.Int64 }

func (v *passingVerifier) Verify(_ context.Context, s verify.Subject, _ *verify.Entry, _ *verify.Attestor) (*verify.Evidence, error) {
	v.calls.Add(1)
	return &verify.Evidence{Digest: s.Digest}, nil
}

// overloadPolicies are two policies verifying images with a key: strict.example under
// failurePolicy Fail, lenient.example under Ignore.
func overloadPolicies(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	doc := func(name, failurePolicy, host string) string {
		return `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: ` + name + `}
spec:
  validationFailureAction: Enforce
  failurePolicy: ` + failurePolicy + `
  rules:
  - name: signed
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["` + host + `/*"]
      attestors:
      - entries:
        - keys:
            rekor: {ignoreTlog: true}
            ctlog: {ignoreSCT: true}
            publicKeys: |-
              ` + strings.ReplaceAll(key, "\n", "\n              ") + "\n"
	}
	return doc("strict", "Fail", "strict.example") + "---\n" + doc("lenient", "Ignore", "lenient.example")
}

// TestOverloadAnswersAtOnceAsCouldNotVerify: with --max-admissions-in-flight 1 and one
// admission held at the registry, further admissions do not wait for it. Each is evaluated
// with its budget already spent: an image that needs the registry is "could not verify …:
// vouch is overloaded", denied under failurePolicy Fail and admitted with a warning under
// Ignore; a request no policy applies to is allowed; a cached verification of an image given
// by digest still passes; the registry is not asked. Once the held admission is answered, the
// next request is evaluated normally.
func TestOverloadAnswersAtOnceAsCouldNotVerify(t *testing.T) {
	docs, err := manifest.Split("p.yaml", []byte(overloadPolicies(t)))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		t.Fatal(err)
	}
	reg := &holdingRegistry{holding: make(chan struct{}, 1), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(reg.release) }) }
	t.Cleanup(release)
	verifier := &passingVerifier{}
	results, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Policies: set, Registry: reg, Cache: results,
		Verifiers: map[string]verify.Verifier{"Cosign": verifier}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := SelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	s, err := New(Options{TLS: cfg, Engine: func() *engine.Engine { return eng }, MaxAdmissionsInFlight: 1,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()

	type answer struct {
		Allowed  bool
		Warnings []string
		Patch    []byte
		Status   struct{ Message string }
		took     time.Duration
	}
	var slowest time.Duration // of the answers
	send := func(path, uid string, images ...string) answer {
		t.Helper()
		var containers []string
		for i, im := range images {
			containers = append(containers, `{"name":"c`+string(rune('0'+i))+`","image":"`+im+`"}`)
		}
		pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[` + strings.Join(containers, ",") + `]}}`
		req := httptest.NewRequest(http.MethodPost, path+"?timeout=10s", strings.NewReader(admissionReview("admission.k8s.io/v1", uid, "CREATE", pod)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		var out struct{ Response answer }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Errorf("%s: %v\n%s", uid, err, rec.Body.String())
		}
		out.Response.took = time.Since(start)
		if out.Response.took > slowest {
			slowest = out.Response.took
		}
		return out.Response
	}
	metric := func(series string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		for _, line := range strings.Split(rec.Body.String(), "\n") {
			if name, v, ok := strings.Cut(line, " "); ok && name == series {
				return v
			}
		}
		return "(absent)"
	}

	// Before the storm: an image by digest is verified and cached.
	pinned := "strict.example/app@" + fakeDigest("strict.example/app")
	if a := send("/mutate", "warm", pinned); !a.Allowed {
		t.Fatalf("%s before the overload: denied: %s", pinned, a.Status.Message)
	}

	// One admission held at the registry fills the one place.
	heldDone := make(chan answer, 1)
	go func() { heldDone <- send("/mutate", "held", "strict.example/held:1") }()
	select {
	case <-reg.holding:
	case <-time.After(10 * time.Second):
		t.Fatal("the held admission never reached the registry")
	}
	if v := metric("vouch_admissions_in_flight"); v != "1" {
		t.Errorf("vouch_admissions_in_flight = %s while one admission is held, want 1", v)
	}
	resolvesBefore, verifiesBefore := reg.resolves.Load(), verifier.calls.Load()
	slowest = 0

	const overloaded = "vouch is overloaded (1 admissions in flight)"
	// Answered at once: far below the 9 s budget the held request is waiting in. (The
	// answers take microseconds; the bound leaves room for a loaded test machine.)
	const atOnce = time.Second
	for _, path := range []string{"/mutate", "/validate"} {
		a := send(path, "fail", "strict.example/app:2")
		if a.Allowed || !strings.Contains(strings.Join(strings.Fields(a.Status.Message), " "), "could not verify image strict.example/app:2: "+overloaded) {
			t.Errorf("%s, failurePolicy Fail, uncached image while overloaded: allowed=%v %q, want denied naming the overload", path, a.Allowed, a.Status.Message)
		}
		if a.took > atOnce {
			t.Errorf("%s, failurePolicy Fail: answered after %v, want at once", path, a.took)
		}
		a = send(path, "ignore", "lenient.example/app:2")
		if !a.Allowed || len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "could not verify image lenient.example/app:2: "+overloaded) {
			t.Errorf("%s, failurePolicy Ignore while overloaded: allowed=%v warnings %q, want admitted with a warning naming the overload", path, a.Allowed, a.Warnings)
		}
		if strings.Contains(string(a.Patch), "@sha256:") {
			t.Errorf("%s, failurePolicy Ignore while overloaded: patch %s, want no pin (no digest was resolved)", path, a.Patch)
		}
		if a.took > atOnce {
			t.Errorf("%s, failurePolicy Ignore: answered after %v, want at once", path, a.took)
		}
		if a = send(path, "unmatched", "unrelated.example/app:1"); !a.Allowed || len(a.Warnings) != 0 || a.took > atOnce {
			t.Errorf("%s, no policy applies, while overloaded: allowed=%v warnings %q after %v, want allowed at once", path, a.Allowed, a.Warnings, a.took)
		}
		if a = send(path, "cached", pinned); !a.Allowed || len(a.Warnings) != 0 || a.took > atOnce {
			t.Errorf("%s, cached image by digest, while overloaded: allowed=%v warnings %q %q after %v, want allowed from the cache", path, a.Allowed, a.Warnings, a.Status.Message, a.took)
		}
	}
	t.Logf("slowest answer while overloaded: %v", slowest)
	if n := reg.resolves.Load() - resolvesBefore; n != 0 {
		t.Errorf("the registry was asked %d times by overloaded admissions, want 0", n)
	}
	if n := verifier.calls.Load() - verifiesBefore; n != 0 {
		t.Errorf("%d verifications ran for overloaded admissions, want 0", n)
	}
	if v := metric(`vouch_admissions_overloaded_total{webhook="mutate"}`); v != "4" {
		t.Errorf(`vouch_admissions_overloaded_total{webhook="mutate"} = %s, want 4`, v)
	}
	if v := metric(`vouch_admissions_overloaded_total{webhook="validate"}`); v != "4" {
		t.Errorf(`vouch_admissions_overloaded_total{webhook="validate"} = %s, want 4`, v)
	}

	// The held admission completes normally, and the place is free again.
	release()
	select {
	case a := <-heldDone:
		if !a.Allowed || !strings.Contains(string(a.Patch), "@sha256:") {
			t.Errorf("held admission: allowed=%v %q patch %s, want allowed and pinned", a.Allowed, a.Status.Message, a.Patch)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held admission was not answered after its release")
	}
	if v := metric("vouch_admissions_in_flight"); v != "0" {
		t.Errorf("vouch_admissions_in_flight = %s after the held admission, want 0", v)
	}
	if a := send("/mutate", "after", "strict.example/app:2"); !a.Allowed || len(a.Warnings) != 0 || !strings.Contains(string(a.Patch), "@sha256:") {
		t.Errorf("after the overload: allowed=%v warnings %q %q patch %s, want evaluated normally (verified, pinned)", a.Allowed, a.Warnings, a.Status.Message, a.Patch)
	}

	// At the default level, overloaded answers are not logged one by one: one warning says
	// how many there were.
	var perRequest, warnings int
	for _, line := range strings.Split(strings.TrimSpace(logs.b.String()), "\n") {
		var l struct {
			Level, Msg string
			UID        string
			Overloaded any
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch {
		case l.UID == "fail" || l.UID == "ignore" || l.UID == "unmatched" || l.UID == "cached":
			perRequest++
		case l.Level == "WARN" && strings.Contains(l.Msg, "overloaded"):
			warnings++
			if l.Overloaded != float64(1) {
				t.Errorf("the first overload warning counts %v overloaded requests, want 1 (itself)", l.Overloaded)
			}
		}
	}
	if perRequest != 0 || warnings != 1 {
		t.Errorf("logs: %d lines for overloaded requests, %d overload warnings; want 0 and 1:\n%s", perRequest, warnings, logs.b.String())
	}
}

// TestMaxAdmissionsInFlightUnboundedByDefault: Options without MaxAdmissionsInFlight bound
// nothing, and a negative bound is refused.
func TestMaxAdmissionsInFlightUnboundedByDefault(t *testing.T) {
	s := testServer(t, true)
	for i := 0; i < 100; i++ {
		if _, ok := s.acquire(); !ok {
			t.Fatalf("place %d refused without a bound", i+1)
		}
	}
	cfg, _, err := SelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{TLS: cfg, Engine: func() *engine.Engine { return nil }, MaxAdmissionsInFlight: -1}); err == nil {
		t.Error("MaxAdmissionsInFlight -1 accepted")
	}
}

// BenchmarkOverloadedAnswer is the cost of an answer beyond the bound, through the handler
// (no TLS): a Pod with 3 images by tag, answered "could not verify … overloaded"; and, for
// comparison, the same Pod by digest evaluated normally from the cache, and a Pod no policy
// applies to.
func BenchmarkOverloadedAnswer(b *testing.B) {
	t := &testing.T{}
	docs, err := manifest.Split("p.yaml", []byte(overloadPolicies(t)))
	if err != nil {
		b.Fatal(err)
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		b.Fatal(err)
	}
	results, err := cache.New(cache.Options{Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Policies: set, Registry: &holdingRegistry{}, Cache: results,
		Verifiers: map[string]verify.Verifier{"Cosign": &passingVerifier{}}})
	if err != nil {
		b.Fatal(err)
	}
	cfg, _, err := SelfSigned([]string{"localhost"})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{TLS: cfg, Engine: func() *engine.Engine { return eng }, MaxAdmissionsInFlight: 1,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	review := func(images ...string) string {
		var containers []string
		for i, im := range images {
			containers = append(containers, `{"name":"c`+string(rune('0'+i))+`","image":"`+im+`"}`)
		}
		return admissionReview("admission.k8s.io/v1", "u", "CREATE",
			`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[`+strings.Join(containers, ",")+`]}}`)
	}
	var byTag, byDigest []string
	for _, name := range []string{"frontend", "backend", "sidecar"} {
		byTag = append(byTag, "strict.example/"+name+":v1")
		byDigest = append(byDigest, "strict.example/"+name+"@"+fakeDigest("strict.example/"+name))
	}
	run := func(b *testing.B, body, want string) {
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/mutate?timeout=10s", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if !strings.Contains(rec.Body.String(), want) {
				b.Fatalf("answer %s, want %s", rec.Body.String(), want)
			}
		}
	}
	digests := review(byDigest...)
	run(b, digests, `"allowed":true`) // verifies and caches the 3 digests
	b.Run("evaluated/by-digest-cached", func(b *testing.B) { run(b, digests, `"allowed":true`) })
	release, _ := s.acquire() // the one place is taken: every request below is beyond the bound
	defer release()
	b.Run("overloaded/by-tag", func(b *testing.B) { run(b, review(byTag...), "vouch is overloaded") })
	b.Run("overloaded/by-digest-cached", func(b *testing.B) { run(b, digests, `"allowed":true`) })
	b.Run("overloaded/no-policy-applies", func(b *testing.B) { run(b, review("unrelated.example/app:1"), `"allowed":true`) })
}
