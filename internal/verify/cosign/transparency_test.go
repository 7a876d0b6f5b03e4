package cosign_test

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify"
)

// keys returns a keys attestor for k with the PKI's Rekor key (tlog required).
func (p *pki) keys(k *fixture.Key) *verify.Attestor {
	return &verify.Attestor{
		Path:  ".attestors[0].entries[0].keys",
		Kind:  "keys",
		Keys:  []verify.PublicKey{*pub(k)},
		Rekor: &verify.Rekor{PubKey: pub(p.rekor)},
	}
}

// TestRekor covers rekor.pubkey and ignoreTlog: the bundle's SET is verified offline with the
// configured key, and must be bound to the signature (cosign's VerifyBundle).
func TestRekor(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	k, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	otherLog, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	l := p.leaf(t, nil)
	keyed := func(edit func(*verify.Attestor)) *verify.Attestor {
		a := p.keys(k)
		if edit != nil {
			edit(a)
		}
		return a
	}
	tests := []struct {
		name     string
		sign     fixture.SignSpec
		attestor *verify.Attestor
		want     string
	}{
		{"key, SET valid", fixture.SignSpec{Key: k.Private, Rekor: p.rekor}, keyed(nil), "pass"},
		{"key, SET tampered", fixture.SignSpec{Key: k.Private, Rekor: p.rekor, RekorTamper: fixture.TamperTime}, keyed(nil), "fail: no matching signatures: error verifying bundle: unable to verify SET"},
		{"key, SET by another log", fixture.SignSpec{Key: k.Private, Rekor: otherLog}, keyed(nil), "fail: no matching signatures: error verifying bundle: verifying bundle: rekor log public key not found for payload"},
		{"key, no bundle", fixture.SignSpec{Key: k.Private}, keyed(nil), "fail: no matching signatures: no Rekor bundle on the signature"},
		{"key, no bundle, ignoreTlog", fixture.SignSpec{Key: k.Private}, keyed(func(a *verify.Attestor) { a.Rekor = &verify.Rekor{IgnoreTlog: true} }), "pass"},
		{"key, bundle ignored with ignoreTlog", fixture.SignSpec{Key: k.Private, Rekor: otherLog}, keyed(func(a *verify.Attestor) { a.Rekor = &verify.Rekor{IgnoreTlog: true} }), "pass"},
		{"key, no Rekor key", fixture.SignSpec{Key: k.Private, Rekor: p.rekor}, keyed(func(a *verify.Attestor) { a.Rekor = &verify.Rekor{URL: "https://rekor.sigstore.dev"} }),
			"undecided: cannot verify offline: no Rekor public key (rekor.pubkey, or rekor.ignoreTlog: true)"},
		{"key, no rekor block (Kyverno's default: public Rekor)", fixture.SignSpec{Key: k.Private, Rekor: p.rekor}, keyed(func(a *verify.Attestor) { a.Rekor = nil }),
			"undecided: cannot verify offline: no Rekor public key"},
		{"keyless, SET valid", p.signed(l), p.keyless(verify.Keyless{Subject: signer}), "pass"},
		{"keyless, SET tampered", fixture.SignSpec{Leaf: l, Rekor: p.rekor, RekorTamper: fixture.TamperTime}, p.keyless(verify.Keyless{Subject: signer}), "fail: no matching signatures: error verifying bundle: unable to verify SET"},
		{"keyless, no bundle", fixture.SignSpec{Leaf: l}, p.keyless(verify.Keyless{Subject: signer}), "fail: no matching signatures: no Rekor bundle on the signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			expect(t, outcome(t, p, p.image(t, tt.sign), nil, tt.attestor), tt.want)
		})
	}
}

// TestTimestamps covers ctlog.tsaCertChain: RFC 3161 timestamps verified with the chain.
func TestTimestamps(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t)
	l := p.leaf(t, nil)
	offline := func(a *verify.Attestor) *verify.Attestor {
		a.Rekor = &verify.Rekor{IgnoreTlog: true}
		return a
	}
	// A "TSA" whose certificate is a code-signing certificate: wrong extended key usage.
	codeSigner := p.leaf(t, nil)
	wrongEKU := &fixture.TSA{Root: p.root, Leaf: codeSigner.Cert, Key: codeSigner.Key}
	withChain := func(a *verify.Attestor, chain ...*x509.Certificate) *verify.Attestor {
		a.CTLog.TSACertChain = chain
		return a
	}
	tests := []struct {
		name     string
		sign     fixture.SignSpec
		attestor *verify.Attestor
		want     string
	}{
		{"valid timestamp", fixture.SignSpec{Leaf: l, TSA: p.tsa}, tsa(p, offline(p.keyless(verify.Keyless{Subject: signer}))), "pass"},
		{"timestamp by another authority", fixture.SignSpec{Leaf: l, TSA: other.tsa}, tsa(p, offline(p.keyless(verify.Keyless{Subject: signer}))),
			"fail: no matching signatures: unable to verify RFC3161 timestamp bundle: certificate embedded in the TSR does not match the provided TSA certificate"},
		{"timestamp, chain of another authority", fixture.SignSpec{Leaf: l, TSA: p.tsa}, tsa(other, offline(p.keyless(verify.Keyless{Subject: signer}))),
			"fail: no matching signatures: unable to verify RFC3161 timestamp bundle"},
		{"no timestamp, TSA configured", fixture.SignSpec{Leaf: l}, tsa(p, offline(p.keyless(verify.Keyless{Subject: signer}))), "pass"},
		{"timestamp by a certificate without the timeStamping usage", fixture.SignSpec{Leaf: l, TSA: wrongEKU},
			withChain(offline(p.keyless(verify.Keyless{Subject: signer})), codeSigner.Cert, p.ca.Cert, p.root.Cert),
			"fail: no matching signatures: unable to verify RFC3161 timestamp bundle: error while verifying signer certificate chain: x509: certificate specifies an incompatible key usage"},
		{"key signature with timestamp", fixture.SignSpec{Key: l.Key, TSA: p.tsa}, tsa(p, offline(p.certificates(l.Cert, nil))), "pass"},
		{"two TSA certificates in the chain", fixture.SignSpec{Leaf: l, TSA: p.tsa}, withChain(offline(p.keyless(verify.Keyless{Subject: signer})), p.tsa.Leaf, other.tsa.Leaf, p.tsa.Root.Cert),
			"undecided: ctlog.tsaCertChain: certificate chain must contain at most one TSA certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			expect(t, outcome(t, p, p.image(t, tt.sign), nil, tt.attestor), tt.want)
		})
	}
}

// TestTrustedRoot covers the vouch.dev/trusted-root annotation: a Sigstore trusted_root.json
// supplies the trust material an attestor does not name; what it names wins.
func TestTrustedRoot(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t)
	full, err := fixture.TrustedRootJSON(fixture.TrustedRootOptions{CAs: []*fixture.CA{p.ca}, Rekor: []*fixture.Key{p.rekor}, CT: []*fixture.Key{p.ct}, TSAs: []*fixture.TSA{p.tsa}})
	if err != nil {
		t.Fatal(err)
	}
	noCT, err := fixture.TrustedRootJSON(fixture.TrustedRootOptions{CAs: []*fixture.CA{p.ca}, Rekor: []*fixture.Key{p.rekor}})
	if err != nil {
		t.Fatal(err)
	}
	l := p.leaf(t, nil)
	expired := p.leaf(t, func(o *fixture.LeafOptions) { o.Validity = fixture.ValidAround(-3*time.Hour, -2*time.Hour) })
	bare := func(k verify.Keyless) *verify.Attestor {
		return &verify.Attestor{Path: ".attestors[0].entries[0].keyless", Kind: "keyless", Keyless: &k}
	}
	entry := func(tr []byte) *verify.Entry { return &verify.Entry{Type: "Cosign", TrustedRoot: tr} }
	otherRoots := bare(verify.Keyless{Subject: signer, Roots: []*x509.Certificate{other.root.Cert}})
	keyOnly := &verify.Attestor{Path: ".attestors[0].entries[0].keys", Kind: "keys", Keys: []verify.PublicKey{{Key: &l.Key.PublicKey, PEM: "unused"}},
		Rekor: &verify.Rekor{IgnoreTlog: true}, CTLog: &verify.CTLog{IgnoreSCT: true}}
	keyWithTlog := &verify.Attestor{Path: ".attestors[0].entries[0].keys", Kind: "keys", Keys: []verify.PublicKey{{Key: &l.Key.PublicKey, PEM: "unused"}}}
	tests := []struct {
		name     string
		sign     fixture.SignSpec
		entry    *verify.Entry
		attestor *verify.Attestor
		want     string
	}{
		{"keyless from the trusted root alone", p.signed(l), entry(full), bare(verify.Keyless{Subject: signer, Issuer: issuer}), "pass"},
		{"keyless, trusted root and identity mismatch", p.signed(l), entry(full), bare(verify.Keyless{Subject: "other@example.com"}), "fail: subject mismatch"},
		{"keyless, trusted root without CT logs", p.signed(l), entry(noCT), bare(verify.Keyless{Subject: signer}),
			"undecided: cannot verify offline: no CT log public key (ctlog.pubkey, or ctlog.ignoreSCT: true); provide it in the attestor or in a vouch.dev/trusted-root policy annotation"},
		{"keyless, nothing to trust", p.signed(l), entry(nil), bare(verify.Keyless{Subject: signer}),
			"undecided: cannot verify offline: no Fulcio roots (keyless.roots), no CT log public key (ctlog.pubkey, or ctlog.ignoreSCT: true), no Rekor public key (rekor.pubkey, or rekor.ignoreTlog: true); provide them"},
		{"keyless roots win over the trusted root's CAs", p.signed(l), entry(full), otherRoots, "fail: x509: certificate signed by unknown authority"},
		{"expired, timestamped while valid, trusted root's TSA", fixture.SignSpec{Leaf: expired, Rekor: p.rekor, RekorTime: time.Now(), TSA: p.tsa, TSATime: time.Now().Add(-150 * time.Minute)},
			entry(full), bare(verify.Keyless{Subject: signer}), "fail: checking expiry on certificate with bundle"},
		{"expired, timestamped and logged while valid", fixture.SignSpec{Leaf: expired, Rekor: p.rekor, RekorTime: time.Now().Add(-140 * time.Minute), TSA: p.tsa, TSATime: time.Now().Add(-150 * time.Minute)},
			entry(full), bare(verify.Keyless{Subject: signer}), "pass"},
		{"key with the trusted root's Rekor key", fixture.SignSpec{Key: l.Key, Rekor: p.rekor}, entry(full), keyWithTlog, "pass"},
		{"key, SET of a log the trusted root does not list", fixture.SignSpec{Key: l.Key, Rekor: other.rekor}, entry(full), keyWithTlog, "fail: rekor log public key not found"},
		{"key, both checks off, no trust root: air gap", fixture.SignSpec{Key: l.Key}, entry(nil), keyOnly, "pass"},
		{"invalid trusted root", fixture.SignSpec{Key: l.Key}, entry([]byte(`{"mediaType": "nonsense"}`)), keyOnly, "undecided: invalid vouch.dev/trusted-root annotation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			expect(t, outcome(t, p, p.image(t, tt.sign), tt.entry, tt.attestor), tt.want)
		})
	}
}

// TestLandscapeGroup6BundleBinding is landscape §4.4 group 6 for cosign's signature layout:
// the Rekor entry must be bound to the signature, key and payload; times come from verified
// sources only; the whole chain must be valid at the trusted time; TSA certificates need the
// timeStamping usage (TestTimestamps). The legacy layout carries a SET (a promise), never an
// inclusion proof; multi-log thresholds do not apply (one SET per signature).
func TestLandscapeGroup6BundleBinding(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	k, err := fixture.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("tlog entry of the same signer for another payload", func(t *testing.T) {
		s := p.image(t, fixture.SignSpec{Key: k.Private, Rekor: p.rekor, RekorTamper: fixture.TamperBody})
		expect(t, outcome(t, p, s, nil, p.keys(k)), "fail: no matching signatures: error verifying bundle: signature in bundle does not match signature being verified")
	})
	t.Run("tlog entry of another signer", func(t *testing.T) {
		l := p.leaf(t, nil)
		stranger := p.leaf(t, nil)
		s := p.image(t, fixture.SignSpec{Leaf: l, Rekor: p.rekor, RekorTamper: fixture.TamperBody})
		expect(t, outcome(t, p, s, nil, p.keyless(verify.Keyless{Subject: signer})), "fail: error verifying bundle: signature in bundle does not match")
		s = p.image(t, fixture.SignSpec{Leaf: stranger, Rekor: p.rekor})
		expect(t, outcome(t, p, s, nil, p.certificates(l.Cert, nil)), "fail: error verifying bundle: both public key and certificate were provided but did not match")
	})
	t.Run("integrated time zero is not a time the certificate was valid", func(t *testing.T) {
		s := p.image(t, fixture.SignSpec{Leaf: p.leaf(t, nil), Rekor: p.rekor, RekorTime: time.Unix(0, 0)})
		expect(t, outcome(t, p, s, nil, p.keyless(verify.Keyless{Subject: signer})), "fail: checking expiry on certificate with bundle: certificate was issued after observed time")
	})
	t.Run("expired intermediate at the trusted time", func(t *testing.T) {
		// The intermediate expired 3h ago; it issued a leaf valid until in an hour. The log
		// saw the signature 1h ago: the leaf was valid then, the intermediate was not.
		inter, err := p.root.NewIntermediate("expired intermediate", fixture.ValidAround(-5*time.Hour, -3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		l, err := inter.IssueLeaf(fixture.LeafOptions{Emails: []string{signer}, Issuer: issuer, Validity: fixture.ValidAround(-4*time.Hour, time.Hour), SCTLog: p.ct.Private})
		if err != nil {
			t.Fatal(err)
		}
		s := p.image(t, fixture.SignSpec{Leaf: l, Rekor: p.rekor, RekorTime: time.Now().Add(-time.Hour)})
		const want = "issuing CA certificate expired before observed time"
		expect(t, outcome(t, p, s, nil, p.keyless(verify.Keyless{Subject: signer})), "fail: "+want)
		expect(t, outcome(t, p, s, nil, p.certificates(nil, l.Chain)), "fail: "+want)
		expect(t, outcome(t, p, s, nil, p.certificates(l.Cert, l.Chain)), "fail: "+want)
		// Logged while the whole chain was valid: pass.
		s = p.image(t, fixture.SignSpec{Leaf: l, Rekor: p.rekor, RekorTime: time.Now().Add(-200 * time.Minute)})
		expect(t, outcome(t, p, s, nil, p.keyless(verify.Keyless{Subject: signer})), "pass")
		expect(t, outcome(t, p, s, nil, p.certificates(l.Cert, l.Chain)), "pass")
	})
}
