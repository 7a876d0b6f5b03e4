package cosign_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// TestValidUntil: a signature whose certificate chain was checked at the time of verification
// (no Rekor bundle required, no trusted timestamp) holds until the earliest NotAfter of what
// was checked — the leaf, or an intermediate that expires first; one checked at a trusted time
// (Rekor integrated time, RFC 3161 timestamp) and a key signature hold without bound.
func TestValidUntil(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	w := newDiscWorld(t, false, cosign.Options{})
	valid := p.leaf(t, nil) // the leaf (now+1h) expires before the intermediate (+24h) and root
	short, err := p.root.NewIntermediate("short-lived intermediate", fixture.ValidAround(-24*time.Hour, 30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	underShort, err := short.IssueLeaf(fixture.LeafOptions{Emails: []string{signer}, Issuer: issuer, Validity: fixture.ValidAround(-time.Hour, time.Hour), SCTLog: p.ct.Private})
	if err != nil {
		t.Fatal(err)
	}
	key, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	offline := func(a *verify.Attestor) *verify.Attestor {
		a.Rekor = &verify.Rekor{IgnoreTlog: true}
		return a
	}
	// Keyless roots for bundles, which carry no intermediates: the root and the intermediate.
	bundleKeyless := func(inter *x509.Certificate) *verify.Attestor {
		a := offline(p.keyless(verify.Keyless{Subject: signer}))
		a.Keyless.Roots = append(a.Keyless.Roots, inter)
		return a
	}
	unbounded := time.Time{}
	tests := []struct {
		name     string
		sign     *fixture.SignSpec   // cosign's legacy layout
		bundle   *fixture.BundleSpec // or a Sigstore bundle
		attestor *verify.Attestor
		want     time.Time
	}{
		// certificates: cert and certChain, or certChain only, checked at now.
		{name: "cert and chain, no trusted time: the leaf", sign: &fixture.SignSpec{Leaf: valid},
			attestor: offline(p.certificates(valid.Cert, valid.Chain)), want: valid.Cert.NotAfter},
		{name: "cert and chain, no trusted time: the intermediate expires first", sign: &fixture.SignSpec{Leaf: underShort},
			attestor: offline(p.certificates(underShort.Cert, underShort.Chain)), want: short.Cert.NotAfter},
		{name: "chain only, no trusted time: the intermediate of the chain built", sign: &fixture.SignSpec{Leaf: underShort},
			attestor: offline(p.certificates(nil, underShort.Chain)), want: short.Cert.NotAfter},
		// With cert alone, cosign checks the signature's certificate without its chain.
		{name: "cert only, no trusted time: the certificate", sign: &fixture.SignSpec{Leaf: underShort},
			attestor: offline(p.certificates(underShort.Cert, nil)), want: underShort.Cert.NotAfter},
		{name: "cert only, signature without certificate: the pinned certificate", sign: &fixture.SignSpec{Key: valid.Key},
			attestor: offline(p.certificates(valid.Cert, nil)), want: valid.Cert.NotAfter},
		// Trusted times.
		{name: "cert and chain, Rekor integrated time", sign: &fixture.SignSpec{Leaf: underShort, Rekor: p.rekor},
			attestor: p.certificates(underShort.Cert, underShort.Chain), want: unbounded},
		{name: "cert and chain, RFC 3161 timestamp", sign: &fixture.SignSpec{Leaf: underShort, TSA: p.tsa},
			attestor: tsa(p, offline(p.certificates(underShort.Cert, underShort.Chain))), want: unbounded},
		{name: "chain only, RFC 3161 timestamp", sign: &fixture.SignSpec{Leaf: underShort, TSA: p.tsa},
			attestor: tsa(p, offline(p.certificates(nil, underShort.Chain))), want: unbounded},
		{name: "TSA trusted, signature without timestamp: now", sign: &fixture.SignSpec{Leaf: underShort},
			attestor: tsa(p, offline(p.certificates(underShort.Cert, underShort.Chain))), want: short.Cert.NotAfter},
		// Keyless: with the transparency log (Fulcio's 10-minute certificates) unbounded.
		{name: "keyless, Rekor integrated time", sign: &fixture.SignSpec{Leaf: underShort, Rekor: p.rekor},
			attestor: p.keyless(verify.Keyless{Subject: signer}), want: unbounded},
		{name: "keyless, ignoreTlog, no timestamp", sign: &fixture.SignSpec{Leaf: underShort},
			attestor: offline(p.keyless(verify.Keyless{Subject: signer})), want: short.Cert.NotAfter},
		// Keys.
		{name: "key", sign: &fixture.SignSpec{Key: key.Private}, attestor: offlineKey(key), want: unbounded},
		// Sigstore bundles (sigstore-go): at the current time, or at a verified timestamp.
		{name: "bundle, keyless, current time: the intermediate", bundle: &fixture.BundleSpec{Leaf: underShort},
			attestor: bundleKeyless(short.Cert), want: short.Cert.NotAfter},
		{name: "bundle, keyless, current time: the leaf", bundle: &fixture.BundleSpec{Leaf: valid, Version: "v0.1"},
			attestor: bundleKeyless(p.ca.Cert), want: valid.Cert.NotAfter},
		{name: "bundle, keyless, RFC 3161 timestamp", bundle: &fixture.BundleSpec{Leaf: underShort, TSA: p.tsa},
			attestor: tsa(p, bundleKeyless(short.Cert)), want: unbounded},
		{name: "bundle, key", bundle: &fixture.BundleSpec{Key: key.Private}, attestor: offlineKey(key), want: unbounded},
		{name: "bundle, key, certificates.cert checked at now", bundle: &fixture.BundleSpec{Key: valid.Key},
			attestor: func() *verify.Attestor {
				a := offline(p.certificates(valid.Cert, nil))
				a.CTLog = &verify.CTLog{IgnoreSCT: true}
				return a
			}(), want: valid.Cert.NotAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, repo := w.push(t)
			var err error
			if tt.sign != nil {
				err = w.reg.SignWith(context.Background(), repo, s.Digest, *tt.sign)
			} else {
				err = w.reg.SignBundle(context.Background(), repo, s.Digest, *tt.bundle)
			}
			if err != nil {
				t.Fatal(err)
			}
			ev, err := w.verifier.Verify(context.Background(), s, cosignTypeEntry, tt.attestor)
			if err != nil {
				t.Fatalf("want a pass, got %v", err)
			}
			if tt.bundle != nil && ev.Route != verify.RouteSigstoreBundle || tt.sign != nil && ev.Route != verify.RouteLegacyTag {
				t.Fatalf("verified through route %s", ev.Route)
			}
			if !ev.ValidUntil.Equal(tt.want) {
				t.Errorf("ValidUntil = %v, want %v", ev.ValidUntil, tt.want)
			}
		})
	}
}

// TestValidUntilSeveralSignatures: the evidence holds while one of the signatures that
// verified and carry the required annotations does: the latest of their bounds, unbounded
// when one of them is; a signature without the annotations does not extend it.
func TestValidUntilSeveralSignatures(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	w := newDiscWorld(t, false, cosign.Options{})
	soon := p.leaf(t, func(o *fixture.LeafOptions) { o.Validity = fixture.ValidAround(-time.Hour, 10*time.Minute) })
	later := p.leaf(t, nil)
	prod := map[string]string{"env": "prod"}
	chain := p.ca.Chain // the root
	attestor := func(annotations map[string]string) *verify.Attestor {
		a := p.certificates(nil, append([]*x509.Certificate{p.ca.Cert}, chain...))
		a.Rekor = &verify.Rekor{IgnoreTlog: true}
		a.Annotations = annotations
		return a
	}
	for _, tc := range []struct {
		name     string
		specs    []fixture.SignSpec
		attestor *verify.Attestor
		want     time.Time
	}{
		{"two bounded: the later", []fixture.SignSpec{{Leaf: soon}, {Leaf: later}}, attestor(nil), later.Cert.NotAfter},
		{"one timestamped: unbounded", []fixture.SignSpec{{Leaf: soon}, {Leaf: later, TSA: p.tsa}}, tsa(p, attestor(nil)), time.Time{}},
		// With ignoreTlog, a Rekor bundle is not verified and gives no trusted time.
		{"ignoreTlog, logged in Rekor: bounded", []fixture.SignSpec{{Leaf: soon}, {Leaf: later, Rekor: p.rekor}}, attestor(nil), later.Cert.NotAfter},
		{"only the annotated one counts", []fixture.SignSpec{{Leaf: soon, Annotations: prod}, {Leaf: later}}, attestor(prod), soon.Cert.NotAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, repo := w.push(t)
			for _, spec := range tc.specs {
				if err := w.reg.SignWith(context.Background(), repo, s.Digest, spec); err != nil {
					t.Fatal(err)
				}
			}
			ev, err := w.verifier.Verify(context.Background(), s, cosignTypeEntry, tc.attestor)
			if err != nil {
				t.Fatalf("want a pass, got %v", err)
			}
			if !ev.ValidUntil.Equal(tc.want) {
				t.Errorf("ValidUntil = %v, want %v", ev.ValidUntil, tc.want)
			}
		})
	}
}

// TestAttestationsValidUntil: attestation statements whose signatures' certificates were
// checked at the time of verification hold until the earliest NotAfter among them; statements
// signed with a key hold without bound.
func TestAttestationsValidUntil(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	soon := p.leaf(t, func(o *fixture.LeafOptions) { o.Validity = fixture.ValidAround(-time.Hour, 10*time.Minute) })
	later := p.leaf(t, nil)
	key, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certs := func() *verify.Attestor {
		a := p.certificates(nil, append([]*x509.Certificate{p.ca.Cert}, p.ca.Chain...))
		a.Rekor = &verify.Rekor{IgnoreTlog: true}
		return a
	}
	for _, tc := range []struct {
		name     string
		specs    []fixture.AttestSpec
		attestor *verify.Attestor
		want     time.Time
	}{
		{"certificates, every statement bounds", []fixture.AttestSpec{{Leaf: later, PredicateType: slsa}, {Leaf: soon, PredicateType: slsa}}, certs(), soon.Cert.NotAfter},
		{"a statement of another type does not", []fixture.AttestSpec{{Leaf: later, PredicateType: slsa}, {Leaf: soon, PredicateType: fixture.CosignVuln}}, certs(), later.Cert.NotAfter},
		{"key", []fixture.AttestSpec{{Key: key.Private, PredicateType: slsa}}, keyAttestor(key), time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := p.attested(t, tc.specs...)
			sts, until, err := p.verifier.Attestations(context.Background(), s, &verify.Entry{Type: "Cosign"}, tc.attestor, slsa)
			if err != nil || len(sts) == 0 {
				t.Fatalf("want statements, got %d, %v", len(sts), err)
			}
			if !until.Equal(tc.want) {
				t.Errorf("ValidUntil = %v, want %v", until, tc.want)
			}
		})
	}
}
