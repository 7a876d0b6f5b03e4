package registry_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vouchproject/vouch/internal/registry"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	host := serve(t, quietRegistry())
	img, dig := push(t, host, "app", "v1")
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	c := newClient(t, registry.Options{})

	tests := []struct {
		name string
		ref  name.Reference
		code registry.Code
	}{
		{"tag", mustTag(t, host+"/app:v1"), ""},
		{"digest", dig, ""},
		{"tag and digest", mustDigest(t, host+"/app:v1@"+want.String()), ""},
		{"missing tag", mustTag(t, host+"/app:nope"), registry.CodeNotFound},
		{"missing repository", mustTag(t, host+"/nope:v1"), registry.CodeNotFound},
		{"missing digest", mustDigest(t, host+"/app@sha256:"+strings.Repeat("0", 64)), registry.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Resolve(ctxTimeout(t, 10*time.Second), tc.ref)
			if tc.code != "" {
				if registry.Classify(err) != tc.code {
					t.Fatalf("Resolve(%s) error %v, want code %s", tc.ref, err, tc.code)
				}
				if !strings.HasPrefix(err.Error(), "resolving "+tc.ref.String()+": ") {
					t.Errorf("error %q does not start with %q", err, "resolving "+tc.ref.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%s): %v", tc.ref, err)
			}
			wantDesc := v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: want}
			if diff := cmp.Diff(wantDesc, got); diff != "" {
				t.Errorf("Resolve(%s) (-want +got):\n%s", tc.ref, diff)
			}
		})
	}
}

func TestManifestAndBlob(t *testing.T) {
	t.Parallel()
	host := serve(t, quietRegistry())
	img, dig := push(t, host, "app", "v1")
	raw, _ := img.RawManifest()
	c := newClient(t, registry.Options{})
	ctx := ctxTimeout(t, 10*time.Second)

	for _, ref := range []name.Reference{mustTag(t, host+"/app:v1"), dig} {
		d, err := c.Manifest(ctx, ref)
		if err != nil {
			t.Fatalf("Manifest(%s): %v", ref, err)
		}
		if diff := cmp.Diff(raw, d.Manifest); diff != "" {
			t.Errorf("Manifest(%s) bytes (-want +got):\n%s", ref, diff)
		}
		if d.Digest.String() != dig.DigestStr() {
			t.Errorf("Manifest(%s) digest %s, want %s", ref, d.Digest, dig.DigestStr())
		}
	}

	layers, _ := img.Layers()
	for i, l := range layers {
		h, _ := l.Digest()
		rc, _ := l.Compressed()
		want := readAll(t, rc)
		got, err := c.Blob(ctx, dig.Context().Digest(h.String()))
		if err != nil {
			t.Fatalf("Blob(layer %d): %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Blob(layer %d) (-want +got):\n%s", i, diff)
		}
	}
	_, err := c.Blob(ctx, dig.Context().Digest("sha256:"+strings.Repeat("1", 64)))
	if !errors.Is(err, registry.ErrNotFound) || !strings.HasPrefix(err.Error(), "fetching blob ") {
		t.Errorf("Blob(missing) = %v, want not-found \"fetching blob …\"", err)
	}
}

// pushReferrer writes an artifact manifest with the given config media type (ggcr's registry
// reports it as the artifactType) and subject.
func pushReferrer(t *testing.T, subject name.Digest, subjectDesc v1.Descriptor, artifactType string) v1.Hash {
	t.Helper()
	art := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.MediaType(artifactType))
	art = mutate.Subject(art, subjectDesc).(v1.Image)
	h, err := art.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(subject.Context().Digest(h.String()), art); err != nil {
		t.Fatalf("pushing referrer: %v", err)
	}
	return h
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	const sigType, attType = "application/vnd.vouch.test.sig", "application/vnd.vouch.test.att"
	for _, api := range []bool{true, false} {
		t.Run(map[bool]string{true: "referrers API", false: "tag schema fallback"}[api], func(t *testing.T) {
			t.Parallel()
			host := serve(t, quietRegistry(ggcrregistry.WithReferrersSupport(api)))
			img, dig := push(t, host, "app", "v1")
			_, bare := push(t, host, "app", "bare")
			raw, _ := img.RawManifest()
			mt, _ := img.MediaType()
			subject := v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: mustHash(t, dig.DigestStr())}
			sig := pushReferrer(t, dig, subject, sigType)
			att := pushReferrer(t, dig, subject, attType)

			m := &registry.Counter{}
			c := newClient(t, registry.Options{Metrics: m})
			ctx := ctxTimeout(t, 10*time.Second)

			digests := func(ds []v1.Descriptor) []string {
				out := []string{}
				for _, d := range ds {
					out = append(out, d.Digest.String()+" "+d.ArtifactType)
				}
				return out
			}
			for _, tc := range []struct {
				subject      name.Digest
				artifactType string
				want         []string
			}{
				{dig, "", sortedStrings(sig.String()+" "+sigType, att.String()+" "+attType)},
				{dig, sigType, []string{sig.String() + " " + sigType}},
				{dig, "application/none", []string{}},
				{bare, "", []string{}},
			} {
				got, err := c.Referrers(ctx, tc.subject, tc.artifactType)
				if err != nil {
					t.Fatalf("Referrers(%s, %q): %v", tc.subject, tc.artifactType, err)
				}
				if diff := cmp.Diff(tc.want, sortedStrings(digests(got)...)); diff != "" {
					t.Errorf("Referrers(%s, %q) (-want +got):\n%s", tc.subject, tc.artifactType, diff)
				}
			}
			t.Logf("requests for 4 Referrers calls: referrers %v, manifest %v", countsOf(m.Snapshot(), registry.KindReferrers), countsOf(m.Snapshot(), registry.KindManifest))

			capped := newClient(t, registry.Options{MaxReferrers: 1})
			_, err := capped.Referrers(ctx, dig, sigType)
			if !errors.Is(err, registry.ErrTooLarge) || !strings.Contains(err.Error(), "too many referrers found (2), max limit is 1") {
				t.Errorf("Referrers beyond MaxReferrers = %v, want too-large \"too many referrers…\"", err)
			}
		})
	}
}

// TestRequestCounts pins how many requests a Resolve costs, and that a Client reuses pings and
// token exchanges across calls on the same repository, including ggcr calls made by others with
// RemoteOptions.
func TestRequestCounts(t *testing.T) {
	t.Parallel()
	host := serve(t, quietRegistry())
	_, dig := push(t, host, "app", "v1")
	push(t, host, "other", "v1")
	m := &registry.Counter{}
	c := newClient(t, registry.Options{Metrics: m})
	ctx := ctxTimeout(t, 10*time.Second)

	step := func(name string, f func() error, want map[registry.RequestKey]int) {
		t.Helper()
		before := m.Snapshot()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := diffCounts(before, m.Snapshot())
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: requests (-want +got):\n%s", name, diff)
		}
	}
	key := func(method string, kind registry.Kind, status int) registry.RequestKey {
		return registry.RequestKey{Host: host, Method: method, Kind: kind, Status: status}
	}
	resolve := func(ref string) func() error {
		return func() error { _, err := c.Resolve(ctx, mustTag(t, ref)); return err }
	}
	first := map[registry.RequestKey]int{
		key("GET", registry.KindPing, 0):        1, // https probe: ggcr tries TLS first, even on loopback
		key("GET", registry.KindPing, 200):      1,
		key("HEAD", registry.KindManifest, 200): 1,
	}
	step("first Resolve", resolve(host+"/app:v1"), first)
	step("second Resolve, same repository", resolve(host+"/app:v1"), map[registry.RequestKey]int{
		key("HEAD", registry.KindManifest, 200): 1,
	})
	step("Manifest, same repository", func() error { _, err := c.Manifest(ctx, dig); return err }, map[registry.RequestKey]int{
		key("GET", registry.KindManifest, 200): 1,
	})
	step("remote.Head with RemoteOptions, same repository", func() error {
		_, err := remote.Head(dig, c.RemoteOptions(ctx)...)
		return err
	}, map[registry.RequestKey]int{key("HEAD", registry.KindManifest, 200): 1})
	step("Resolve, other repository", resolve(host+"/other:v1"), first)
}

func diffCounts(before, after map[registry.RequestKey]int) map[registry.RequestKey]int {
	out := map[registry.RequestKey]int{}
	for k, n := range after {
		if d := n - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sortedStrings(s ...string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	return out
}
