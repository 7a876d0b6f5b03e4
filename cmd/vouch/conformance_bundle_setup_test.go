package main

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/fixture"
)

// confBundle is one signature of an image stored as an OCI 1.1 referrer — through the
// referrers API when the case's registry serves it, else in the sha256-<hex> referrers tag
// index: a Sigstore bundle as cosign v3 writes it, or (format cosign-oci11) cosign v2's
// experimental OCI 1.1 signature.
type confBundle struct {
	Format  string `json:"format,omitempty"`  // "bundle" (default) or "cosign-oci11"
	Key     string `json:"key,omitempty"`     // a key of the case's keys
	Cert    string `json:"cert,omitempty"`    // or a certificate of pki.certs (bundle only)
	Version string `json:"version,omitempty"` // v0.1, v0.2, v0.3 (default)
	// Message signs the digest (a message signature) instead of a DSSE in-toto statement.
	Message bool `json:"message,omitempty"`
	// PredicateType of the statement; default cosign v3's https://sigstore.dev/cosign/sign/v1.
	PredicateType string            `json:"predicateType,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"` // the statement subject's (cosign sign -a)
	// ForImage signs the digest of another image of the case: a bundle that is not bound to
	// the image it is attached to.
	ForImage string `json:"forImage,omitempty"`
	TSA      string `json:"tsa,omitempty"` // a timestamp authority of pki.tsas
	TSATime  string `json:"tsaTime,omitempty"`
}

// signReferrers stores the bundles of the case's images.
func signReferrers(t *testing.T, reg *fixture.Registry, c *confCase, e *env, m *material, keys map[string]*fixture.Key) {
	t.Helper()
	ctx := context.Background()
	for _, im := range c.Images {
		repo := fixture.Repository(im.Name)
		for _, b := range im.Bundles {
			var err error
			switch b.Format {
			case "cosign-oci11":
				err = reg.SignOCI11(ctx, repo, e.digests[im.Name], lookup(t, keys, b.Key, "key").Private)
			case "", "bundle":
				spec := fixture.BundleSpec{Version: b.Version, Message: b.Message, PredicateType: b.PredicateType, Annotations: b.Annotations}
				switch {
				case b.Cert != "":
					spec.Leaf = lookup(t, m.certs, b.Cert, "certificate")
				case b.Key != "":
					spec.Key = lookup(t, keys, b.Key, "key").Private
				default:
					t.Fatal("a bundle needs a key or a cert")
				}
				if b.ForImage != "" {
					spec.Digest = lookup(t, e.digests, b.ForImage, "image")
				}
				if b.TSA != "" {
					spec.TSA, spec.TSATime = lookup(t, m.tsas, b.TSA, "TSA"), at(t, b.TSATime)
				}
				err = reg.SignBundle(ctx, repo, e.digests[im.Name], spec)
			default:
				t.Fatalf("unknown referrer format %q", b.Format)
			}
			if err != nil {
				t.Fatalf("signing %s: %v", im.Name, err)
			}
		}
	}
}

// routeRecorder is an engine.Observer that keeps every verification the engine reports.
type routeRecorder struct {
	mu  sync.Mutex
	got []string
}

func (r *routeRecorder) Verified(typ, route string, result engine.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, typ+" "+route+" "+string(result))
}

// check compares the recorded verifications with want (sorted), when want is given.
func (r *routeRecorder) check(t *testing.T, want []string) {
	t.Helper()
	if len(want) == 0 {
		return
	}
	r.mu.Lock()
	got := append([]string(nil), r.got...)
	r.mu.Unlock()
	sort.Strings(got)
	want = append([]string(nil), want...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("verifications reported to the observer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
