package cosign

import (
	"crypto/x509"
	"encoding/asn1"
	"time"

	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/vouchproject/vouch/internal/verify"
)

// How long a verified signature keeps verifying (verify.Evidence.ValidUntil).
//
// A certificate is checked at the signature's trusted times — its verified RFC 3161 timestamp
// and its Rekor integrated time — and then holds for good; without either it is checked at
// the time of verification, and verifying again once it (or a certificate of its chain) has
// expired fails. Such a signature holds until the earliest NotAfter of what was checked at
// now. Keys, and certificates checked at a trusted time, hold without bound.

// untilNow is the bound of evidence whose bound cannot be worked out (which cannot happen for
// a signature that verified): it holds now and must not be kept.
func untilNow() time.Time { return time.Now() }

// validUntil returns how long a simple-signing signature or attestation layer that cosign
// verified (verifyInternal) and vouch accepted keeps verifying. With a trusted time
// (trustedTimes: a verified RFC 3161 timestamp, a Rekor bundle when the log is required) it is
// unbounded. Otherwise what was checked at now bounds it: the signature's own certificate with
// the chain cosign built for it (CheckExpiry on the leaf and the verified chain; the
// certificate alone when a key or certificates.cert verifies the signature, cosign's empty
// verifierChain), and certificates.cert with its certChain (pinnedValid).
func (p *plan) validUntil(sig oci.Signature) time.Time {
	times, err := trustedTimes(sig, p.co)
	if err != nil {
		return untilNow()
	}
	if len(times) > 0 {
		return time.Time{}
	}
	var until time.Time
	if p.pinned != nil {
		until = notAfter(until, append([]*x509.Certificate{p.pinned}, p.pinnedChain...))
	}
	cert, err := sig.Cert()
	switch {
	case err != nil:
		return untilNow()
	case cert == nil:
		return until
	case p.co.SigVerifier != nil:
		return verify.Earliest(until, cert.NotAfter)
	}
	chain, err := p.chainOf(sig, cert)
	if err != nil {
		return untilNow()
	}
	return notAfter(until, chain)
}

// chainOf returns the chain cosign checks a signature's certificate with: the first chain
// that cosign's TrustedCert builds to the attestor's roots, with the signature's chain
// annotation (its root left out) as intermediates unless the attestor names intermediates —
// as verifyInternal and ValidateAndUnpackCertWithIntermediates do.
func (p *plan) chainOf(sig oci.Signature, cert *x509.Certificate) ([]*x509.Certificate, error) {
	own, err := sig.Chain()
	if err != nil {
		return nil, err
	}
	pool := p.co.IntermediateCerts
	if len(own) > 1 && p.co.IntermediateCerts == nil {
		pool = x509.NewCertPool()
		for _, c := range own[:len(own)-1] {
			pool.AddCert(c)
		}
	}
	chains, err := cosign.TrustedCert(withoutSAN(cert), p.co.RootCerts, pool)
	if err != nil {
		return nil, err
	}
	return chains[0], nil
}

// validUntil returns how long a bundle that sigstore-go verified and vouch accepted keeps
// verifying. A certificate-signed bundle verified at the current time (WithCurrentTime: no
// transparency log required, no trusted timestamp) is bounded by the chain sigstore-go
// verifies at that time (every certificate of it, and the authority's validity period when
// it has one); at observer or signed timestamps, it is unbounded. A key-signed bundle with
// certificates.cert is bounded by that certificate and its chain when accept checked them
// at now (no verified timestamp).
func (bt *bundleTrust) validUntil(b *Bundle, res *sgverify.VerificationResult) time.Time {
	vc, err := b.Bundle.VerificationContent()
	if err != nil {
		return untilNow()
	}
	leaf := vc.Certificate()
	if leaf == nil {
		if bt.pinned != nil && len(res.VerifiedTimestamps) == 0 {
			return notAfter(time.Time{}, append([]*x509.Certificate{bt.pinned}, bt.pinnedChain...))
		}
		return time.Time{}
	}
	var at time.Time
	for _, ts := range res.VerifiedTimestamps {
		if ts.Type == "CurrentTime" { // sigstore-go's WithCurrentTime
			at = ts.Timestamp
		}
	}
	if at.IsZero() {
		return time.Time{}
	}
	leaf = withoutSAN(leaf)
	intermediates := vc.Intermediates()
	// As sigstore-go's verifyLeafCertificate: the first authority the leaf verifies under, with
	// the bundle's intermediates added. The leaf verifies while any chain it built does.
	for _, ca := range bt.material.FulcioCertificateAuthorities() {
		fca, isFulcio := ca.(*root.FulcioCertificateAuthority)
		if isFulcio && len(intermediates) > 0 {
			with := *fca
			with.Intermediates = append(append([]*x509.Certificate{}, fca.Intermediates...), intermediates...)
			ca = &with
		}
		chains, err := ca.Verify(leaf, at)
		if err != nil {
			continue
		}
		var until time.Time
		for _, chain := range chains {
			if end := notAfter(time.Time{}, chain); end.After(until) {
				until = end
			}
		}
		if isFulcio && !fca.ValidityPeriodEnd.IsZero() {
			until = verify.Earliest(until, fca.ValidityPeriodEnd)
		}
		return until
	}
	return untilNow()
}

// notAfter returns the earliest of until (zero: unbounded) and the NotAfter of certs.
func notAfter(until time.Time, certs []*x509.Certificate) time.Time {
	for _, c := range certs {
		until = verify.Earliest(until, c.NotAfter)
	}
	return until
}

// withoutSAN returns a copy of cert without the SAN among its unhandled critical extensions
// (a Fulcio certificate's OtherName SAN, which Go does not handle), as cosign and sigstore-go
// remove it before verifying the chain.
func withoutSAN(cert *x509.Certificate) *x509.Certificate {
	c := *cert
	c.UnhandledCriticalExtensions = nil
	for _, oid := range cert.UnhandledCriticalExtensions {
		if !oid.Equal(cryptoutils.SANOID) {
			c.UnhandledCriticalExtensions = append(c.UnhandledCriticalExtensions, append(asn1.ObjectIdentifier(nil), oid...))
		}
	}
	return &c
}
