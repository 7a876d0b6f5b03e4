package cosign_test

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify"
)

func TestCertificates(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t) // another root and intermediate
	valid := p.leaf(t, nil)
	stranger := p.leaf(t, nil)
	noSCT := p.leaf(t, func(o *fixture.LeafOptions) { o.SCTLog = nil })
	otherSCT := p.leaf(t, func(o *fixture.LeafOptions) { o.SCTLog = other.ct.Private })
	expired := p.leaf(t, func(o *fixture.LeafOptions) { o.Validity = fixture.ValidAround(-3*time.Hour, -2*time.Hour) })
	whileValid := time.Now().Add(-150 * time.Minute)

	withChain := func(l *fixture.Leaf) *verify.Attestor { return p.certificates(l.Cert, l.Chain) }
	chainOnly := func(*fixture.Leaf) *verify.Attestor { return p.certificates(nil, valid.Chain) }
	certOnly := func(l *fixture.Leaf) *verify.Attestor { return p.certificates(l.Cert, nil) }
	offline := func(a *verify.Attestor) *verify.Attestor {
		a.Rekor = &verify.Rekor{IgnoreTlog: true}
		return a
	}
	noSCTCheck := func(a *verify.Attestor) *verify.Attestor {
		a.CTLog = &verify.CTLog{IgnoreSCT: true}
		return a
	}
	tests := []struct {
		name     string
		sign     fixture.SignSpec
		attestor *verify.Attestor
		want     string
	}{
		{"cert and chain", p.signed(valid), withChain(valid), "pass"},
		{"chain only: the signature's certificate chains to it", p.signed(valid), chainOnly(valid), "pass"},
		{"cert only: the signature verifies with its key", p.signed(valid), certOnly(valid), "pass"},
		{"cert only, signature without certificate", fixture.SignSpec{Key: valid.Key, Rekor: p.rekor}, certOnly(valid), "pass"},
		{"signed by another certificate's key", p.signed(stranger), offline(withChain(valid)), "fail: no matching signatures: invalid signature when validating ASN.1 encoded signature"},
		{"signed by another certificate's key, with its bundle", p.signed(stranger), withChain(valid), "fail: no matching signatures: error verifying bundle: both public key and certificate were provided but did not match"},
		{"chain only, signature chains to another root", p.signed(valid), p.certificates(nil, other.leaf(t, nil).Chain), "fail: no matching signatures: cert verification failed: x509: certificate signed by unknown authority"},
		{"cert with a chain it does not chain to", p.signed(valid), p.certificates(valid.Cert, other.leaf(t, nil).Chain), "undecided: failed to load validate certificate chain"},
		{"chain only, signature without certificate", fixture.SignSpec{Key: valid.Key}, offline(chainOnly(valid)), "fail: no certificate found on signature"},
		// signatureAlgorithm applies to the certificate's key, with or without a chain.
		// (cosign's Rekor bundles are SHA-256 only, hence offline.)
		{"sha512 signature, signatureAlgorithm sha512", fixture.SignSpec{Leaf: valid, Hash: crypto.SHA512}, algorithm("sha512", offline(withChain(valid))), "pass"},
		{"sha512 signature, cert only, signatureAlgorithm sha512", fixture.SignSpec{Leaf: valid, Hash: crypto.SHA512}, algorithm("sha512", offline(certOnly(valid))), "pass"},
		{"sha512 signature, default sha256", fixture.SignSpec{Leaf: valid, Hash: crypto.SHA512}, offline(withChain(valid)), "fail: invalid signature when validating ASN.1 encoded signature"},
		// SCTs (ctlog.pubkey, ignoreSCT).
		{"chain only, certificate without SCT", p.signed(noSCT), chainOnly(noSCT), "fail: certificate does not include required embedded SCT"},
		{"chain only, SCT of an untrusted log", p.signed(otherSCT), chainOnly(otherSCT), "fail: ctfe public key not found"},
		{"chain only, no SCT, ignoreSCT", p.signed(noSCT), noSCTCheck(chainOnly(noSCT)), "pass"},
		{"cert and chain, certificate without SCT", p.signed(noSCT), withChain(noSCT), "undecided: failed to load validate certificate chain: certificate does not include required embedded SCT"},
		{"cert and chain, no SCT, ignoreSCT", p.signed(noSCT), noSCTCheck(withChain(noSCT)), "pass"},
		// Expiry against the signature's trusted time (cosign's rule, spec §3.3).
		{"expired, no trusted time", fixture.SignSpec{Leaf: expired}, offline(withChain(expired)), "fail: expected a signed timestamp to verify an expired certificate"},
		{"expired, chain only, no trusted time", fixture.SignSpec{Leaf: expired}, offline(chainOnly(expired)), "fail: expected a signed timestamp to verify an expired certificate"},
		{"expired, cert only, no trusted time", fixture.SignSpec{Key: expired.Key}, offline(certOnly(expired)), "fail: expected a signed timestamp to verify an expired certificate"},
		{"expired, logged while valid", fixture.SignSpec{Leaf: expired, Rekor: p.rekor, RekorTime: whileValid}, withChain(expired), "pass"},
		{"expired, chain only, logged while valid", fixture.SignSpec{Leaf: expired, Rekor: p.rekor, RekorTime: whileValid}, chainOnly(expired), "pass"},
		{"expired, cert only, logged while valid", fixture.SignSpec{Key: expired.Key, Rekor: p.rekor, RekorTime: whileValid}, certOnly(expired), "pass"},
		{"expired, logged after expiry", fixture.SignSpec{Leaf: expired, Rekor: p.rekor}, withChain(expired), "fail: certificate expired before observed time"},
		{"expired, timestamped while valid", fixture.SignSpec{Leaf: expired, TSA: p.tsa, TSATime: whileValid}, tsa(p, offline(withChain(expired))), "pass"},
		{"expired, chain only, timestamped while valid", fixture.SignSpec{Leaf: expired, TSA: p.tsa, TSATime: whileValid}, tsa(p, offline(chainOnly(expired))), "pass"},
		{"expired, timestamped after expiry", fixture.SignSpec{Leaf: expired, TSA: p.tsa}, tsa(p, offline(withChain(expired))), "fail: certificate expired before observed time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := p.image(t, tt.sign)
			expect(t, outcome(t, p, s, nil, tt.attestor), tt.want)
		})
	}
}

func algorithm(alg string, a *verify.Attestor) *verify.Attestor {
	a.SignatureAlgorithm = alg
	return a
}

// tsa makes an attestor trust the PKI's timestamp authority (ctlog.tsaCertChain).
func tsa(p *pki, a *verify.Attestor) *verify.Attestor {
	if a.CTLog == nil {
		a.CTLog = &verify.CTLog{}
	}
	a.CTLog.TSACertChain = []*x509.Certificate{p.tsa.Leaf, p.tsa.Root.Cert}
	return a
}
