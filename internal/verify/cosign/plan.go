package cosign

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/vouchproject/vouch/internal/verify"
)

// plan is how one attestor is checked: cosign's options (the authority, and the offline
// transparency-log, SCT and timestamp trust), then vouch's checks on each signature cosign
// verified — the keyless identity (spec §3.5) and, for a pinned certificate, its validity at
// the signature's trusted time.
type plan struct {
	co          *cosign.CheckOpts
	keyless     *verify.Keyless     // identity to match; nil: none
	pinned      *x509.Certificate   // certificates.cert
	pinnedChain []*x509.Certificate // certificates.certChain, when given with cert
}

// newPlan builds the checks of an attestor. Trust material the attestor needs and neither it
// nor the policy's trusted root provides is "could not verify" (undecided), naming what is
// missing; vouch never fetches the public-good Sigstore trust root.
func newPlan(a *verify.Attestor, tr *trustRoot) (*plan, error) {
	hash, err := hashFor(a.SignatureAlgorithm)
	if err != nil {
		return nil, err
	}
	p := &plan{co: &cosign.CheckOpts{
		ClaimVerifier: cosign.SimpleClaimVerifier,
		Offline:       true, // Rekor is never asked: the signature's bundle is the proof
		IgnoreSCT:     true, // set below for attestors that validate a certificate chain
	}}
	var need missing
	switch a.Kind {
	case "keys":
		err = p.keys(a, hash)
	case "certificates":
		err = p.certificates(a, hash, tr, &need)
	case "keyless":
		err = p.keylessRoots(a, tr, &need)
	default:
		return nil, unsupported(fmt.Sprintf("%s attestors are not supported yet", a.Kind))
	}
	if err != nil {
		return nil, err
	}
	if err := transparency(p.co, a, tr, &need); err != nil {
		return nil, err
	}
	if err := timestamps(p.co, a, tr); err != nil {
		return nil, err
	}
	if err := need.err(); err != nil {
		return nil, err
	}
	if p.pinned != nil && len(p.pinnedChain) > 0 {
		if err := p.validatePinned(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *plan) keys(a *verify.Attestor, hash crypto.Hash) error {
	switch {
	case a.Secret != nil:
		// The engine puts the Secret's key in place (policy.Verification.ResolveSecretKeys).
		return unsupported("the public key of Secret " + a.Secret.String() + " was not read")
	case a.KeyRef != "":
		return unsupported("public key reference " + a.KeyRef + " was not resolved")
	case len(a.Keys) != 1:
		return unsupported(fmt.Sprintf("an attestor needs exactly one public key, has %d", len(a.Keys)))
	}
	sv, err := signature.LoadVerifier(a.Keys[0].Key, hash)
	if err != nil {
		return verify.Errorf(verify.CodeUnsupported, "failed to load public key", err)
	}
	p.co.SigVerifier = sv
	return nil
}

// certificates: with cert, the signature must verify with the certificate's key (validated
// against certChain when given, SCT included); with certChain only, the signature's own
// certificate must chain to it (spec §3.2).
func (p *plan) certificates(a *verify.Attestor, hash crypto.Hash, tr *trustRoot, need *missing) error {
	switch {
	case a.Certificate != nil:
		sv, err := signature.LoadVerifier(a.Certificate.PublicKey, hash)
		if err != nil {
			return verify.Errorf(verify.CodeUnsupported, "failed to load certificate", err)
		}
		p.co.SigVerifier = sv
		p.pinned, p.pinnedChain = a.Certificate, a.CertificateChain
		if len(a.CertificateChain) > 0 {
			return certificateTransparency(p.co, a, tr, need)
		}
		return nil
	case len(a.CertificateChain) > 0:
		p.co.RootCerts, p.co.IntermediateCerts = anchors(a.CertificateChain)
		return certificateTransparency(p.co, a, tr, need)
	}
	return unsupported("cert or certChain required")
}

// keylessRoots: the signature's certificate must chain to keyless.roots, else to the trusted
// root's Fulcio CAs, and carry an SCT; the identity is matched after cosign's checks.
func (p *plan) keylessRoots(a *verify.Attestor, tr *trustRoot, need *missing) error {
	k := a.Keyless
	if k == nil {
		return unsupported("keyless attestor without keyless settings")
	}
	p.keyless = k
	switch {
	case len(k.Roots) > 0:
		p.co.RootCerts, p.co.IntermediateCerts = anchors(k.Roots)
	case tr != nil && len(tr.fulcioRoots) > 0:
		p.co.RootCerts = pool(tr.fulcioRoots)
		if len(tr.fulcioIntermediates) > 0 {
			p.co.IntermediateCerts = pool(tr.fulcioIntermediates)
		}
	default:
		*need = append(*need, "Fulcio roots (keyless.roots)")
	}
	return certificateTransparency(p.co, a, tr, need)
}

// anchors splits policy certificates into trust anchors and intermediates: the self-signed
// ones are the roots, the others intermediates (nil when there are none, so that cosign takes
// intermediates from the signature's chain). Without a self-signed certificate every one is
// an anchor, as Kyverno makes them all roots (spec §3.2).
func anchors(certs []*x509.Certificate) (roots, intermediates *x509.CertPool) {
	var self, other []*x509.Certificate
	for _, c := range certs {
		if selfSigned(c) {
			self = append(self, c)
		} else {
			other = append(other, c)
		}
	}
	if len(self) == 0 {
		return pool(certs), nil
	}
	if len(other) > 0 {
		intermediates = pool(other)
	}
	return pool(self), intermediates
}

// validatePinned checks that certificates.cert chains to certificates.certChain (and carries
// an SCT unless ctlog.ignoreSCT), with cosign's ValidateAndUnpackCertWithChain. A certificate
// that does not is the policy's problem, the same for every image: "could not verify".
func (p *plan) validatePinned() error {
	cert := *p.pinned // cosign edits UnhandledCriticalExtensions; the compiled policy is shared
	co := *p.co
	co.SigVerifier = nil
	if _, err := cosign.ValidateAndUnpackCertWithChain(&cert, p.pinnedChain, &co); err != nil {
		return verify.Errorf(verify.CodeUnsupported, "failed to load validate certificate chain", err)
	}
	return nil
}

// accept applies vouch's checks to the signatures cosign verified: the keyless identity, and
// the pinned certificate's validity (with its chain) at each signature's trusted time.
func (p *plan) accept(sigs []oci.Signature) ([]oci.Signature, error) {
	if p.keyless != nil {
		return matchIdentity(sigs, p.keyless)
	}
	if p.pinned == nil {
		return sigs, nil
	}
	var ok []oci.Signature
	var problems []string
	for _, sig := range sigs {
		if err := p.pinnedValid(sig); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		ok = append(ok, sig)
	}
	if len(ok) == 0 {
		return nil, verify.Errorf(verify.CodeNoMatch, "no matching signatures: "+strings.Join(problems, "\n "), nil)
	}
	return ok, nil
}

// pinnedValid checks the pinned certificate and its chain as cosign checks a signature's own
// certificate (verifyInternal): at the RFC 3161 time and at the Rekor integrated time when
// those were verified, else now.
func (p *plan) pinnedValid(sig oci.Signature) error {
	times, err := trustedTimes(sig, p.co)
	if err != nil {
		return err
	}
	if len(times) == 0 {
		if err := cosign.CheckExpiry(p.pinned, p.pinnedChain, time.Now()); err != nil {
			if p.co.IgnoreTlog {
				return fmt.Errorf("expected a signed timestamp to verify an expired certificate: %w", err)
			}
			return fmt.Errorf("checking expiry on certificate: %w", err)
		}
		return nil
	}
	for _, t := range times {
		if err := cosign.CheckExpiry(p.pinned, p.pinnedChain, t.at); err != nil {
			return fmt.Errorf("checking expiry on certificate with %s: %w", t.source, err)
		}
	}
	return nil
}

type trustedTime struct {
	at     time.Time
	source string // "timestamp" or "bundle", in cosign's words
}

// trustedTimes returns the times a verified signature proves it existed at: its RFC 3161
// timestamp (re-verified with cosign) and its Rekor bundle's integrated time (cosign verified
// the bundle: verification is offline, so a signature without one did not pass).
func trustedTimes(sig oci.Signature, co *cosign.CheckOpts) ([]trustedTime, error) {
	var out []trustedTime
	if co.UseSignedTimestamps {
		ts, err := cosign.VerifyRFC3161Timestamp(sig, co)
		if err != nil {
			return nil, fmt.Errorf("unable to verify RFC3161 timestamp bundle: %w", err)
		}
		if ts != nil {
			out = append(out, trustedTime{ts.Time, "timestamp"})
		}
	}
	if !co.IgnoreTlog {
		b, err := sig.Bundle()
		if err != nil {
			return nil, err
		}
		if b != nil {
			out = append(out, trustedTime{time.Unix(b.Payload.IntegratedTime, 0), "bundle"})
		}
	}
	return out, nil
}
