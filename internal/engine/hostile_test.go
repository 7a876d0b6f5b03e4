package engine

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/cache"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// hostileRegistry starts a registry on 127.0.0.1 that answers the ping and hands every other
// request to h.
func hostileRegistry(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// imageResults returns the first rule's image results by reference.
func imageResults(t *testing.T, resp *Response) map[string]ImageResult {
	t.Helper()
	if len(resp.Results) != 1 {
		t.Fatalf("results = %+v", resp.Results)
	}
	out := map[string]ImageResult{}
	for _, im := range resp.Results[0].Images {
		out[im.Ref.String()] = im
	}
	return out
}

// TestLandscapeGroup10HostileRegistriesCostOneImage (landscape §4.4 groups 9 and 10): in one
// Pod, an image on a registry that trickles its manifest and one on a registry that never
// answers HEAD are each "could not verify" (error) within the request's budget, and the image
// on a healthy registry is still verified and pinned; the admission is denied (failurePolicy
// Fail) naming both.
func TestLandscapeGroup10HostileRegistriesCostOneImage(t *testing.T) {
	w := newWorld(t)
	trickle := hostileRegistry(t, func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		rw.WriteHeader(http.StatusOK) // no Docker-Content-Digest: Resolve GETs the manifest
		for r.Method == http.MethodGet && r.Context().Err() == nil {
			rw.Write([]byte(" "))
			rw.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	silent := hostileRegistry(t, func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	})
	e := w.engine(t, keyEntry(w.k1.PEM))
	good, slow, mute := w.reg.Host+"/app:signed", trickle+"/app:v1", silent+"/app:v1"
	const budget = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	resp, err := e.Evaluate(ctx, Request{Object: pod(t, "default", slow, good, mute)})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed > budget+time.Second {
		t.Errorf("Evaluate took %v with a budget of %v", elapsed, budget)
	}
	images := imageResults(t, resp)
	if im := images[good]; im.Status != Pass || im.Digest != w.signed {
		t.Errorf("%s: %s %q (digest %s), want pass at %s", good, im.Status, im.Message, im.Digest, w.signed)
	}
	for _, img := range []string{slow, mute} {
		im := images[img]
		t.Logf("%s: %s %q", img, im.Status, im.Message)
		if im.Status != Error || !strings.HasPrefix(im.Message, "could not verify image "+img+": ") || !strings.Contains(im.Message, "time budget") {
			t.Errorf("%s: %s %q, want error \"could not verify image %s: ... time budget\"", img, im.Status, im.Message, img)
		}
	}
	d := resp.Decide()
	if d.Allowed || !strings.Contains(d.Message, slow) || !strings.Contains(d.Message, mute) {
		t.Errorf("decision %+v, want a denial naming %s and %s", d, slow, mute)
	}
	if got := containerImage(resp, 1); got != good+"@"+w.signed {
		t.Errorf("healthy image written as %v, want pinned", got)
	}
}

func containerImage(resp *Response, i int) any {
	return resp.Object["spec"].(map[string]any)["containers"].([]any)[i].(map[string]any)["image"]
}

// TestLandscapeGroup1TagFlipPinsVerifiedDigest (CVE-2022-47633): a registry that answers the
// same tag with the signed and the unsigned image on alternate requests is asked for the tag
// once per evaluation, and the digest pinned is always the digest verified: the signed one
// with a pass, never the unsigned one with a pass.
func TestLandscapeGroup1TagFlipPinsVerifiedDigest(t *testing.T) {
	w := newWorld(t)
	var flips, tagReads atomic.Int32
	reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/app/manifests/flip" {
				tagReads.Add(1)
				d := w.signed
				if flips.Add(1)%2 == 0 {
					d = w.unsigned
				}
				r.URL.Path = "/v2/app/manifests/" + d
			}
			h.ServeHTTP(rw, r)
		})
	})
	t.Cleanup(reg.Close)
	ctx := context.Background()
	for _, tag := range []string{"app:signed", "app:unsigned"} { // the same images, in this registry
		d, err := reg.Push(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		if tag == "app:signed" {
			w.signed = d
			if err := reg.Sign(ctx, "app", d, w.k1.Private, nil, ""); err != nil {
				t.Fatal(err)
			}
		} else {
			w.unsigned = d
		}
	}
	e := w.engine(t, keyEntry(w.k1.PEM))
	img := reg.Host + "/app:flip"
	seen := map[Status]int{}
	for i := range 6 {
		before := tagReads.Load()
		resp, err := e.Evaluate(ctx, Request{Object: pod(t, "default", img, img)})
		if err != nil {
			t.Fatal(err)
		}
		if n := tagReads.Load() - before; n != 1 {
			t.Errorf("evaluation %d read the tag %d times, want once", i, n)
		}
		im := imageResults(t, resp)[img]
		seen[im.Status]++
		switch {
		case im.Status == Pass && im.Digest != w.signed:
			t.Errorf("evaluation %d: pass at %s, which is not the signed digest", i, im.Digest)
		case im.Status == Fail && im.Digest != w.unsigned:
			t.Errorf("evaluation %d: fail at %s, want the unsigned digest", i, im.Digest)
		case im.Status != Pass && im.Status != Fail:
			t.Errorf("evaluation %d: %s %q", i, im.Status, im.Message)
		}
		for c := range 2 {
			if got := containerImage(resp, c); got != img+"@"+im.Digest {
				t.Errorf("evaluation %d: container %d pinned to %v, want the verified %s", i, c, got, im.Digest)
			}
		}
		if d := resp.Decide(); d.Allowed != (im.Status == Pass) {
			t.Errorf("evaluation %d: allowed=%v for %s", i, d.Allowed, im.Status)
		}
	}
	if seen[Pass] == 0 || seen[Fail] == 0 {
		t.Errorf("outcomes %v: the registry did not flip", seen)
	}
}

// TestLandscapeGroup2TagMovedAfterCachedPass (landscape §4.1, Kyverno's tag-keyed cache): after
// a pass is cached, a tag moved to an unsigned image resolves to the new digest, misses the
// digest-keyed cache, is verified afresh and fails; the old verified digest is never pinned
// for it.
func TestLandscapeGroup2TagMovedAfterCachedPass(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	first, err := w.reg.Push(ctx, "app:moving")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.reg.Sign(ctx, "app", first, w.k1.Private, nil, ""); err != nil {
		t.Fatal(err)
	}
	results, err := cache.New(cache.Options{Enabled: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e := w.engine(t, keyEntry(w.k1.PEM))
	e.cache = results
	img := w.reg.Host + "/app:moving"
	evaluate := func(what string) (ImageResult, int64) {
		t.Helper()
		before := w.served.Load()
		resp, err := e.Evaluate(ctx, Request{Object: pod(t, "default", img)})
		if err != nil {
			t.Fatal(err)
		}
		im := imageResults(t, resp)[img]
		if got := containerImage(resp, 0); got != img+"@"+im.Digest {
			t.Errorf("%s: pinned %v, want the verified %s", what, got, im.Digest)
		}
		return im, w.served.Load() - before
	}
	if im, _ := evaluate("first"); im.Status != Pass || im.Digest != first {
		t.Fatalf("first: %s %q at %s, want pass at %s", im.Status, im.Message, im.Digest, first)
	}
	if im, requests := evaluate("cached"); im.Status != Pass || im.Digest != first || requests != 1 {
		t.Fatalf("cached: %s at %s after %d requests, want pass at %s after 1 (the tag)", im.Status, im.Digest, requests, first)
	}
	moved, err := w.reg.Push(ctx, "app:moving") // a new, unsigned image under the tag
	if err != nil {
		t.Fatal(err)
	}
	im, _ := evaluate("moved")
	if im.Status != Fail || im.Digest != moved || !strings.Contains(im.Message, "no signatures found") {
		t.Errorf("moved: %s %q at %s, want fail (no signatures) at %s", im.Status, im.Message, im.Digest, moved)
	}
}

// TestLandscapeGroup9EndlessSignatureLayer (landscape §4.2, CVE-2024-29902): a signature layer
// served without end costs at most its size, and never passes.
func TestLandscapeGroup9EndlessSignatureLayer(t *testing.T) {
	w := newWorld(t)
	var endless atomic.Bool
	var written atomic.Int64
	reg := fixture.StartRegistry(false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if !endless.Load() || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
				h.ServeHTTP(rw, r)
				return
			}
			chunk := []byte(strings.Repeat("{", 32<<10))
			for end := time.Now().Add(5 * time.Second); r.Context().Err() == nil && time.Now().Before(end); {
				n, err := rw.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
	})
	t.Cleanup(reg.Close)
	ctx := context.Background()
	d, err := reg.Push(ctx, "app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Sign(ctx, "app", d, w.k1.Private, nil, ""); err != nil {
		t.Fatal(err)
	}
	endless.Store(true)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := w.engine(t, keyEntry(w.k1.PEM)).Evaluate(ctx, Request{Object: pod(t, "default", reg.Host+"/app:v1")})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0]
	t.Logf("%s %q after %v, server wrote %d KiB", r.Status, r.Message, time.Since(start), written.Load()>>10)
	if r.Status == Pass {
		t.Errorf("an endless signature layer passed: %q", r.Message)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if w := written.Load(); w > 64<<20 {
		t.Errorf("the registry wrote %d bytes before vouch hung up", w)
	}
}

// TestLandscapeGroup9FailingRegistryOpensCircuit (landscape §4.4 group 9, 429/5xx storms): a
// registry answering 503 to everything makes its images "could not verify" (error, never
// "unsigned"); once its circuit opens, later admissions get that answer at once, naming the
// open circuit, without a request reaching it — while images on a healthy registry in the same
// Pod are still verified.
func TestLandscapeGroup9FailingRegistryOpensCircuit(t *testing.T) {
	w := newWorld(t)
	var requests atomic.Int32
	down := hostileRegistry(t, func(rw http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(rw, "upstream unavailable", http.StatusServiceUnavailable)
	})
	e := w.engine(t, keyEntry(w.k1.PEM))
	regs, err := registry.NewPair(registry.Options{BreakerThreshold: 2, BreakerCooldown: time.Minute, RetryDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cv, err := cosign.New(cosign.Options{Remote: regs.RemoteOptions})
	if err != nil {
		t.Fatal(err)
	}
	e.registry, e.verifiers = regs, map[string]verify.Verifier{"Cosign": cv}
	good, bad := w.reg.Host+"/app:signed", down+"/app:v1"
	for i := range 4 {
		before := requests.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		resp, err := e.Evaluate(ctx, Request{Object: pod(t, "default", good, bad)})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		images := imageResults(t, resp)
		if im := images[good]; im.Status != Pass {
			t.Errorf("evaluation %d: %s: %s %q, want pass", i, good, im.Status, im.Message)
		}
		im := images[bad]
		t.Logf("evaluation %d after %v, %d requests: %s %q", i, elapsed, requests.Load()-before, im.Status, im.Message)
		if im.Status != Error || !strings.HasPrefix(im.Message, "could not verify image "+bad+": ") {
			t.Errorf("evaluation %d: %s %q, want error", i, im.Status, im.Message)
		}
		if i >= 2 {
			if !strings.Contains(im.Message, "registry "+down+" is unavailable (circuit open)") {
				t.Errorf("evaluation %d: %q does not name the open circuit", i, im.Message)
			}
			if n := requests.Load() - before; n != 0 {
				t.Errorf("evaluation %d: the failing registry got %d requests with its circuit open", i, n)
			}
		}
	}
}
