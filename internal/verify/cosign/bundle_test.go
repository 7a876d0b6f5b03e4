package cosign_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/imageref"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// world is an in-process registry (with or without the OCI 1.1 referrers API) and a
// verifier reading it.
type discWorld struct {
	reg      *fixture.Registry
	verifier *cosign.Verifier
	key      *fixture.Key
	other    *fixture.Key
	requests map[string]*atomic.Int64 // by path kind: "referrers", "tag-schema", "sig-tag"
}

func newDiscWorld(t *testing.T, referrers bool, opts cosign.Options) *discWorld {
	t.Helper()
	w := &discWorld{requests: map[string]*atomic.Int64{"referrers": {}, "tag-schema": {}, "sig-tag": {}}}
	w.reg = fixture.StartRegistry(referrers, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			switch {
			case strings.Contains(r.URL.Path, "/referrers/"):
				w.requests["referrers"].Add(1)
			case strings.Contains(r.URL.Path, "/manifests/sha256-") && strings.HasSuffix(r.URL.Path, ".sig"):
				w.requests["sig-tag"].Add(1)
			case strings.Contains(r.URL.Path, "/manifests/sha256-"):
				w.requests["tag-schema"].Add(1)
			}
			h.ServeHTTP(rw, r)
		})
	})
	t.Cleanup(w.reg.Close)
	opts.Remote = func(ctx context.Context, _ bool) []remote.Option { return []remote.Option{remote.WithContext(ctx)} }
	var err error
	if w.verifier, err = cosign.New(opts); err != nil {
		t.Fatal(err)
	}
	if w.key, err = fixture.NewKey(); err != nil {
		t.Fatal(err)
	}
	if w.other, err = fixture.NewKey(); err != nil {
		t.Fatal(err)
	}
	return w
}

// push pushes an image named after the test and returns its subject (with a fresh memo).
func (w *discWorld) push(t *testing.T) (verify.Subject, string) {
	t.Helper()
	repo := strings.Trim(repoChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	digest, err := w.reg.Push(context.Background(), repo+":v1")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := imageref.Parse(w.reg.Host + "/" + repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	return verify.Subject{Ref: ref, Digest: digest, Memo: &verify.Memo{}}, repo
}

// keyAttestor is an offline keys attestor (ignoreTlog, ignoreSCT).
func offlineKey(k *fixture.Key) *verify.Attestor {
	return &verify.Attestor{Path: ".attestors[0].entries[0].keys", Kind: "keys", Keys: []verify.PublicKey{*pub(k)},
		Rekor: &verify.Rekor{IgnoreTlog: true}, CTLog: &verify.CTLog{IgnoreSCT: true}}
}

// result is an outcome with the route of a pass: "pass <route>", "fail: ...", "undecided: ...".
func (w *discWorld) result(t *testing.T, s verify.Subject, e *verify.Entry, a *verify.Attestor) string {
	t.Helper()
	ev, err := w.verifier.Verify(context.Background(), s, e, a)
	switch {
	case err == nil:
		if ev.Digest != s.Digest {
			t.Fatalf("evidence digest %s, want %s", ev.Digest, s.Digest)
		}
		return "pass " + ev.Route + " (" + ev.Detail + ")"
	case verify.Undecided(err):
		return "undecided: " + err.Error()
	}
	return "fail: " + err.Error()
}

func wantDisc(t *testing.T, got, want string) {
	t.Helper()
	if strings.HasPrefix(want, "pass") {
		if !strings.HasPrefix(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
		return
	}
	kind, text, _ := strings.Cut(want, ": ")
	if !strings.HasPrefix(got, kind+": ") || !strings.Contains(got, text) {
		t.Fatalf("got  %s\nwant %s: ...%s...", got, kind, text)
	}
}

var (
	cosignTypeEntry = &verify.Entry{Type: "Cosign"}
	bundleTypeEntry = &verify.Entry{Type: "SigstoreBundle"}
)

// TestDiscoveryRoutes signs images in every layout cosign v2 and v3 write, on a registry with
// and without the referrers API, and checks what each verification type finds and the route
// it reports.
func TestDiscoveryRoutes(t *testing.T) {
	t.Parallel()
	for _, api := range []bool{true, false} {
		listing, referrerRoute := "referrers tag schema", verify.RouteReferrersTagSchema
		if api {
			listing, referrerRoute = "referrers API", verify.RouteOCI11Referrer
		}
		t.Run(map[bool]string{true: "referrers API", false: "tag schema"}[api], func(t *testing.T) {
			t.Parallel()
			w := newDiscWorld(t, api, cosign.Options{})
			ctx := context.Background()
			type signFn func(repo, digest string) error
			bundle := func(spec fixture.BundleSpec) signFn {
				return func(repo, digest string) error { return w.reg.SignBundle(ctx, repo, digest, spec) }
			}
			legacy := func(repo, digest string) error { return w.reg.Sign(ctx, repo, digest, w.key.Private, nil, "") }
			oci11 := func(repo, digest string) error { return w.reg.SignOCI11(ctx, repo, digest, w.key.Private) }
			other := "sha256:" + strings.Repeat("ab", 32)
			tests := []struct {
				name  string
				sign  []signFn
				entry *verify.Entry
				want  string
			}{
				{"cosign v2 legacy tag", []signFn{legacy}, cosignTypeEntry, "pass legacy-tag"},
				{"cosign v2 OCI 1.1 referrer, type Cosign", []signFn{oci11}, cosignTypeEntry, "pass " + referrerRoute},
				{"cosign v2 OCI 1.1 referrer, cosignOCI11", []signFn{oci11}, &verify.Entry{Type: "Cosign", CosignOCI11: true}, "pass " + referrerRoute},
				{"cosign v3 bundle v0.3, type Cosign", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private})}, cosignTypeEntry, "pass sigstore-bundle (Sigstore bundle v0.3 (DSSE https://sigstore.dev/cosign/sign/v1) in referrer sha256:"},
				{"bundle listing named", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private})}, cosignTypeEntry, "pass sigstore-bundle"},
				{"bundle v0.3, SigstoreBundle", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private})}, bundleTypeEntry, "pass sigstore-bundle"},
				{"bundle v0.1 DSSE", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private, Version: "v0.1"})}, cosignTypeEntry, "pass sigstore-bundle (Sigstore bundle v0.1"},
				{"bundle v0.2 DSSE", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private, Version: "v0.2"})}, bundleTypeEntry, "pass sigstore-bundle (Sigstore bundle v0.2"},
				{"bundle v0.3 message signature", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private, Message: true})}, cosignTypeEntry, "pass sigstore-bundle (Sigstore bundle v0.3 (message signature)"},
				{"bundle v0.1 message signature", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private, Message: true, Version: "v0.1"})}, bundleTypeEntry, "pass sigstore-bundle"},
				{"bundle by another key", []signFn{bundle(fixture.BundleSpec{Key: w.other.Private})}, cosignTypeEntry, "fail: no matching signatures: Sigstore bundle v0.3"},
				{"bundle by another key, SigstoreBundle", []signFn{bundle(fixture.BundleSpec{Key: w.other.Private})}, bundleTypeEntry, "fail: sigstore bundle verification failed: no matching signatures found: no matching signatures"},
				{"bundle for another digest (DSSE)", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private, Digest: other})}, cosignTypeEntry, "fail: no matching signatures: Sigstore bundle v0.3 (DSSE https://sigstore.dev/cosign/sign/v1)"},
				{"bundle for another digest (message)", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private, Digest: other, Message: true})}, bundleTypeEntry, "fail: sigstore bundle verification failed"},
				{"attestation bundle is no signature for type Cosign", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private, PredicateType: "https://slsa.dev/provenance/v1"})}, cosignTypeEntry, "fail: no signatures found"},
				{"attestation bundle counts for SigstoreBundle (Kyverno)", []signFn{bundle(fixture.BundleSpec{Key: w.key.Private, PredicateType: "https://slsa.dev/provenance/v1"})}, bundleTypeEntry, "pass sigstore-bundle"},
				{"SigstoreBundle does not read cosign v2 layouts", []signFn{legacy, oci11}, bundleTypeEntry, "fail: sigstore bundle verification failed: no matching signatures found: no signatures found"},
				{"unsigned", nil, cosignTypeEntry, "fail: no signatures found"},
				{"unsigned, SigstoreBundle", nil, bundleTypeEntry, "fail: sigstore bundle verification failed: no matching signatures found"},
				{"wrong-key bundle beside a valid legacy signature", []signFn{bundle(fixture.BundleSpec{Key: w.other.Private}), legacy}, cosignTypeEntry, "pass legacy-tag"},
				{"every layout at once", []signFn{legacy, oci11, bundle(fixture.BundleSpec{Key: w.key.Private})}, cosignTypeEntry, "pass legacy-tag"},
				{"every layout, referrers first with cosignOCI11", []signFn{legacy, oci11}, &verify.Entry{Type: "Cosign", CosignOCI11: true}, "pass " + referrerRoute},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					s, repo := w.push(t)
					for _, sign := range tt.sign {
						if err := sign(repo, s.Digest); err != nil {
							t.Fatal(err)
						}
					}
					got := w.result(t, s, tt.entry, offlineKey(w.key))
					wantDisc(t, got, tt.want)
					if strings.HasPrefix(got, "pass sigstore-bundle") && !strings.Contains(got, listing) {
						t.Errorf("got %s, want the listing %q named", got, listing)
					}
				})
			}
		})
	}
}

// TestBundleAnnotations: cosign v3 writes `sign -a` values as the statement subject's
// annotations; they are matched like the payload annotations of the legacy layout.
func TestBundleAnnotations(t *testing.T) {
	t.Parallel()
	w := newDiscWorld(t, false, cosign.Options{})
	s, repo := w.push(t)
	if err := w.reg.SignBundle(context.Background(), repo, s.Digest, fixture.BundleSpec{Key: w.key.Private, Annotations: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		want map[string]string
		out  string
	}{
		{map[string]string{"env": "prod"}, "pass sigstore-bundle"},
		{map[string]string{"env": "dev"}, "fail: no signature matched the required annotations"},
	} {
		a := offlineKey(w.key)
		a.Annotations = tt.want
		wantDisc(t, w.result(t, s, cosignTypeEntry, a), tt.out)
		wantDisc(t, w.result(t, s, bundleTypeEntry, a), strings.Replace(tt.out, "fail: ", "fail: sigstore bundle verification failed: no matching signatures found: ", 1))
	}
}

// TestBundleKeyless: bundles signed with a certificate — v0.3 (certificate) and v0.1/v0.2
// (chain) — are verified against keyless.roots with Kyverno's identity matching, SCTs and
// RFC 3161 timestamps.
func TestBundleKeyless(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	w := newDiscWorld(t, false, cosign.Options{})
	l := p.leaf(t, nil)
	expired := p.leaf(t, func(o *fixture.LeafOptions) { o.Validity = fixture.ValidAround(-3*time.Hour, -2*time.Hour) })
	// Bundles carry the signing certificate alone (v0.3), or a chain whose intermediates
	// Sigstore ignores (v0.1, v0.2): the intermediates are trust material, as in a
	// trusted_root.json.
	offline := func(a *verify.Attestor) *verify.Attestor {
		a.Rekor = &verify.Rekor{IgnoreTlog: true}
		if a.Keyless != nil {
			a.Keyless.Roots = append(a.Keyless.Roots, p.ca.Cert)
		}
		return a
	}
	tsa := func(a *verify.Attestor) *verify.Attestor {
		a.CTLog.TSACertChain = []*x509.Certificate{p.tsa.Leaf, p.tsa.Root.Cert}
		return a
	}
	tests := []struct {
		name     string
		spec     fixture.BundleSpec
		attestor *verify.Attestor
		want     string
	}{
		{"v0.3 certificate, subject matches", fixture.BundleSpec{Leaf: l}, offline(p.keyless(verify.Keyless{Subject: signer, Issuer: issuer})), "pass sigstore-bundle"},
		{"v0.1 chain, subject matches", fixture.BundleSpec{Leaf: l, Version: "v0.1"}, offline(p.keyless(verify.Keyless{Subject: signer})), "pass sigstore-bundle"},
		{"v0.2 chain, message signature", fixture.BundleSpec{Leaf: l, Version: "v0.2", Message: true}, offline(p.keyless(verify.Keyless{Subject: signer})), "pass sigstore-bundle"},
		{"wrong subject", fixture.BundleSpec{Leaf: l}, offline(p.keyless(verify.Keyless{Subject: "other@example.com"})), "fail: subject mismatch: expected other@example.com, received signer@example.com"},
		{"wrong issuer", fixture.BundleSpec{Leaf: l}, offline(p.keyless(verify.Keyless{Issuer: "https://other.example.com"})), "fail: issuer mismatch"},
		{"another root", fixture.BundleSpec{Leaf: newPKI(t).leaf(t, nil)}, offline(p.keyless(verify.Keyless{Subject: signer})), "fail: no matching signatures: Sigstore bundle v0.3"},
		{"SCT by another CT log", fixture.BundleSpec{Leaf: l}, offline(func() *verify.Attestor {
			a := p.keyless(verify.Keyless{Subject: signer})
			a.CTLog = &verify.CTLog{PubKey: pub(p.rekor)}
			return a
		}()), "fail: no matching signatures"},
		{"expired certificate, no timestamp", fixture.BundleSpec{Leaf: expired}, offline(p.keyless(verify.Keyless{Subject: signer})), "fail: no matching signatures"},
		{"expired certificate, timestamped while valid", fixture.BundleSpec{Leaf: expired, TSA: p.tsa, TSATime: time.Now().Add(-150 * time.Minute)}, tsa(offline(p.keyless(verify.Keyless{Subject: signer}))), "pass sigstore-bundle"},
		{"expired certificate, timestamped after expiry", fixture.BundleSpec{Leaf: expired, TSA: p.tsa, TSATime: time.Now().Add(-time.Minute)}, tsa(offline(p.keyless(verify.Keyless{Subject: signer}))), "fail: no matching signatures"},
		{"key attestor, certificate bundle", fixture.BundleSpec{Leaf: l}, offlineKey(w.key), "fail: no matching signatures: Sigstore bundle v0.3 (DSSE https://sigstore.dev/cosign/sign/v1) in referrer"},
		{"tlog required, bundle without entry", fixture.BundleSpec{Leaf: l}, p.keyless(verify.Keyless{Subject: signer}), "fail: no matching signatures"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, repo := w.push(t)
			if err := w.reg.SignBundle(context.Background(), repo, s.Digest, tt.spec); err != nil {
				t.Fatal(err)
			}
			wantDisc(t, w.result(t, s, cosignTypeEntry, tt.attestor), tt.want)
		})
	}
}

// TestDiscoveryOnce: several attestors of one subject read each source once (the subject's
// memo), whatever their keys.
func TestDiscoveryOnce(t *testing.T) {
	t.Parallel()
	for _, api := range []bool{true, false} {
		w := newDiscWorld(t, api, cosign.Options{})
		s, repo := w.push(t)
		if err := w.reg.SignBundle(context.Background(), repo, s.Digest, fixture.BundleSpec{Key: w.key.Private}); err != nil {
			t.Fatal(err)
		}
		for k := range w.requests {
			w.requests[k].Store(0)
		}
		for i, a := range []*verify.Attestor{offlineKey(w.other), offlineKey(w.key), offlineKey(w.other), offlineKey(w.key)} {
			got := w.result(t, s, cosignTypeEntry, a)
			if (i%2 == 1) != strings.HasPrefix(got, "pass") {
				t.Fatalf("attestor %d: %s", i, got)
			}
		}
		if got := w.requests["sig-tag"].Load(); got != 1 {
			t.Errorf("referrers API %v: .sig tag read %d times, want 1", api, got)
		}
		wantList := map[bool]int64{true: 1, false: 1}[api]
		if got := w.requests["referrers"].Load(); got != wantList {
			t.Errorf("referrers API %v: referrers endpoint asked %d times, want %d", api, got, wantList)
		}
	}
}

// TestDiscoveryCaps: more referrers than MaxReferrers, or a bundle larger than
// MaxPayloadBytes, is a failure, never a silent truncation.
func TestDiscoveryCaps(t *testing.T) {
	t.Parallel()
	w := newDiscWorld(t, false, cosign.Options{MaxReferrers: 2, MaxPayloadBytes: 4096})
	ctx := context.Background()
	s, repo := w.push(t)
	for i := 0; i < 3; i++ {
		if err := w.reg.SignBundle(ctx, repo, s.Digest, fixture.BundleSpec{Key: w.key.Private}); err != nil {
			t.Fatal(err)
		}
	}
	wantDisc(t, w.result(t, s, cosignTypeEntry, offlineKey(w.key)), "fail: failed to fetch referrers: too many referrers found")
	wantDisc(t, w.result(t, s, bundleTypeEntry, offlineKey(w.key)), "fail: sigstore bundle verification failed: no matching signatures found: failed to fetch referrers: too many referrers found")

	big, bigRepo := w.push(t)
	if err := w.reg.SignBundle(ctx, bigRepo, big.Digest, fixture.BundleSpec{Key: w.key.Private, Predicate: map[string]any{"pad": strings.Repeat("x", 8192)}, PredicateType: "https://example.com/big"}); err != nil {
		t.Fatal(err)
	}
	wantDisc(t, w.result(t, big, bundleTypeEntry, offlineKey(w.key)), "fail: sigstore bundle verification failed: no matching signatures found: no matching signatures: referrer sha256:")
	if got := w.result(t, big, bundleTypeEntry, offlineKey(w.key)); !strings.Contains(got, "layer size") {
		t.Errorf("got %s, want the layer size named", got)
	}
}

// TestDiscoverAttestations: attestation bundles (cosign v3 `attest`) are found beside the
// signatures and verified for the attestor, bound to the digest.
func TestDiscoverAttestations(t *testing.T) {
	t.Parallel()
	for _, api := range []bool{true, false} {
		w := newDiscWorld(t, api, cosign.Options{})
		ctx := context.Background()
		s, repo := w.push(t)
		for _, spec := range []fixture.BundleSpec{
			{Key: w.key.Private}, // a signature: not listed
			{Key: w.key.Private, PredicateType: "https://slsa.dev/provenance/v1", Predicate: map[string]any{"builder": map[string]any{"id": "b"}}},
			{Key: w.key.Private, PredicateType: "https://slsa.dev/provenance/v1", Digest: "sha256:" + strings.Repeat("cd", 32)}, // another image's
		} {
			if err := w.reg.SignBundle(ctx, repo, s.Digest, spec); err != nil {
				t.Fatal(err)
			}
		}
		found, err := w.verifier.DiscoverAttestations(ctx, s, cosignTypeEntry, offlineKey(w.key))
		if err != nil {
			t.Fatal(err)
		}
		if len(found.Envelopes) != 2 {
			t.Fatalf("referrers API %v: found %d envelopes, want 2: %+v", api, len(found.Envelopes), found.Envelopes)
		}
		verified := 0
		for _, env := range found.Envelopes {
			if env.Route != verify.RouteSigstoreBundle || env.Bundle == nil || len(env.Envelope) == 0 {
				t.Fatalf("envelope %+v", env)
			}
			st, err := w.verifier.VerifyAttestationBundle(ctx, s, cosignTypeEntry, offlineKey(w.key), env.Bundle)
			if err == nil {
				verified++
				if st.PredicateType != "https://slsa.dev/provenance/v1" {
					t.Errorf("statement %+v", st)
				}
			} else if !strings.Contains(err.Error(), "no matching attestations") {
				t.Errorf("error %v", err)
			}
			if _, err := w.verifier.VerifyAttestationBundle(ctx, s, cosignTypeEntry, offlineKey(w.other), env.Bundle); err == nil {
				t.Error("verified with another key")
			}
		}
		if verified != 1 {
			t.Errorf("referrers API %v: %d bundles verified, want 1 (the other names another digest)", api, verified)
		}
	}
}
