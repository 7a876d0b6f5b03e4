package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/patch"
)

// multiArch is a multi-arch image pushed to a world's registry: the digest of its index
// (Docker manifest list) and of each platform manifest, by "os/arch".
type multiArch struct {
	index     string
	platforms map[string]string
}

// pushMultiArch pushes an index of a linux/amd64 and a linux/arm64 image as
// <host>/<repoTag>, as `docker buildx build --platform linux/amd64,linux/arm64 --push` does,
// and checks that the tag resolves to the index.
func pushMultiArch(t *testing.T, w *world, repoTag string) multiArch {
	t.Helper()
	ctx := context.Background()
	ma := multiArch{platforms: map[string]string{}}
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ma.platforms[p.OS+"/"+p.Architecture] = d.String()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	ref, err := name.ParseReference(w.reg.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ma.index = d.String()
	// The fixture is what it claims: the tag names the index, whose children are the platforms.
	desc, err := remote.Head(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != ma.index || !desc.MediaType.IsIndex() {
		t.Fatalf("%s resolves to %s (%s), want the index %s", ref, desc.Digest, desc.MediaType, ma.index)
	}
	for _, dg := range ma.platforms {
		if dg == ma.index {
			t.Fatalf("a platform manifest has the index digest %s", dg)
		}
	}
	return ma
}

// TestLandscapeGroup12MultiArch (landscape §4.4 group 12): for a multi-arch image referenced
// by tag, the digest verified — signatures and attestations — and pinned is the digest the
// registry's tag points at, the index digest, never a platform manifest's. Signatures and
// attestations on a platform manifest neither satisfy nor rescue the index (no fallback to
// the children, no platform selection in admission); they count only for a Pod naming that
// platform manifest by digest. The children's signatures do not matter when the index is
// signed. This mirrors Kyverno: its registry client and cosign resolve the tag to the
// descriptor the registry returns (the index), cosign checks the signature payload's
// docker-manifest-digest and the in-toto subject against that digest (`cosign sign image:tag`
// signs the index), and mutateDigest writes `image:tag@<that digest>` (spec §2.6, §2.7,
// §3.2, §3.3) — also when the verification fails (spec §2.6 step 4).
func TestLandscapeGroup12MultiArch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type want struct {
		status  Status
		message string // exact, or a prefix when prefix is set
		prefix  bool
		image   string // the image written in the Pod after mutation
	}
	check := func(t *testing.T, e *Engine, image string, wt want) *Response {
		t.Helper()
		resp, err := e.Evaluate(ctx, Request{Object: pod(t, "default", image)})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Results) != 1 {
			t.Fatalf("results = %+v", resp.Results)
		}
		r := resp.Results[0]
		okMsg := r.Message == wt.message || wt.prefix && strings.HasPrefix(r.Message, wt.message)
		if r.Status != wt.status || !okMsg {
			t.Errorf("%s: got %s %q\nwant %s %q (prefix %v)", image, r.Status, r.Message, wt.status, wt.message, wt.prefix)
		}
		if got := containerImage(resp, 0); got != wt.image {
			t.Errorf("%s: image written = %v, want %s", image, got, wt.image)
		}
		return resp
	}
	// verifiedDigest asserts the digest the engine reports it verified (and pinned) for ref.
	verifiedDigest := func(t *testing.T, resp *Response, ref, digest string) {
		t.Helper()
		im, ok := imageResults(t, resp)[ref]
		if !ok || im.Digest != digest {
			t.Errorf("image result for %s = %+v, want digest %s", ref, im, digest)
		}
	}
	sign := func(t *testing.T, w *world, digest string, k *fixture.Key) {
		t.Helper()
		if err := w.reg.Sign(ctx, "multi", digest, k.Private, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	attest := func(t *testing.T, w *world, digest, predicateType string, predicate any) {
		t.Helper()
		if err := w.reg.Attest(ctx, "multi", digest, fixture.AttestSpec{Key: w.k1.Private, PredicateType: predicateType, Predicate: predicate}); err != nil {
			t.Fatal(err)
		}
	}
	const keysPath = ".attestors[0].entries[0].keys"
	const attPath = ".attestations[0].attestors[0].entries[0].keys"
	const attFailed = "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: "

	// 1 (and 5): only the index is signed; its platform manifests carry no signature at all.
	t.Run("index signed: by tag passes, pinned to the index digest", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		ma := pushMultiArch(t, w, "multi:v1")
		sign(t, w, ma.index, w.k1)
		e := w.engine(t, keyEntry(w.k1.PEM))
		tag := w.reg.Host + "/multi:v1"
		resp := check(t, e, tag, want{Pass, "verified image signatures for " + tag, false, tag + "@" + ma.index})
		verifiedDigest(t, resp, tag, ma.index)
		ann := resp.Object["metadata"].(map[string]any)["annotations"].(map[string]any)
		if want := `{"` + w.reg.Host + "/multi@" + ma.index + `":"pass"}`; ann[patch.AnnotationVerified] != want {
			t.Errorf("%s = %v, want %s", patch.AnnotationVerified, ann[patch.AnnotationVerified], want)
		}
		// A platform manifest by digest is another image: the index's signature is not its.
		amd64 := w.reg.Host + "/multi@" + ma.platforms["linux/amd64"]
		check(t, e, amd64, want{Fail, "failed to verify image " + amd64 + ": " + keysPath + ": no signatures found", false, amd64})
	})

	t.Run("only a platform manifest signed: by tag fails, by platform digest passes", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		ma := pushMultiArch(t, w, "multi:v1")
		sign(t, w, ma.platforms["linux/amd64"], w.k1)
		e := w.engine(t, keyEntry(w.k1.PEM))
		tag := w.reg.Host + "/multi:v1"
		resp := check(t, e, tag, want{Fail, "failed to verify image " + tag + ": " + keysPath + ": no signatures found", false, tag + "@" + ma.index})
		verifiedDigest(t, resp, tag, ma.index)
		if d := resp.Decide(); d.Allowed {
			t.Errorf("decision %+v, want a denial", d)
		}
		amd64 := w.reg.Host + "/multi@" + ma.platforms["linux/amd64"]
		resp = check(t, e, amd64, want{Pass, "verified image signatures for " + amd64, false, amd64})
		verifiedDigest(t, resp, amd64, ma.platforms["linux/amd64"])
		arm64 := w.reg.Host + "/multi@" + ma.platforms["linux/arm64"]
		check(t, e, arm64, want{Fail, "failed to verify image " + arm64 + ": " + keysPath + ": no signatures found", false, arm64})
	})

	t.Run("index signed by another key: no fallback to the platform manifests", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		ma := pushMultiArch(t, w, "multi:v1")
		sign(t, w, ma.index, w.k2)
		for _, d := range ma.platforms {
			sign(t, w, d, w.k1)
		}
		e := w.engine(t, keyEntry(w.k1.PEM))
		tag := w.reg.Host + "/multi:v1"
		resp := check(t, e, tag, want{Fail, "failed to verify image " + tag + ": " + keysPath + ": no matching signatures: ", true, tag + "@" + ma.index})
		verifiedDigest(t, resp, tag, ma.index)
		// The same policy with k2 passes: the index's signature is the one read.
		e2 := w.engine(t, keyEntry(w.k2.PEM))
		check(t, e2, tag, want{Pass, "verified image signatures for " + tag, false, tag + "@" + ma.index})
	})

	t.Run("attestations", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		entry := attestEntry([]string{"      - type: " + slsaType + "\n" + keysYAML(w.k1.PEM) + threeConditions}, "")
		e := w.engine(t, entry)
		repo := w.reg.Host + "/multi"

		// On the index: the Pod by tag passes, pinned to the index.
		onIndex := pushMultiArch(t, w, "multi:on-index")
		attest(t, w, onIndex.index, slsaType, provenance(builderID))
		tag := repo + ":on-index"
		resp := check(t, e, tag, want{Pass, "verified image attestations for " + repo + "@" + onIndex.index, false, tag + "@" + onIndex.index})
		verifiedDigest(t, resp, tag, onIndex.index)

		// Only on a platform manifest: the index has no attestation at all (Kyverno's
		// "Attestation missing"); the platform manifest by digest passes.
		onPlatform := pushMultiArch(t, w, "multi:on-platform")
		amd64 := onPlatform.platforms["linux/amd64"]
		attest(t, w, amd64, slsaType, provenance(builderID))
		tag = repo + ":on-platform"
		resp = check(t, e, tag, want{Fail, attFailed + "no matching attestations: no attestations found", false, tag + "@" + onPlatform.index})
		verifiedDigest(t, resp, tag, onPlatform.index)
		check(t, e, repo+"@"+amd64, want{Pass, "verified image attestations for " + repo + "@" + amd64, false, repo + "@" + amd64})

		// The index attested with another predicate type, the platform manifest with the
		// required one: Kyverno's predicate-type message, for the index.
		mixed := pushMultiArch(t, w, "multi:mixed")
		attest(t, w, mixed.index, fixture.CosignVuln, map[string]any{})
		attest(t, w, mixed.platforms["linux/amd64"], slsaType, provenance(builderID))
		attest(t, w, mixed.platforms["linux/arm64"], slsaType, provenance(builderID))
		tag = repo + ":mixed"
		resp = check(t, e, tag, want{Fail, attFailed + attPath + ": attestions not found for predicate type " + slsaType, false, tag + "@" + mixed.index})
		verifiedDigest(t, resp, tag, mixed.index)
	})
}
